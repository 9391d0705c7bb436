//! The `acp` command line: one binary for every acp component.
//!
//! `main` only parses arguments; [`run`] dispatches to the subcommand. Each
//! component lives in its own crate; this crate wires them to the command line.
#![forbid(unsafe_code)]

mod crds;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// GitOps for AI coding-agent sessions on Kubernetes.
///
/// Teams commit AgenticSession manifests to git; acp applies them to a cluster,
/// runs each as a Job driving the Claude Code CLI, and writes results back to git
/// and to the pull request that asked for the work.
#[derive(Debug, Parser)]
#[command(name = "acp", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// acp's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print acp's CustomResourceDefinitions (AgenticSession, SessionSource).
    ///
    /// Without options, prints every CRD as one multi-document YAML stream, ready
    /// for `kubectl apply --server-side -f -`. With `--out DIR`, writes one file
    /// per CRD (`<plural>.<group>.yaml`) instead; the repository's `crds/` is made
    /// this way. With `--check DIR`, exits 1 if DIR differs from the generated CRDs.
    Crds(crds::CrdsArgs),
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Crds(args) => crds::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("acp: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
