//! `roomtape-processor [run]` consumes; `roomtape-processor migrate` only migrates the database.

use std::process::ExitCode;

use roomtape_processor::config::ProcessorSettings;
use roomtape_processor::startup::Application;
use roomtape_shared::clock::Clock;
use roomtape_shared::config::{DatabaseSettings, Env, TelemetrySettings};
use roomtape_shared::{db, shutdown, telemetry};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let env = Env::from_process();
    match std::env::args().nth(1).as_deref() {
        None | Some("run") => run(&env).await,
        Some("migrate") => migrate(&env).await,
        Some(other) => {
            eprintln!("roomtape-processor: unknown command {other:?}; usage: roomtape-processor [run|migrate]");
            ExitCode::from(2)
        }
    }
}

async fn run(env: &Env) -> ExitCode {
    let settings = match ProcessorSettings::from_env(env) {
        Ok(settings) => settings,
        Err(error) => return config_error(error),
    };
    telemetry::init(&settings.telemetry);
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
