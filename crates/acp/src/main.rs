//! The `acp` command: parses arguments and hands them to [`acp::run`].
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    acp::run(acp::Cli::parse())
}
