//! `ferry agent`.

use ferry_agent::{Agent, AgentConfig, AttemptOutcome, RunSummary};
use ferry_core::Component;
use serde_json::json;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code of `--once` when an update failed and the device stayed on (or rolled back to) its old version.
const EXIT_UPDATE_FAILED: u8 = 3;

/// Options of `ferry agent`.
#[derive(clap::Args)]
pub struct Args {
    /// Agent configuration (TOML).
    #[arg(long, default_value = "/etc/ferry/agent.toml", global = true)]
    config: PathBuf,
    /// Check in once, apply what is offered, report, and exit (instead of running on the schedule).
    #[arg(long)]
    once: bool,
    /// Print machine-readable events (one JSON object per line) on stdout.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    action: Option<Action>,
}

/// Agent subcommands.
#[derive(clap::Subcommand)]
enum Action {
    /// Factory install: put a verified artifact into its component's storage space as the active release.
    Bootstrap {
        /// `main` or `agent`.
        #[arg(long)]
        component: Component,
        /// The signed `.ferry` artifact.
        #[arg(long)]
        artifact: PathBuf,
    },
    /// Enroll with the server (trade the enrollment token for a device credential) without checking in.
    Enroll,
    /// Check that this binary can run as an agent (used to trial-run a new agent before switching to it).
    SelfTest,
}

fn emit(json: bool, value: serde_json::Value) {
    if json {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{value}");
        let _ = out.flush();
    }
}

fn summary_json(s: &RunSummary) -> serde_json::Value {
    let attempts: Vec<_> = s
        .attempts
        .iter()
        .map(|a| {
            json!({
                "component": a.component, "from": a.from, "to": a.to, "outcome": a.outcome.to_string(),
                "reason": a.reason, "bytes_downloaded": a.bytes_downloaded, "bytes_this_run": a.bytes_this_run,
                "resumed": a.resumed, "segment_retries": a.segment_retries, "rolled_back": a.rolled_back,
                "reported": a.reported,
            })
        })
        .collect();
    json!({
        "event": "summary",
        "attempts": attempts,
        "nothing_new": s.nothing_new.as_ref().map(ferry_agent::report::describe_nothing_new),
    })
}

/// Runs the agent (once, forever, or a subcommand).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(Action::SelfTest) = args.action {
        ferry_agent::self_test()?;
        println!("ferry agent self-test: ok");
        return Ok(ExitCode::SUCCESS);
    }
    super::init_tracing(if args.json { "warn" } else { "info" });
    let config = AgentConfig::from_toml_file(&args.config)?;
    let mut agent = Agent::new(config)?;
    let json = args.json;
    super::runtime()?.block_on(async move {
        match args.action {
            Some(Action::Bootstrap { component, artifact }) => {
                let v = agent.bootstrap(component, &artifact).await?;
                println!("installed {component} {v} from {}", artifact.display());
                Ok(ExitCode::SUCCESS)
            }
            Some(Action::Enroll) => {
                agent.enroll().await?;
                println!("enrolled");
                Ok(ExitCode::SUCCESS)
            }
            Some(Action::SelfTest) => unreachable!("handled above"),
            None if args.once => {
                agent.on_progress(move |p| {
                    emit(json, json!({"event": "progress", "component": p.component, "version": p.version, "done": p.done, "total": p.total}));
                    ControlFlow::Continue(())
                });
                agent.on_state(move |s| {
                    emit(json, json!({"event": "state", "state": s.name()}));
                    ControlFlow::Continue(())
                });
                let summary = agent.run_once().await?;
                for a in summary.attempts.iter().filter(|a| a.resumed || a.segment_retries > 0) {
                    emit(json, json!({"event": "resumed", "component": a.component, "from_disk": a.resumed, "segment_retries": a.segment_retries}));
                }
                if let Some(r) = &summary.nothing_new {
                    emit(json, json!({"event": "nothing_new", "reason": ferry_agent::report::describe_nothing_new(r)}));
                }
                emit(json, summary_json(&summary));
                if !json {
                    print!("{summary}");
                }
                // Exit 3 when a component's last attempt of this run failed (it did not end on the
                // offered version); a refused delta followed by a good full install is a success.
                let failed = [Component::Agent, Component::Main].into_iter().any(|c| {
                    summary.attempts.iter().rev().find(|a| a.component == c && a.outcome != AttemptOutcome::Skipped).is_some_and(|a| a.outcome == AttemptOutcome::Failure)
                });
                Ok(if failed { ExitCode::from(EXIT_UPDATE_FAILED) } else { ExitCode::SUCCESS })
            }
            None => {
                agent.run_forever().await?;
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}
