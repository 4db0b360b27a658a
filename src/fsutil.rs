//! File-system helpers for files that hold secrets or their ciphertext.

use std::io;
use std::path::Path;

/// Creates `dir` (and missing parents) readable by the owner only. An existing
/// directory is left as it is: it may be shared on purpose.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Creates a new file readable and writable by the owner only (mode 0600).
pub fn create_private_file(path: &Path) -> io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Files and directories that others on the machine could read, with the command that
/// fixes each: the data directory (the SQLite database, exported logs), the key file,
/// and a config file that holds a secret. Said at start; nothing is changed for the
/// operator, who may share a directory on purpose.
pub fn exposure_warnings(loaded: &crate::config::Loaded) -> Vec<String> {
    let mut out = Vec::new();
    let cfg = &loaded.config;
    let holds_secret =
        !cfg.secrets.master_key.trim().is_empty() || !cfg.meta.app_secret.trim().is_empty();
    let checks: [(Option<&Path>, u32, &str, &str); 3] = [
        (
            Some(loaded.data_dir.as_path()),
            0o077,
            "the data directory",
            "700",
        ),
        (
            Some(loaded.key_file.as_path()),
            0o077,
            "the master key file",
            "600",
        ),
        (
            loaded.file.as_deref().filter(|_| holds_secret),
            0o077,
            "the config file, which holds a secret",
            "600",
        ),
    ];
    for (path, others, what, mode) in checks {
        let Some(path) = path else { continue };
        if let Some(m) = mode_of(path)
            && m & others != 0
        {
            // The fix first: a narrow screen cuts the end of a line.
            out.push(format!(
                "run `chmod {mode} {}`: {what} can be read by other users (mode {:o})",
                path.display(),
                m & 0o777,
            ));
        }
    }
    out
}

#[cfg(unix)]
fn mode_of(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).ok().map(|m| m.permissions().mode())
}

#[cfg(not(unix))]
fn mode_of(_: &Path) -> Option<u32> {
    None
}

/// Creates the file (0600) if it does not exist yet, so that what opens it next (SQLite,
/// which gives its `-wal` and `-shm` files the database file's mode) inherits the mode.
pub fn ensure_private_file(path: &Path) -> io::Result<()> {
    match create_private_file(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}
