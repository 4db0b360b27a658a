//! Secrets at rest: each secret field sealed on its own with XChaCha20-Poly1305
//! under a master key, and a string type that refuses to print itself.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// What the screen, the CLI and JSON show for a secret that is set: fixed width,
/// so not even its length leaks.
pub const MASK: &str = "••••••••";

/// A secret in memory. Debug and Display print a placeholder; the value is wiped on drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(Zeroizing::new(value.into()))
    }

    /// The plaintext, for the code that must hand it to a provider.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// One secret field as stored: ciphertext plus what may be known without the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    /// Id of the master key that sealed it, so a wrong key is named, not guessed.
    pub key_id: String,
    pub nonce: String,
    pub ciphertext: String,
    /// Comma-separated values it holds: multi-account validation needs it without decrypting.
    pub count: usize,
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedSecret(key {})", self.key_id)
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SecretsError {
    #[error(
        "cannot decrypt {what}: it was sealed with master key {sealed_with}, but the key in use \
         is {in_use} ({source_desc}). Restore the original key, or type the secret again"
    )]
    WrongKey {
        what: String,
        sealed_with: String,
        in_use: String,
        source_desc: String,
    },
    #[error("cannot decrypt {what}: the stored value is damaged ({why}). Type the secret again")]
    Damaged { what: String, why: String },
    #[error(
        "the database's secrets are sealed with master key {stored}, but the key in use is \
         {in_use} ({source_desc}): a new secret would put the database under two keys. Use \
         the key that sealed them (restore its file or set FLAMETREE_SECRETS_MASTER_KEY)"
    )]
    MixedKeys {
        stored: String,
        in_use: String,
        source_desc: String,
    },
    #[error("{0}")]
    NoKey(String),
    #[error("master key: {0}")]
    BadKey(String),
}

/// Where the master key came from, for `flametree info` and error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Config,
    File(PathBuf),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Config => {
                f.write_str("from secrets.master_key / FLAMETREE_SECRETS_MASTER_KEY")
            }
            KeySource::File(p) => write!(f, "from key file {}", p.display()),
        }
    }
}

pub struct MasterKey {
    key: Zeroizing<[u8; 32]>,
    id: String,
    source: KeySource,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(id {}, {})", self.id, self.source)
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32], source: KeySource) -> MasterKey {
        // The id is a hash of the key: enough to tell keys apart, useless to an attacker.
        let digest = Sha256::digest([b"flametree-key-id:".as_slice(), &bytes].concat());
        let id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        MasterKey {
            key: Zeroizing::new(bytes),
            id,
            source,
        }
    }

    /// Decodes a base64 key from config or the environment.
    pub fn from_base64(text: &str, source: KeySource) -> Result<MasterKey, SecretsError> {
        let raw = Zeroizing::new(B64.decode(text.trim()).map_err(|_| {
            SecretsError::BadKey(format!(
                "the key {source} is not valid base64: it must be 32 random bytes in base64 \
                 (make one with: head -c32 /dev/urandom | base64)"
            ))
        })?);
        let bytes: [u8; 32] = raw.as_slice().try_into().map_err(|_| {
            SecretsError::BadKey(format!(
                "the key {source} is {} bytes long; it must be exactly 32 bytes, base64-encoded",
                raw.len()
            ))
        })?;
        Ok(MasterKey::from_bytes(bytes, source))
    }

    /// Reads the key file, or creates it (mode 0600) when `may_create` allows.
    pub fn load_or_create_file(path: &Path, may_create: bool) -> Result<MasterKey, SecretsError> {
        let source = KeySource::File(path.to_path_buf());
        match std::fs::read_to_string(path) {
            Ok(text) => MasterKey::from_base64(&text, source),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && may_create => {
                let mut bytes = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut bytes);
                write_key_file(path, &bytes)?;
                Ok(MasterKey::from_bytes(bytes, source))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(SecretsError::NoKey(format!(
                    "master key file {} does not exist, but the database holds secrets sealed with \
                 another key: restore that key file, or set FLAMETREE_SECRETS_MASTER_KEY",
                    path.display()
                )))
            }
            Err(e) => Err(SecretsError::BadKey(format!(
                "cannot read key file {}: {e}",
                path.display()
            ))),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// Seals one field's value. The field key is bound in as associated data, so a
    /// ciphertext copied onto another field does not decrypt.
    pub fn seal(&self, field: &str, value: &SecretString, count: usize) -> SealedSecret {
        let cipher = XChaCha20Poly1305::new((&*self.key).into());
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value.expose().as_bytes(),
                    aad: aad(field).as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        SealedSecret {
            key_id: self.id.clone(),
            nonce: B64.encode(nonce),
            ciphertext: B64.encode(ciphertext),
            count,
        }
    }

    /// Opens a sealed field; `what` names it in errors ("Bot token of 'Sales bot'").
    pub fn open(
        &self,
        field: &str,
        sealed: &SealedSecret,
        what: &str,
    ) -> Result<SecretString, SecretsError> {
        if sealed.key_id != self.id {
            return Err(SecretsError::WrongKey {
                what: what.to_string(),
                sealed_with: sealed.key_id.clone(),
                in_use: self.id.clone(),
                source_desc: self.source.to_string(),
            });
        }
        let damaged = |why: &str| SecretsError::Damaged {
            what: what.to_string(),
            why: why.to_string(),
        };
        let nonce = B64
            .decode(&sealed.nonce)
            .map_err(|_| damaged("bad nonce"))?;
        if nonce.len() != 24 {
            return Err(damaged("bad nonce length"));
        }
        let ciphertext = B64
            .decode(&sealed.ciphertext)
            .map_err(|_| damaged("bad ciphertext"))?;
        let cipher = XChaCha20Poly1305::new((&*self.key).into());
        let plain = cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: aad(field).as_bytes(),
                },
            )
            .map_err(|_| damaged("authentication failed"))?;
        let text = String::from_utf8(plain).map_err(|_| damaged("not UTF-8"))?;
        Ok(SecretString::new(text))
    }
}

