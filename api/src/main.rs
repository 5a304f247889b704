use roomtape_api::config::ApiSettings;
use roomtape_api::startup::Application;
use roomtape_shared::clock::Clock;
use roomtape_shared::config::Env;
use roomtape_shared::{shutdown, telemetry};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let settings = match ApiSettings::from_env(&Env::from_process()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("roomtape-api: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    telemetry::init(&settings.telemetry);
    let bind = settings.bind;
    let app = match Application::build(settings, Clock::System) {
        Ok(app) => app,
        Err(error) => {
            tracing::error!(%error, %bind, "cannot start");
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing::info!(port = app.port(), "roomtape-api listening");
    match app.run_until_stopped(shutdown::on_terminate_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "stopped with an error");
            std::process::ExitCode::FAILURE
        }
    }
}
