//! `ferry`: the command line. Clap definitions and calls into the library crates; no logic.

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Ferry: secure over-the-air updates for fleets of Linux devices.
#[derive(Parser)]
#[command(name = "ferry", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a server, signed releases and a small fleet of real agents end to end, then print what happened.
    Quickstart(cmd::quickstart::Args),
    /// Create TUF repository keys and a release-signing key.
    Keygen(cmd::keygen::Args),
    /// Build, sign, inspect and verify `.ferry` artifacts.
    #[command(subcommand)]
    Artifact(cmd::artifact::Command),
    /// Run the update server (query service, file service, or both).
    Server(cmd::server::Args),
    /// Run the device agent.
    Agent(cmd::agent::Args),
    /// Statically scan firmware (a directory, a file or a `.ferry` artifact): ELF hardening, dangerous imports, signatures, secrets.
    Scan(cmd::scan::Args),
    /// Standard TUF client (init, refresh, download); exits 0 on success, 1 on any failure.
    TufClient(cmd::tuf_client::Args),
    /// Binary deltas: diff two files, apply a patch, compare with other differs.
    #[command(subcommand)]
    Delta(cmd::delta::Command),
    /// Live patches: build one from two builds, apply it to a running process, roll it back.
    #[command(subcommand)]
    Patch(cmd::patch::Command),
    /// Demonstrations of single capabilities, with their figures.
    #[command(subcommand)]
    Demo(cmd::demo::Command),
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(cmd::bench::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Quickstart(a) => cmd::quickstart::run(a),
        Command::Keygen(a) => cmd::keygen::run(a),
        Command::Artifact(c) => cmd::artifact::run(c),
        Command::Server(a) => cmd::server::run(a),
        Command::Agent(a) => cmd::agent::run(a),
        Command::Scan(a) => cmd::scan::run(a),
        Command::TufClient(a) => cmd::tuf_client::run(a),
        Command::Delta(c) => cmd::delta::run(c),
        Command::Patch(c) => cmd::patch::run(c),
        Command::Demo(c) => cmd::demo::run(c),
        Command::Bench(c) => cmd::bench::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
