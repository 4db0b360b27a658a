use clap::Parser;
use flametree::cli::{self, Cli, Command};
use std::path::Path;

fn main() {
    flametree::runtime::memory::limit_arenas();
    let cli = Cli::parse();
    // Our own TLS clients name ring, but a library that takes rustls' process default
    // (rsipstack when it redials a SIP flow by itself) must find the same one rather
    // than panic on finding none or two.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A server or the console keeps going when a log reader goes away; a one-shot
    // command's output simply ends.
    if !matches!(
        cli.command,
        None | Some(Command::Serve { .. }) | Some(Command::Demo)
    ) {
        quiet_on_closed_pipe();
    }
    let env: Vec<(String, String)> = std::env::vars().collect();
    let loaded = match flametree::config::load(cli.config.as_deref(), &env) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(cli::exit::INVALID);
        }
    };
    let full_screen = matches!(cli.command, None | Some(Command::Demo));
    let default_level = if matches!(cli.command, Some(Command::Serve { .. })) {
        "info"
    } else {
        "warn"
    };
    init_tracing(full_screen, &loaded.data_dir, default_level);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(cli::exit::FAILURE);
        }
    };
    if let Err(failure) = runtime.block_on(cli::run(cli, loaded)) {
        eprintln!("error: {}", cli::clean::clean(&failure.message));
        std::process::exit(failure.code);
    }
}

/// Colour only for a person at a terminal: never into a file or pipe, never with
/// NO_COLOR (no-color.org: set and not empty).
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Output to a closed pipe (`flametree channels list | head -1`) ends the process
/// quietly, as it does every Unix tool, instead of panicking in `println!`.
fn quiet_on_closed_pipe() {
    // SAFETY: restoring the default disposition of one signal, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Diagnostics go to stderr (to `<data_dir>/flametree.log` while the console owns the
/// screen), at FLAMETREE_LOG or RUST_LOG, else `default_level`. Channel tasks' events
/// also go to their connection's log, whatever that level.
fn init_tracing(full_screen: bool, data_dir: &Path, default_level: &str) {
    use flametree::runtime::logs::Redacting;
    use tracing_subscriber::filter::EnvFilter;
    use tracing_subscriber::prelude::*;
    let filter = std::env::var("FLAMETREE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default_level.into());
    let connection_logs = flametree::runtime::logs::ConnectionLogLayer;
    let registry = tracing_subscriber::registry().with(connection_logs);
    let file = full_screen
        .then(|| {
            flametree::fsutil::create_private_dir(data_dir).ok()?;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(data_dir.join("flametree.log"))
                .ok()
        })
        .flatten();
    let _ = match file {
        Some(f) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(Redacting(std::sync::Mutex::new(f)))
                    .with_filter(EnvFilter::new(&filter)),
            )
            .try_init(),
        None if full_screen => registry.try_init(),
        None => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(colour_on_stderr())
                    .with_writer(Redacting(std::io::stderr))
                    .with_filter(EnvFilter::new(&filter)),
            )
            .try_init(),
    };
}
