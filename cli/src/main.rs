use clap::Parser;
use roomtape_cli::{execute, Cli};
use roomtape_shared::config::Env;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let code = execute(cli, &Env::from_process(), &mut std::io::stdout()).await;
    std::process::ExitCode::from(code)
}
