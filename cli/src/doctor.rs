//! `roomtape doctor`.

use roomtape_shared::config::Env;

use crate::error::{CliError, EXIT_USAGE};
use crate::output::Output;

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {}

pub async fn run(_args: &DoctorArgs, _env: &Env, out: &mut Output<'_>) -> Result<u8, CliError> {
    out.line("not built yet");
    Ok(EXIT_USAGE)
}
