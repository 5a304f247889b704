//! `roomtape`: the operator tool. `record start` and `record stop` publish a command to
//! `roomtape.commands`, wait for the processor's reply and print it; `dlq replay` moves dead
//! letters back to the queue they failed on.
//!
//! `args` is the command line, `record` and `dlq` do the work, `error` says what failed and
//! which exit status that is; this file runs a parsed command and prints its outcome.

mod args;
mod dlq;
mod error;
mod record;

use std::io::Write;

use roomtape_shared::config::Env;
use roomtape_shared::Chain;
use serde_json::json;

pub use args::Cli;
use args::{Dlq, Top};
use error::{CliError, EXIT_OK, EXIT_REFUSED};

/// Runs the command; writes what it prints to `out`; returns the process exit code
/// (0 ok, 1 the processor refused, 2 configuration, 3 no reply).
pub async fn execute(cli: Cli, env: &Env, out: &mut impl Write) -> u8 {
    let printed = match &cli.command {
        Top::Record(record) => record::run(record, env, cli.timeout)
            .await
            .map(|reply| print_reply(out, &reply, cli.json)),
        Top::Dlq(Dlq::Replay { limit }) => dlq::replay(env, *limit)
            .await
            .map(|replayed| print_replayed(out, &replayed, cli.json)),
    };
    match printed {
        Ok(code) => code,
        Err(error) => report(out, &error),
    }
}

fn report(out: &mut impl Write, error: &CliError) -> u8 {
    let _ = writeln!(out, "roomtape: {}", Chain(error));
    error.exit_code()
}

fn print_reply(out: &mut impl Write, reply: &serde_json::Value, json: bool) -> u8 {
    let _ = if json {
        writeln!(out, "{reply}")
    } else {
        writeln!(out, "{}", record::summary(reply))
    };
    if reply["ok"] == true {
        EXIT_OK
    } else {
        EXIT_REFUSED
    }
}

fn print_replayed(out: &mut impl Write, replayed: &dlq::Replayed, json: bool) -> u8 {
    let _ = if json {
        writeln!(
            out,
            "{}",
            json!({"replayed": replayed.by_queue, "left": replayed.left})
        )
    } else {
        let moved: Vec<String> = replayed
            .by_queue
            .iter()
            .map(|(q, n)| format!("{n} to {q}"))
            .collect();
        let moved = if moved.is_empty() {
            "nothing".to_owned()
        } else {
            moved.join(", ")
        };
        writeln!(
            out,
            "replayed {moved}; {} left in roomtape.dead (no source queue)",
            replayed.left
        )
    };
    EXIT_OK
}