fn aad(field: &str) -> String {
    format!("flametree:secret-field:v1:{field}")
}

fn write_key_file(path: &Path, bytes: &[u8; 32]) -> Result<(), SecretsError> {
    let fail = |e: std::io::Error| {
        SecretsError::BadKey(format!("cannot create key file {}: {e}", path.display()))
    };
    if let Some(dir) = path.parent() {
        crate::fsutil::create_private_dir(dir).map_err(fail)?;
    }
    let mut file = crate::fsutil::create_private_file(path).map_err(fail)?;
    let encoded = Zeroizing::new(B64.encode(bytes));
    file.write_all(encoded.as_bytes())
        .and_then(|_| file.write_all(b"\n"))
        .and_then(|_| file.sync_all())
        .map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_bytes([byte; 32], KeySource::Config)
    }

    #[test]
    fn seal_then_open_round_trips() {
        let k = key(7);
        let sealed = k.seal("bot_token", &SecretString::new("123:abc"), 1);
        assert!(!sealed.ciphertext.contains("123:abc"));
        let opened = k.open("bot_token", &sealed, "Bot token").unwrap();
        assert_eq!(opened.expose(), "123:abc");
    }

    #[test]
    fn wrong_key_is_named_not_garbled() {
        let sealed = key(1).seal("password", &SecretString::new("hunter2"), 1);
        let err = key(2)
            .open("password", &sealed, "Passwords of 'Mail'")
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("Passwords of 'Mail'"), "{text}");
        assert!(text.contains(&sealed.key_id), "{text}");
        assert!(!text.contains("hunter2"));
    }

    #[test]
    fn ciphertext_moved_to_another_field_does_not_open() {
        let k = key(3);
        let sealed = k.seal("app_secret", &SecretString::new("s3cret"), 1);
        assert!(matches!(
            k.open("access_token", &sealed, "Access token"),
            Err(SecretsError::Damaged { .. })
        ));
    }

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = SecretString::new("topsecret-value");
        assert!(!format!("{s:?} {s}").contains("topsecret"));
        assert!(!format!("{:?}", key(9)).contains("key: ["));
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        let first = MasterKey::load_or_create_file(&path, true).unwrap();
        let again = MasterKey::load_or_create_file(&path, false).unwrap();
        assert_eq!(first.id(), again.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn missing_key_file_is_not_created_when_forbidden() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let err = MasterKey::load_or_create_file(&path, false).unwrap_err();
        assert!(err.to_string().contains("does not exist"));
        assert!(!path.exists());
    }

    #[test]
    fn bad_base64_key_says_how_to_make_one() {
        let err = MasterKey::from_base64("not base64!!", KeySource::Config).unwrap_err();
        assert!(err.to_string().contains("32 random bytes"));
        let short = MasterKey::from_base64("c2hvcnQ=", KeySource::Config).unwrap_err();
        assert!(short.to_string().contains("exactly 32 bytes"));
    }
}
