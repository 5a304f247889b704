//! `roomtape`: the operator tool.
//!
//! `args` is the command line; each subcommand has its module (`record`, `recordings`, `dlq`,
//! `notifications`, `doctor`, `simulate`) with its own arguments and a `run`; `output` holds the printing
//! conventions they share; `error` says what failed and which exit status that is.

mod args;
mod dlq;
mod doctor;
mod error;
mod notifications;
mod output;
mod record;
mod recordings;
mod simulate;
mod usage;

use std::io::Write;

use roomtape_shared::config::Env;
use roomtape_shared::Chain;

pub use args::Cli;
use args::Top;
use error::CliError;
use output::Output;

/// Runs the command; writes what it prints to `out` (coloured only if `terminal` and `NO_COLOR`
/// is unset); returns the process exit status (see `--help`).
pub async fn execute(cli: Cli, env: &Env, out: &mut (dyn Write + Send), terminal: bool) -> u8 {
    let color = terminal && std::env::var_os("NO_COLOR").is_none();
    let mut out = Output::new(out, cli.json, color);
    let result = match &cli.command {
        Top::Record(record) => record::run(record, env, cli.timeout, &mut out).await,
        Top::Recordings(command) => recordings::run(command, env, &mut out).await,
        Top::Dlq(command) => dlq::run(command, env, &mut out).await,
        Top::Notifications(command) => notifications::run(command, env, &mut out).await,
        Top::Doctor(args) => doctor::run(args, env, &mut out).await,
        Top::Simulate(args) => simulate::run(args, env, cli.timeout, &mut out).await,
        Top::Usage(args) => usage::run(args, env, &mut out).await,
    };
    match result {
        Ok(code) => code,
        Err(error) => report(&mut out, &error),
    }
}

fn report(out: &mut Output<'_>, error: &CliError) -> u8 {
    out.line(format!("roomtape: {}", Chain(error)));
    error.exit_code()
}
