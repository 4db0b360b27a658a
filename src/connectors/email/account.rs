//! A connection's mail accounts: the n-th comma-separated value of every per-account
//! field belongs to account n.

use super::super::{ConnConfig, ConnectorError};
use crate::secrets::SecretString;

/// How a connection to a mail server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (IMAP 993, SMTP 465).
    Tls,
    /// Plain text upgraded with STARTTLS before logging in (IMAP 143, SMTP 587).
    StartTls,
    /// No encryption at all: for local test servers only.
    None,
}

impl Security {
    fn parse(v: &str) -> Option<Security> {
        match v.trim().to_ascii_lowercase().as_str() {
            "ssl/tls" | "ssl" | "tls" => Some(Security::Tls),
            "starttls" => Some(Security::StartTls),
            "none" => Some(Security::None),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub security: Security,
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

pub struct Account {
    /// 1-based, as the operator counts the comma-separated values.
    pub number: usize,
    pub login: String,
    pub password: SecretString,
    pub imap: Server,
    pub smtp: Server,
    /// The address replies go out from.
    pub from: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("number", &self.number)
            .field("login", &self.login)
            .field("password", &"<hidden>")
            .finish()
    }
}

impl Account {
    /// How log lines and errors name it: "account 2 (bob@example.com)".
    pub fn label(&self) -> String {
        format!("account {} ({})", self.number, self.login)
    }

    /// The domain of its address, for the Message-IDs of its replies.
    pub fn domain(&self) -> &str {
        self.from
            .rsplit_once('@')
            .map(|(_, d)| d)
            .filter(|d| !d.is_empty())
            .unwrap_or("flametree.invalid")
    }
}

/// Reads every account from the configuration; a field whose values do not line up
/// with Logins is an error naming it.
pub fn accounts(cfg: &ConnConfig) -> Result<Vec<Account>, ConnectorError> {
    let logins = values(cfg.field("logins"));
    if logins.is_empty() {
        return Err(permanent(
            "Logins is not set: give one login per mail account",
        ));
    }
    let n = logins.len();
    let passwords: Vec<String> = cfg
        .secret("passwords")?
        .expose()
        .split(',')
        .map(|p| p.trim().to_string())
        .collect();
    if passwords.len() != n {
        return Err(permanent(&format!(
            "Passwords holds {} values but Logins holds {n}: give one password per login, in \
             the same order, separated by commas",
            passwords.len()
        )));
    }
    let per_account = |key: &str, label: &str| -> Result<Vec<String>, ConnectorError> {
        let v = values(cfg.field(key));
        match v.len() {
            0 => Ok(vec![String::new(); n]),
            // One value (often the default) serves every account.
            1 => Ok(vec![v[0].clone(); n]),
            len if len == n => Ok(v),
            len => Err(permanent(&format!(
                "{label} holds {len} values but Logins holds {n}: give one per account, in the \
                 same order, separated by commas"
            ))),
        }
    };
    let imap_hosts = per_account("imap_hosts", "IMAP hosts")?;
    let imap_ports = per_account("imap_ports", "IMAP ports")?;
    let imap_security = per_account("imap_security", "IMAP security")?;
    let smtp_hosts = per_account("smtp_hosts", "SMTP hosts")?;
    let smtp_ports = per_account("smtp_ports", "SMTP ports")?;
    let smtp_security = per_account("smtp_security", "SMTP security")?;
    let froms = per_account("from_addresses", "From addresses")?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let number = i + 1;
        let server = |hosts: &[String], ports: &[String], sec: &[String], what: &str| {
            let host = hosts[i].clone();
            if host.is_empty() {
                return Err(permanent(&format!(
                    "account {number}: {what} hosts has no value for it"
                )));
            }
            let port = ports[i]
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| {
                    permanent(&format!(
                        "account {number}: {what} ports value '{}' is not a port (1–65535)",
                        ports[i]
                    ))
                })?;
            let security = Security::parse(&sec[i]).ok_or_else(|| {
                permanent(&format!(
                    "account {number}: {what} security value '{}' is not ssl/tls, starttls or none",
                    sec[i]
                ))
            })?;
            Ok(Server {
                host,
                port,
                security,
            })
        };
        let login = logins[i].clone();
        let from = if froms[i].is_empty() {
            login.clone()
        } else {
            froms[i].clone()
        };
        out.push(Account {
            number,
            imap: server(&imap_hosts, &imap_ports, &imap_security, "IMAP")?,
            smtp: server(&smtp_hosts, &smtp_ports, &smtp_security, "SMTP")?,
            password: SecretString::new(passwords[i].clone()),
            login,
            from,
        });
    }
    Ok(out)
}

fn values(field: Option<String>) -> Vec<String> {
    field
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
        .unwrap_or_default()
}

fn permanent(why: &str) -> ConnectorError {
    ConnectorError::Permanent(format!("{why}; then Save and Start"))
}
