//! `roomtape-processor [run]` consumes; `roomtape-processor migrate` only migrates the database.

use std::process::ExitCode;

use roomtape_processor::config::ProcessorSettings;
use roomtape_processor::startup::Application;
use roomtape_shared::clock::Clock;
use roomtape_shared::config::{DatabaseSettings, Env, TelemetrySettings};
use roomtape_shared::{db, shutdown, telemetry};
use tokio::runtime::{Builder, Runtime};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let env = Env::from_process();
    match std::env::args().nth(1).as_deref() {
        None | Some("run") => run(&env),
        Some("migrate") => match runtime(1) {
            Ok(runtime) => runtime.block_on(migrate(&env)),
            Err(error) => no_runtime(error),
        },
        Some(other) => {
            eprintln!("roomtape-processor: unknown command {other:?}; usage: roomtape-processor [run|migrate]");
            ExitCode::from(2)
        }
    }
}

fn run(env: &Env) -> ExitCode {
    let settings = match ProcessorSettings::from_env(env) {
        Ok(settings) => settings,
        Err(error) => return config_error(error),
    };
    telemetry::init(&settings.telemetry);
    match runtime(settings.threads) {
        Ok(runtime) => runtime.block_on(serve(settings)),
        Err(error) => no_runtime(error),
    }
}

/// The async runtime, on `threads` threads. One (the default) is the cheapest per event: a
/// delivery, its statements and its ack then wake no other thread of ours (a quarter less CPU
/// per event than tokio's multi-threaded runtime, `docs/benchmarks.md`); more processors, or
/// more threads, take more cores.
fn runtime(threads: usize) -> std::io::Result<Runtime> {
    let mut builder = match threads {
        1 => Builder::new_current_thread(),
        _ => {
            let mut builder = Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
    };
    builder.enable_all().build()
}

fn no_runtime(error: std::io::Error) -> ExitCode {
    eprintln!("roomtape-processor: cannot start the async runtime: {error}");
    ExitCode::FAILURE
}

async fn serve(settings: ProcessorSettings) -> ExitCode {
    let app = match Application::build(settings, Clock::System).await {
        Ok(app) => app,
        Err(error) => {
            tracing::error!("cannot start: {}", roomtape_shared::Chain(&error));
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(port = app.port(), "roomtape-processor running");
    match app.run_until_stopped(shutdown::on_terminate_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "stopped with an error");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(env: &Env) -> ExitCode {
    let settings = match DatabaseSettings::from_env(env) {
        Ok(settings) => settings,
        Err(error) => return config_error(error),
    };
    if let Ok(telemetry_settings) = TelemetrySettings::from_env(env) {
        telemetry::init(&telemetry_settings);
    }
    match db::migrate(&settings).await {
        Ok(applied) => {
            println!(
                "roomtape-processor: database is up to date ({applied} migrations applied now)"
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("roomtape-processor: {}", roomtape_shared::Chain(&error));
            ExitCode::FAILURE
        }
    }
}

fn config_error(error: roomtape_shared::config::ConfigError) -> ExitCode {
    eprintln!("roomtape-processor: {error}");
    ExitCode::from(2)
}
