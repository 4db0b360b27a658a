//! Who is at the keyboard and whether they may change settings.

use crate::config::Access;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads everything (secrets still masked); every write is refused.
    Viewer,
    /// "Permission to edit settings", as the spec puts it.
    Editor,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_lowercase().as_str() {
            "viewer" => Some(Role::Viewer),
            "editor" => Some(Role::Editor),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub name: String,
    pub role: Role,
    /// Why the role is what it is, for messages ("--read-only", "access.roles.bob").
    pub role_reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{who} is a viewer ({reason}) and cannot {action}: changing settings needs the editor role"
)]
pub struct Denied {
    pub who: String,
    pub reason: String,
    pub action: String,
}

impl Operator {
    /// The operator is named in config, else the OS user; the role comes from
    /// `access.roles`, else `access.default_role`; `read_only` forces viewer.
    pub fn resolve(access: &Access, os_user: Option<String>, read_only: bool) -> Operator {
        let name = Some(access.operator.trim().to_string())
            .filter(|n| !n.is_empty())
            .or(os_user.filter(|n| !n.is_empty()))
            .unwrap_or_else(|| "unknown".into());
        if read_only {
            return Operator {
                name,
                role: Role::Viewer,
                role_reason: "--read-only".into(),
            };
        }
        let (role, reason) = match access.roles.get(&name) {
            Some(r) => (r.as_str(), format!("access.roles.{name}")),
            None => (access.default_role.as_str(), "access.default_role".into()),
        };
        Operator {
            name,
            role: Role::parse(role).unwrap_or(Role::Viewer),
            role_reason: reason,
        }
    }

    pub fn can_edit(&self) -> bool {
        self.role == Role::Editor
    }

    /// Refuses a write for a viewer, saying what was refused and why.
    pub fn require_editor(&self, action: &str) -> Result<(), Denied> {
        if self.can_edit() {
            Ok(())
        } else {
            Err(Denied {
                who: self.name.clone(),
                reason: self.role_reason.clone(),
                action: action.to_string(),
            })
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.role.as_str())
    }
}

/// The OS user running the process (from the account database, not `$USER`, which
/// `sudo` and cron may leave unset or stale).
pub fn os_user() -> Option<String> {
    whoami::username()
        .ok()
        .or_else(|| std::env::var("USER").ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn access(default_role: &str, roles: &[(&str, &str)]) -> Access {
        Access {
            operator: String::new(),
            default_role: default_role.into(),
            roles: roles
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn per_operator_role_beats_default_and_read_only_beats_both() {
        let a = access("editor", &[("bob", "viewer")]);
        assert_eq!(
            Operator::resolve(&a, Some("bob".into()), false).role,
            Role::Viewer
        );
        assert_eq!(
            Operator::resolve(&a, Some("ann".into()), false).role,
            Role::Editor
        );
        let ro = Operator::resolve(&a, Some("ann".into()), true);
        let err = ro
            .require_editor("delete 'Sales bot'")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ann is a viewer (--read-only)"), "{err}");
        assert!(err.contains("delete 'Sales bot'"), "{err}");
    }
}
