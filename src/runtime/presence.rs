//! Who works on this database: each process's heartbeat (on the database's clock), and
//! from it whether channels should run here, who runs them otherwise, and which lease
//! owners on this host are dead.

use crate::model::{Connection, DesiredState, Millis, Status};
use crate::store::{LeaseInfo, ProcessInfo};
use std::collections::HashMap;

/// A heartbeat older than this means the process is gone.
pub const ALIVE_MS: i64 = 15_000;

/// Where a process's channels run, from `runtime.run_channels`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunChannels {
    /// A console runs channels only while no `serve` is alive on the database.
    Auto,
    Always,
    Never,
}

impl RunChannels {
    pub fn parse(s: &str) -> Result<RunChannels, String> {
        match s.trim() {
            "auto" | "" => Ok(RunChannels::Auto),
            "always" => Ok(RunChannels::Always),
            "never" => Ok(RunChannels::Never),
            other => Err(format!(
                "runtime.run_channels is '{other}': use auto, always or never"
            )),
        }
    }
}

/// What a runtime knows about the processes on its database, for the console header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Presence {
    pub runs_here: bool,
    /// Live processes other than this one.
    pub others: Vec<ProcessInfo>,
    /// The tenant's leases by connection, when this was looked at.
    pub leases: HashMap<i64, LeaseInfo>,
    /// The database's clock when this was looked at.
    pub db_now: Millis,
}

/// A connection that should run and looks running, but whose lease expired with no
/// process taking it over: since when. A connection just started or handed over (no
/// lease yet, status changed in the last 20 s) is not called ownerless.
pub fn owner_gone(
    c: &Connection,
    leases: &HashMap<i64, LeaseInfo>,
    db_now: Millis,
) -> Option<Millis> {
    if c.desired != DesiredState::Running
        || !matches!(
            c.status,
            Status::Running | Status::Starting | Status::Stopping
        )
    {
        return None;
    }
    match leases.get(&c.id) {
        Some(l) if l.expires_in_ms >= 0 => None,
        Some(l) => Some(l.expires_at),
        None if db_now - c.status_since > 20_000 => Some(c.status_since),
        None => None,
    }
}

/// The sentence the console and `channels status` show for such a connection.
pub fn owner_gone_message(since: Millis) -> String {
    let at = chrono::DateTime::from_timestamp_millis(since)
        .map(|t| t.format("%H:%M").to_string())
        .unwrap_or_default();
    format!(
        "RUNNING wanted · no process is running it since {at} UTC — start `flametree serve` or a console"
    )
}

impl Presence {
    /// "channels run here" / "channels run in serve@host" / "no process runs channels".
    pub fn summary(&self) -> String {
        if self.runs_here {
            return "channels run here".into();
        }
        let runners: Vec<String> = self
            .others
            .iter()
            .filter(|p| p.runs_channels)
            .map(|p| format!("{}@{}", p.role, p.host))
            .collect();
        match runners.as_slice() {
            [] => "no process runs channels: start `flametree serve`".into(),
            [one] => format!("channels run in {one}"),
            many => format!("channels run in {}", many.join(", ")),
        }
    }
}

pub fn alive(p: &ProcessInfo) -> bool {
    p.seen_ms_ago < ALIVE_MS
}

/// A live `serve` that runs channels for `tenant`.
pub fn serve_alive(all: &[ProcessInfo], me: &str, tenant: &str) -> bool {
    all.iter().any(|p| {
        p.id != me
            && alive(p)
            && p.role == "serve"
            && p.runs_channels
            && (p.tenant == tenant || p.tenant == "*")
    })
}

/// Whether the process named `owner` (`host:pid:started`) is gone, as far as can be
/// told from here: its pid is not running on this host, or it has no recent heartbeat
/// (a process on another host shows only there).
pub fn gone(owner: &str, processes: &[ProcessInfo], host: &str) -> bool {
    dead_on_this_host(owner, host, "") || !processes.iter().any(|p| p.id == owner && alive(p))
}

/// `host:pid:started` of this process.
pub fn owner_name(host: &str) -> String {
    format!(
        "{host}:{}:{}",
        std::process::id(),
        crate::model::now_millis()
    )
}

/// Whether a lease owner (`host:pid:started`) on this host is a process that is gone.
pub fn dead_on_this_host(owner: &str, host: &str, me: &str) -> bool {
    if owner == me {
        return false;
    }
    let mut parts = owner.rsplitn(3, ':');
    let (_started, pid, owner_host) = (parts.next(), parts.next(), parts.next());
    if owner_host != Some(host) {
        return false;
    }
    match pid.and_then(|p| p.parse::<u32>().ok()) {
        Some(pid) if cfg!(target_os = "linux") => {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str, role: &str, runs: bool, ago: i64) -> ProcessInfo {
        ProcessInfo {
            id: id.into(),
            host: "web1".into(),
            pid: 1,
            role: role.into(),
            tenant: "default".into(),
            runs_channels: runs,
            started_at: 0,
            seen_ms_ago: ago,
        }
    }

    #[test]
    fn a_live_serve_takes_the_channels_a_dead_one_does_not() {
        let all = [p("me", "console", true, 0), p("s", "serve", true, 1_000)];
        assert!(serve_alive(&all, "me", "default"));
        assert!(!serve_alive(&all, "me", "other"));
        let gone = [p("s", "serve", true, ALIVE_MS + 1)];
        assert!(!serve_alive(&gone, "me", "default"));
        let idle = [p("s", "serve", false, 0)];
        assert!(!serve_alive(&idle, "me", "default"));
    }

    #[test]
    fn a_dead_pid_on_this_host_is_dead_a_live_one_or_another_host_is_not() {
        let me = owner_name("web1");
        let mine = format!("web1:{}:5", std::process::id());
        assert!(!dead_on_this_host(&mine, "web1", &me));
        assert!(dead_on_this_host("web1:4000000:5", "web1", &me));
        assert!(!dead_on_this_host("web2:4000000:5", "web1", &me));
        assert!(!dead_on_this_host(
            "web1:4000000:5",
            "web1",
            "web1:4000000:5"
        ));
    }

    #[test]
    fn a_process_is_gone_without_a_recent_heartbeat_or_its_pid_here() {
        let mine = format!("web1:{}:5", std::process::id());
        let all = [
            p(&mine, "serve", true, 1_000),
            p("web2:7:5", "serve", true, 0),
        ];
        assert!(!gone(&mine, &all, "web1"));
        assert!(
            !gone("web2:7:5", &all, "web1"),
            "another host's pid is not ours"
        );
        assert!(gone("web2:8:5", &all, "web1"), "no heartbeat at all");
        let stale = [p("web2:7:5", "serve", true, ALIVE_MS + 1)];
        assert!(gone("web2:7:5", &stale, "web1"));
        let beating = [p("web1:4000000:5", "serve", true, 0)];
        assert!(
            gone("web1:4000000:5", &beating, "web1"),
            "its pid is not running"
        );
    }

    #[test]
    fn the_summary_says_where_channels_run() {
        let mut presence = Presence {
            runs_here: true,
            ..Presence::default()
        };
        assert_eq!(presence.summary(), "channels run here");
        presence.runs_here = false;
        assert!(presence.summary().starts_with("no process runs channels"));
        presence.others = vec![p("s", "serve", true, 0)];
        assert_eq!(presence.summary(), "channels run in serve@web1");
    }
}
