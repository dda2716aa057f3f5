//! `ferry server`.

use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `ferry server`.
#[derive(clap::Args)]
pub struct Args {
    /// Server configuration (TOML).
    #[arg(long, default_value = "server.toml")]
    config: PathBuf,
    /// Override the role in the config: `all`, `query` (API + metadata) or `files` (file service).
    #[arg(long)]
    role: Option<String>,
    /// Override the listen address in the config.
    #[arg(long)]
    listen: Option<String>,
}

/// Runs the server until Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::init_tracing("info,tower_http=info");
    let mut cfg = ferry_server::ServerConfig::from_toml_file(&args.config)?;
    if let Some(role) = args.role {
        cfg.role = serde_json::from_value(serde_json::Value::String(role.clone()))
            .map_err(|_| anyhow::anyhow!("--role {role}: expected all, query or files"))?;
    }
    if let Some(listen) = args.listen {
        cfg.listen = listen.parse().map_err(|e| anyhow::anyhow!("--listen {listen}: {e} (expected IP:PORT)"))?;
    }
    super::runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&cfg.listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.listen))?;
        eprintln!("ferry server ({:?}) listening on http://{}", cfg.role, listener.local_addr()?);
        ferry_server::serve(cfg, listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
    })?;
    Ok(ExitCode::SUCCESS)
}
