//! `roomtape recordings`: list, show, presigned URL, delete, sweep.

use roomtape_shared::config::Env;

use crate::error::{CliError, EXIT_USAGE};
use crate::output::Output;

#[derive(Debug, clap::Subcommand)]
pub enum RecordingsCommand {}

pub async fn run(
    command: &RecordingsCommand,
    _env: &Env,
    out: &mut Output<'_>,
) -> Result<u8, CliError> {
    match *command {}
    #[allow(unreachable_code)]
    {
        out.line("not built yet");
        Ok(EXIT_USAGE)
    }
}
