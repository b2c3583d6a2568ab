//! `syncctl`: the thin binary. It parses arguments, resolves settings, runs one command and
//! reports exactly one `syncctl.result/v1` JSON object as the last line of stdout.
//!
//! Only this crate knows about clap, stdout and exit codes. Everything it runs lives in the
//! library crates.

mod alerting;
mod app;
mod cli;
#[cfg(test)]
mod command_docs;
mod commands;
mod context;
mod env_flags;
mod error;
mod exit;
mod help;
mod logging;
mod output;
mod progress;
mod signals;
mod summary;

use std::process::ExitCode;

fn main() -> ExitCode {
    app::main(std::env::args_os().collect(), std::env::vars_os())
}
