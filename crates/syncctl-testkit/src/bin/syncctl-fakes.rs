//! `syncctl-fakes serve <service> --port N`: runs a testkit fake as a process for examples,
//! demos and benchmarks.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "syncctl-fakes",
    about = "Stateful fake servers of the APIs syncctl talks to (testing only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve one fake on 127.0.0.1.
    Serve {
        /// The service to fake (see `list`).
        service: String,
        /// The port (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// List the fakes.
    List,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let registry = syncctl_testkit::services::registry();
    match cli.command {
        Cmd::List => {
            for s in &registry {
                println!("{:<12} {}", s.name, s.about);
            }
            std::process::ExitCode::SUCCESS
        }
        Cmd::Serve { service, port } => {
            let Some(entry) = registry.iter().find(|s| s.name == service) else {
                let names: Vec<_> = registry.iter().map(|s| s.name).collect();
                eprintln!(
                    "error: unknown service {service:?}; known: {}",
                    names.join(", ")
                );
                return std::process::ExitCode::from(2);
            };
            let server = syncctl_testkit::FakeServer::start_on((entry.router)(), port).await;
            println!("{}", server.url());
            let _ = tokio::signal::ctrl_c().await;
            drop(server);
            std::process::ExitCode::SUCCESS
        }
    }
}
