//! The hitcounter binary: parse the configuration, set up logging, bind, and run the library.

use std::process::ExitCode;

use clap::Parser;
use hitcounter::cli::{Cli, run_command};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// The static build's allocator ([`hitcounter::memory`] says why).
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Logging when `RUST_LOG` is unset: our own events at info. Connection errors (one for every
/// malformed request a bot sends) are debug lines of `hitcounter::http::accept`, shown when asked for,
/// e.g. `RUST_LOG=info,hitcounter::http::accept=debug`.
const DEFAULT_LOG: &str = "info";

/// The filter of a `RUST_LOG` value. A bare level (`debug`) is hitcounter's own, other crates
/// staying at warn (or the level, if quieter) so that sled's internals do not drown our lines;
/// directives that name a target (`sled=debug`) are used as given.
fn log_filter(spec: &str) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    let mut directives = vec![LevelFilter::WARN.to_string()];
    for directive in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        match directive.parse::<LevelFilter>() {
            Ok(level) => {
                directives.push(level.min(LevelFilter::WARN).to_string());
                directives.push(format!("hitcounter={level}"));
            }
            Err(_) => directives.push(directive.to_owned()),
        }
    }
    EnvFilter::try_new(directives.join(","))
}

fn main() -> ExitCode {
    // Before the runtime exists: the allocator's settings must precede every other thread.
    hitcounter::memory::tune_allocator();
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(serve()),
        Err(err) => {
            eprintln!("hitcounter: cannot start the async runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a subcommand, or the server until a shutdown signal.
async fn serve() -> ExitCode {
    let Cli {
        command,
        serve: config,
        ..
    } = Cli::parse();
    if let Some(command) = command {
        return match run_command(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("hitcounter: {err}");
                ExitCode::FAILURE
            }
        };
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            // An empty or unusable RUST_LOG is as if unset.
            std::env::var("RUST_LOG")
                .ok()
                .filter(|spec| !spec.trim().is_empty())
                .and_then(|spec| log_filter(&spec).ok())
                .or_else(|| log_filter(DEFAULT_LOG).ok())
                .unwrap_or_else(|| EnvFilter::new(DEFAULT_LOG)),
        )
        .init();
    match hitcounter::http::accept::raise_open_files_limit() {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        // Under a unit that forbids setrlimit, LimitNOFILE= has set it already.
        Err(err) => tracing::debug!(cause = %err, "cannot raise the open files limit"),
    }
    let listener = match TcpListener::bind(config.bind).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("hitcounter: cannot listen on {}: {err}", config.bind);
            return ExitCode::FAILURE;
        }
    };
    match hitcounter::run(config, listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hitcounter: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM (what systemd sends on stop).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut sigterm = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        Ok(signal) => signal,
        Err(err) => {
            eprintln!(
                "hitcounter: cannot listen for SIGTERM ({err}); only Ctrl-C stops gracefully"
            );
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = sigterm.recv() => {}
    }
}
