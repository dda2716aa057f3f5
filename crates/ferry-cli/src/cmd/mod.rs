//! One module per subcommand.

pub mod agent;
pub mod artifact;
pub mod bench;
pub mod delta;
pub mod demo;
pub mod demo_preflight;
pub mod keygen;
pub mod patch;
pub mod quickstart;
pub mod scan;
pub mod server;
pub mod tuf_client;

/// Sets up `tracing` output on stderr, `RUST_LOG` overriding `default`.
pub fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal()).try_init();
}

/// A multi-threaded tokio runtime for async commands.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}
