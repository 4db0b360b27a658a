use clap::Parser;
use flametree::cli::{self, Cli};

fn main() {
    let cli = Cli::parse();
    init_tracing();
    let env: Vec<(String, String)> = std::env::vars().collect();
    let loaded = match flametree::config::load(cli.config.as_deref(), &env) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(cli::exit::INVALID);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(cli::exit::FAILURE);
        }
    };
    if let Err(failure) = runtime.block_on(cli::run(cli, loaded)) {
        eprintln!("error: {}", failure.message);
        std::process::exit(failure.code);
    }
}

/// Diagnostics go to stderr, quiet unless FLAMETREE_LOG (or RUST_LOG) asks for more.
fn init_tracing() {
    let filter = std::env::var("FLAMETREE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}
