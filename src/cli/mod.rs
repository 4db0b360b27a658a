//! The command line: the console by default, and `channels …` for scripts and tests.

/// `println!` for text output: control characters shown, never sent (see `clean`).
macro_rules! say {
    () => { println!() };
    ($($t:tt)*) => { println!("{}", $crate::cli::clean::clean(&format!($($t)*))) };
}

/// `eprintln!` likewise.
macro_rules! esay {
    ($($t:tt)*) => { eprintln!("{}", $crate::cli::clean::clean(&format!($($t)*))) };
}

mod agents_cmd;
mod call_cmd;
mod channels_cmd;
pub mod clean;
mod info;
mod runtime_cmd;
mod secrets_cmd;
pub mod webhook_check;

pub use runtime_cmd::{wait_for_hangup, wait_for_signal};
mod input;
mod meta_sign_in;
mod view;

use crate::channels::ServiceError;
use crate::context::{Context, Overrides};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "flametree",
    version,
    about = "Connect AI agents to WhatsApp, Telegram, email, Meta, SMS and voice — and run those channels",
    long_about = None,
    after_help = "Without a command, flametree opens the full-screen console (press ? there for every key)."
)]
pub struct Cli {
    /// Config file to read (default: the user's config directory, if present).
    #[arg(long, global = true, env = "FLAMETREE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Database URL: postgres://… or sqlite:///path (overrides database.url).
    #[arg(long, global = true, value_name = "URL")]
    pub database: Option<String>,
    /// Tenant to work in (overrides general.tenant).
    #[arg(long, global = true)]
    pub tenant: Option<String>,
    /// Act as a viewer: read everything, change nothing.
    #[arg(long, global = true)]
    pub read_only: bool,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage channel connections (Settings › Channels).
    #[command(subcommand)]
    Channels(ChannelsCmd),
    /// Show which config file, data directory, database and key are in use.
    Info,
    /// Show who changed what, newest first.
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Run the channels without the console: every connection whose desired state is
    /// RUNNING, picking up Start/Stop from other commands; stops cleanly on SIGTERM/Ctrl-C.
    Serve {
        /// Run the connections of every tenant on the database, not just `--tenant`'s
        /// (tenants created later are picked up within 30 s).
        #[arg(long)]
        all_tenants: bool,
    },
    /// Start a local Telegram sandbox with demo connections and open the console on them.
    Demo,
    /// Manage AI agents and their Communication channels.
    #[command(subcommand)]
    Agents(AgentsCmd),
    /// PostgreSQL users that the database itself holds to a role.
    #[command(subcommand)]
    Db(DbCmd),
    /// Master key: which keys seal the stored secrets, and re-sealing them under a new one.
    #[command(subcommand)]
    Secrets(SecretsCmd),
    /// Send one outbound message through a connection (e.g. for an agent with Inbound off).
    Send {
        #[arg(long)]
        connection: String,
        /// The customer, as the channel names them: a Telegram chat id, a phone number, an address.
        #[arg(long)]
        to: String,
        /// For multi-account types: the account it goes out from (a phone number id, a login).
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        text: String,
    },
    /// Place a voice call through a Twilio or SIP connection; its agent holds the
    /// conversation. A SIP call is dialed by the process that runs the connection.
    Call {
        #[arg(long)]
        connection: String,
        /// The phone number to call, with its country code (+14155550123); through SIP
        /// also a user at the registrar (2001).
        #[arg(long)]
        to: String,
        /// What the agent opens with (default: the agent's greeting).
        #[arg(long)]
        text: Option<String>,
        /// Seconds to wait for the outcome (answered and ended, busy, no answer, failed); 0: don't wait.
        #[arg(long, default_value_t = 120)]
        wait: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum DbCmd {
    /// Create (if needed) the PostgreSQL login role NAME with the privileges of a viewer
    /// (reads everything; sealed secrets stay sealed) or an editor (changes rows, not
    /// tables), also on tables that later migrations add.
    Grant {
        name: String,
        #[arg(long, value_parser = ["viewer", "editor"])]
        role: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCmd {
    /// How many secrets each master key id seals (every tenant), and which key is in use.
    Status,
    /// Re-seal every secret under a new key in one transaction. With a key file, a new
    /// key is generated (or read with --new-key-stdin) and the old file kept as
    /// `<file>.<old id>.bak`; run it again to finish an interrupted rotation.
    Rotate {
        /// Read the new key (32 bytes, base64) from standard input.
        #[arg(long)]
        new_key_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AgentsCmd {
    /// List agents with their status and channels.
    List,
    /// Create an agent (built-in rule responder unless --openai-base-url is given).
    Create(AgentArgs),
    /// Show an agent: status, responder, Communication channels.
    Show { name: String },
    /// Change an agent; responder options replace its responder.
    Edit {
        #[arg(value_name = "NAME")]
        agent: String,
        #[command(flatten)]
        args: AgentArgs,
    },
    /// Delete an agent (pass --yes).
    Delete {
        name: String,
        #[arg(long)]
        yes: bool,
    },
    /// Start agent: it answers, with its channels as saved.
    Start { name: String },
    /// Stop agent.
    Stop { name: String },
    /// Put a connection on the agent's Communication channels card.
    Attach {
        name: String,
        #[arg(long)]
        connection: String,
        /// The agent answers incoming messages on it (one agent per connection for most types).
        #[arg(long)]
        inbound: bool,
    },
    /// Take a connection off the agent's card.
    Detach {
        name: String,
        #[arg(long)]
        connection: String,
    },
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The agent's name (with edit: rename it).
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    #[command(flatten)]
    pub responder: ResponderArgs,
    /// A Web Widget setting, FIELD=VALUE (repeatable): the widget is configured on the agent.
    #[arg(long = "widget", value_name = "FIELD=VALUE")]
    pub widget: Vec<String>,
    #[command(flatten)]
    pub speech: Box<SpeechArgs>,
}

/// The agent's speech engines: what SIP calls are heard and spoken with.
#[derive(Debug, Args)]
pub struct SpeechArgs {
    /// Speech-to-text: an OpenAI-compatible base URL (`/audio/transcriptions` is appended)
    /// or the endpoint itself; "" removes it.
    #[arg(long, value_name = "URL")]
    pub stt_url: Option<String>,
    /// Speech-to-text model, e.g. whisper-1.
    #[arg(long, value_name = "MODEL")]
    pub stt_model: Option<String>,
    /// Text-to-speech: an OpenAI-compatible base URL (`/audio/speech` is appended) or the
    /// endpoint itself; "" removes it.
    #[arg(long, value_name = "URL")]
    pub tts_url: Option<String>,
    /// Text-to-speech model, e.g. tts-1.
    #[arg(long, value_name = "MODEL")]
    pub tts_model: Option<String>,
    /// Text-to-speech voice, e.g. alloy.
    #[arg(long, value_name = "VOICE")]
    pub tts_voice: Option<String>,
    /// Read the speech engines' key from standard input (sent to both endpoints).
    #[arg(long, conflicts_with = "api_key_stdin")]
    pub speech_key_stdin: bool,
    /// Remove the speech engines and their key.
    #[arg(long, conflicts_with_all = ["stt_url", "stt_model", "tts_url", "tts_model", "tts_voice", "speech_key_stdin"])]
    pub no_speech: bool,
}

#[derive(Debug, Args)]
pub struct ResponderArgs {
    /// Rule responder: the answer to a hello.
    #[arg(long)]
    pub greeting: Option<String>,
    /// Rule responder: KEYWORD=REPLY (repeatable; first match wins; {text} is the message).
    #[arg(long = "rule", value_name = "KEYWORD=REPLY")]
    pub rule: Vec<String>,
    /// The answer when nothing else applies (rules), or when the model API fails.
    #[arg(long)]
    pub fallback: Option<String>,
    /// OpenAI-compatible responder: the API base URL, e.g. https://api.openai.com/v1.
    #[arg(long)]
    pub openai_base_url: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long)]
    pub system_prompt: Option<String>,
    /// Earlier turns of the same customer sent along (default 10).
    #[arg(long)]
    pub history: Option<u32>,
    /// Seconds to wait for the model (default 20).
    #[arg(long)]
    pub timeout_secs: Option<u64>,
    /// Read the model API key from standard input.
    #[arg(long)]
    pub api_key_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum ChannelsCmd {
    /// List the channel types, their fields and environment variables.
    Types,
    /// List the tenant's connections, grouped into Channels and Deprecated Channels.
    List,
    /// Create a connection.
    Add(AddArgs),
    /// Show one connection; secrets are masked.
    Show { name: String },
    /// Change a connection; what you don't mention stays as it is.
    Edit(EditArgs),
    /// Replace a deprecated connection with one of the type it migrates to: what fits is
    /// carried over, the rest given with --set/--secrets-stdin; the agents' attachments
    /// move to the new connection and the old one is stopped (not deleted).
    Migrate(MigrateArgs),
    /// Delete a connection (asks first, or pass --yes).
    Delete {
        name: String,
        /// Delete without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Ask for a connection to run (a console or `flametree serve` runs it).
    Start { name: String },
    /// Ask for a connection to stop.
    Stop { name: String },
    /// Show status, message and since when; all connections without a name.
    Status { name: Option<String> },
    /// Print a connection's recent log.
    Logs {
        name: String,
        /// Keep printing new lines as they are written (Ctrl-C ends).
        #[arg(long, short)]
        follow: bool,
        /// How many recent lines to print first.
        #[arg(long, short = 'n', default_value_t = 100)]
        lines: u32,
    },
}

#[derive(Debug, Args)]
pub struct FormArgs {
    /// Description (internal reference).
    #[arg(long)]
    pub description: Option<String>,
    /// Set a non-secret field: FIELD=VALUE (repeatable; multi-account values comma-separated).
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    pub set: Vec<String>,
    /// Set an environment variable: NAME=VALUE (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Read FIELD=VALUE lines for secret fields from standard input.
    #[arg(long)]
    pub secrets_stdin: bool,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Channel type key or name (see `flametree channels types`).
    #[arg(long = "type", value_name = "TYPE")]
    pub type_key: String,
    /// Name shown across the portal; unique in the tenant.
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub form: FormArgs,
    /// WhatsApp, Instagram, Facebook: sign in with Meta (a code to approve on
    /// facebook.com/device) and fill the credentials from what the account reaches.
    #[arg(long)]
    pub meta_sign_in: bool,
    /// With --meta-sign-in: take the N-th of what the account reaches (1-based) without
    /// asking.
    #[arg(long, value_name = "N", requires = "meta_sign_in")]
    pub pick: Option<usize>,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The deprecated connection.
    pub name: String,
    /// The new connection's name (default: the old name with the new type in brackets).
    #[arg(long = "name", value_name = "NEW_NAME")]
    pub new_name: Option<String>,
    #[command(flatten)]
    pub form: FormArgs,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    /// The connection to change.
    pub name: String,
    /// Rename it.
    #[arg(long = "name", value_name = "NEW_NAME")]
    pub new_name: Option<String>,
    #[command(flatten)]
    pub form: FormArgs,
    /// Remove an environment variable (repeatable).
    #[arg(long = "unset-env", value_name = "NAME")]
    pub unset_env: Vec<String>,
    /// Empty an optional secret field (repeatable).
    #[arg(long = "clear-secret", value_name = "FIELD")]
    pub clear_secret: Vec<String>,
}

/// Exit codes scripts can rely on.
pub mod exit {
    pub const FAILURE: i32 = 1;
    pub const INVALID: i32 = 2;
    pub const DENIED: i32 = 3;
    pub const NOT_FOUND: i32 = 4;
    pub const CONFLICT: i32 = 5;
}

/// A failure with the exit code it maps to.
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        if let Some(s) = e.downcast_ref::<ServiceError>() {
            return Failure::from_service(s);
        }
        Failure {
            code: exit::FAILURE,
            message: format!("{e:#}"),
        }
    }
}

impl From<ServiceError> for Failure {
    fn from(e: ServiceError) -> Failure {
        Failure::from_service(&e)
    }
}

impl Failure {
    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure {
            code: exit::INVALID,
            message: message.into(),
        }
    }

    fn from_service(e: &ServiceError) -> Failure {
        use crate::store::StoreError;
        let code = match e {
            ServiceError::Invalid(_) => exit::INVALID,
            ServiceError::Denied(_) => exit::DENIED,
            ServiceError::NotFound(_) | ServiceError::Store(StoreError::NotFound { .. }) => {
                exit::NOT_FOUND
            }
            ServiceError::Store(StoreError::Conflict { .. } | StoreError::InboundTaken { .. }) => {
                exit::CONFLICT
            }
            _ => exit::FAILURE,
        };
        let message = match e {
            ServiceError::Invalid(report) => view::report_lines(report),
            other => other.to_string(),
        };
        Failure { code, message }
    }
}

impl Command {
    /// Whether the command changes something (and may create its tenant).
    fn writes(&self) -> bool {
        match self {
            Command::Channels(c) => matches!(
                c,
                ChannelsCmd::Add(_)
                    | ChannelsCmd::Edit(_)
                    | ChannelsCmd::Migrate(_)
                    | ChannelsCmd::Delete { .. }
                    | ChannelsCmd::Start { .. }
                    | ChannelsCmd::Stop { .. }
            ),
            Command::Agents(a) => !matches!(a, AgentsCmd::List | AgentsCmd::Show { .. }),
            Command::Send { .. } | Command::Call { .. } | Command::Demo => true,
            Command::Secrets(c) => matches!(c, SecretsCmd::Rotate { .. }),
            Command::Db(_) => false,
            Command::Info | Command::Audit { .. } | Command::Serve { .. } => false,
        }
    }
}

pub async fn run(cli: Cli, loaded: crate::config::Loaded) -> Result<(), Failure> {
    let overrides = Overrides {
        database_url: cli.database.clone(),
        tenant: cli.tenant.clone(),
        read_only: cli.read_only,
        // The console and the commands that change something may create their tenant.
        create_tenant: cli.command.as_ref().is_none_or(Command::writes),
    };
    let Some(command) = cli.command else {
        return crate::tui::run(loaded, &overrides)
            .await
            .map_err(Failure::from);
    };
    if let Command::Channels(ChannelsCmd::Types) = command {
        return channels_cmd::types(cli.json);
    }
    if let Command::Demo = command {
        return crate::demo::run(loaded, &overrides)
            .await
            .map_err(Failure::from);
    }
    let ctx = Context::open(loaded, &overrides).await?;
    for w in &ctx.warnings {
        esay!("warning: {w}");
    }
    match command {
        Command::Channels(
            cmd @ (ChannelsCmd::Start { .. }
            | ChannelsCmd::Stop { .. }
            | ChannelsCmd::Status { .. }
            | ChannelsCmd::Logs { .. }),
        ) => runtime_cmd::channels(&ctx, cmd, cli.json).await,
        Command::Channels(cmd) => channels_cmd::run(&ctx, cmd, cli.json).await,
        Command::Info => info::info(&ctx, cli.json).await,
        Command::Audit { limit } => info::audit(&ctx, limit, cli.json).await,
        Command::Serve { all_tenants } => runtime_cmd::serve(ctx, all_tenants).await,
        Command::Agents(cmd) => agents_cmd::run(&ctx, cmd, cli.json).await,
        Command::Db(DbCmd::Grant { name, role }) => {
            ctx.channels
                .operator()
                .require_editor(&format!("grant database role {role} to '{name}'"))
                .map_err(crate::channels::ServiceError::from)?;
            ctx.channels
                .store()
                .grant_role(&name, role == "editor")
                .await
                .map_err(|e| Failure::invalid(e.to_string()))?;
            say!(
                "'{name}' may now log in to this database as a flametree {role}; give it a \
                 password or a certificate the way your PostgreSQL authenticates users."
            );
            Ok(())
        }
        Command::Secrets(SecretsCmd::Status) => secrets_cmd::status(&ctx, cli.json).await,
        Command::Secrets(SecretsCmd::Rotate { new_key_stdin }) => {
            secrets_cmd::rotate(&ctx, new_key_stdin).await
        }
        Command::Send {
            connection,
            to,
            account,
            text,
        } => agents_cmd::send(&ctx, &connection, &to, account.as_deref(), &text, cli.json).await,
        Command::Call {
            connection,
            to,
            text,
            wait,
        } => {
            let args = call_cmd::CallArgs {
                connection: &connection,
                to: &to,
                text: text.as_deref(),
                wait,
            };
            call_cmd::call(&ctx, args, cli.json).await
        }
        Command::Demo => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
