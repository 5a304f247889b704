use std::io::IsTerminal;

use clap::Parser;
use roomtape_cli::{execute, Cli};
use roomtape_shared::config::Env;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let terminal = std::io::stdout().is_terminal();
    let code = execute(cli, &Env::from_process(), &mut std::io::stdout(), terminal).await;
    std::process::ExitCode::from(code)
}
