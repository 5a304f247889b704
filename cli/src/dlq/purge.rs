//! `roomtape dlq purge`: delete every dead letter, once confirmed.

use std::io::IsTerminal;

use lapin::options::QueuePurgeOptions;
use roomtape_shared::config::Env;
use roomtape_shared::queue::topology::DEAD_QUEUE;
use serde_json::json;

use crate::error::{CliError, EXIT_OK};
use crate::output::{self, Output};

use super::letter::dead_letters;
use super::queue::DeadLetters;

pub async fn run(env: &Env, yes: bool, out: &mut Output<'_>) -> Result<u8, CliError> {
    let dead = DeadLetters::open(env).await?;
    if dead.ready == 0 && !yes && std::io::stdin().is_terminal() {
        dead.close().await;
        out.line(format!("{DEAD_QUEUE} is already empty"));
        return Ok(EXIT_OK);
    }
    let question = format!(
        "delete {} in {DEAD_QUEUE} for good?",
        dead_letters(dead.ready as usize)
    );
    // The answer is read on a thread of its own: the connection stays served meanwhile.
    let answer = tokio::task::spawn_blocking(move || output::confirm(&question, yes))
        .await
        .unwrap_or_else(|error| Err(CliError::Prompt(std::io::Error::other(error))));
    if let Err(error) = answer {
        dead.close().await;
        return Err(error);
    }
    let purged = dead
        .channel
        .queue_purge(DEAD_QUEUE.into(), QueuePurgeOptions::default())
        .await?;
    dead.close().await;
    if out.json {
        out.json_value(&json!({"purged": purged}));
    } else {
        out.line(format!(
            "purged {} from {DEAD_QUEUE}",
            dead_letters(purged as usize)
        ));
    }
    Ok(EXIT_OK)
}
