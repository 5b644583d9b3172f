//! `jetim`: every service in one process, or one each; migrations; operator tools.
//!
//! - `main.rs`: the command line; loads the config and dispatches.
//! - `start.rs`: connecting to NATS and Postgres, applying streams and migrations, and running
//!   the services until Ctrl-C or SIGTERM.
//! - `ops.rs`: `jetim ops …`, what an operator asks of the log.
//!
//! Every failure ends in one line on stderr naming the setting and what is wrong, and exit
//! status 1; never a panic or a backtrace.

mod bench;
mod ops;
mod start;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use jetim_common::config::{CONFIG_FILE_VARIABLE, Config};

/// mimalloc instead of the system allocator: a rebuild spent a third of jetim's CPU in
/// glibc's malloc and free (perf, `jetim bench rebuild`); see docs/performance.md.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// jetim: an OpenIM-compatible IM server, event-sourced on NATS JetStream.
#[derive(Debug, Parser)]
#[command(name = "jetim", version, about)]
struct Cli {
    /// The YAML config file (see ops/jetim.yaml); JETIM_<SECTION>__<KEY> variables override it.
    #[arg(long, short, global = true, env = CONFIG_FILE_VARIABLE)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every service in one process: the REST API, the gateway, the push service and the
    /// projector.
    All,
    /// Run the REST API service only.
    Api,
    /// Run the WebSocket gateway only.
    Gateway,
    /// Run the projector only: builds the Postgres read models from the log.
    Projector,
    /// Run the push service only: delivers new messages to the gateways holding their
    /// recipients, and hands offline recipients to the offline push.
    Push,
    /// Apply the stream definitions and the SQL migrations, then exit.
    Migrate,
    /// Operator tools.
    Ops {
        #[command(subcommand)]
        command: ops::OpsCommand,
    },
    /// Load scenarios that print figures next to a baseline; for a throwaway stack.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        match cli.command {
            Command::All => start::run_services(&config, start::Services::ALL).await,
            Command::Api => start::run_services(&config, start::Services::API).await,
            Command::Gateway => start::run_services(&config, start::Services::GATEWAY).await,
            Command::Projector => start::run_services(&config, start::Services::PROJECTOR).await,
            Command::Push => start::run_services(&config, start::Services::PUSH).await,
            Command::Migrate => start::migrate(&config).await,
            Command::Ops { command } => ops::run(&config, command).await,
            Command::Bench { command } => bench::run(&config, command).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
