//! `roomtape simulate`.

use roomtape_shared::config::Env;

use crate::error::{CliError, EXIT_USAGE};
use crate::output::Output;

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {}

pub async fn run(_args: &SimulateArgs, _env: &Env, out: &mut Output<'_>) -> Result<u8, CliError> {
    out.line("not built yet");
    Ok(EXIT_USAGE)
}
