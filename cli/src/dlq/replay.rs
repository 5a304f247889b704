//! `roomtape dlq replay`: dead letters back to the queue they failed on.

use std::collections::BTreeMap;

use roomtape_shared::config::Env;
use roomtape_shared::queue::topology::DEAD_QUEUE;
use serde_json::json;

use crate::error::{CliError, EXIT_OK};
use crate::output::{self, Output};

use super::letter::{message_id_of, source_queue};
use super::queue::DeadLetters;

pub async fn run(
    env: &Env,
    message_id: Option<&str>,
    limit: usize,
    out: &mut Output<'_>,
) -> Result<u8, CliError> {
    let replayed = replay(env, message_id, limit).await?;
    if let Some(id) = message_id {
        if replayed.matched == 0 {
            return Err(CliError::NoDeadLetter(id.to_owned()));
        }
        if replayed.moved() == 0 {
            return Err(CliError::NoSourceQueue(id.to_owned()));
        }
    }
    print_replayed(out, &replayed);
    Ok(EXIT_OK)
}

fn print_replayed(out: &mut Output<'_>, replayed: &Replayed) {
    if out.json {
        let value = json!({
            "replayed": replayed.by_queue,
            "left": replayed.left,
            "not_reached": replayed.not_reached,
        });
        out.json_value(&value);
        return;
    }
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
    let mut line = format!(
        "replayed {moved}; {} left in {DEAD_QUEUE} (no source queue)",
        replayed.left
    );
    if replayed.not_reached > 0 {
        line.push_str(&format!(
            "; {} not replayed yet (--limit): run it again",
            replayed.not_reached
        ));
    }
    out.line(line);
}

/// What a replay did.
#[derive(Debug, Default)]
struct Replayed {
    by_queue: BTreeMap<String, usize>,
    /// Looked at but left in `roomtape.dead`: no source queue recorded on them.
    left: usize,
    /// Dead letters (with the requested id, if one was given) seen.
    matched: usize,
    /// Ready in `roomtape.dead` when the replay started, and not looked at: `--limit` was
    /// reached first.
    not_reached: usize,
}

impl Replayed {
    fn moved(&self) -> usize {
        self.by_queue.values().sum()
    }
}

/// Moves up to `limit` dead letters (only those with `message_id`, if given) back to the queue
/// they failed on; every other message looked at goes to the back of `roomtape.dead`.
async fn replay(env: &Env, message_id: Option<&str>, limit: usize) -> Result<Replayed, CliError> {
    let dead = DeadLetters::open(env).await?;
    let bar = output::progress(u64::from(dead.ready), "replaying roomtape.dead");
    let mut replayed = Replayed::default();
    let mut taken = 0;
    while taken < dead.ready as usize && replayed.moved() < limit {
        let Some(message) = dead.take().await? else {
            break;
        };
        taken += 1;
        let wanted = message_id.is_none() || message_id == message_id_of(&message).as_deref();
        let queue = source_queue(message.delivery.properties.headers());
        match (wanted, queue) {
            (true, Some(queue)) => {
                dead.move_to(&queue, &message).await?;
                *replayed.by_queue.entry(queue).or_default() += 1;
                replayed.matched += 1;
            }
            (true, None) => {
                dead.keep(&message).await?;
                replayed.left += 1;
                replayed.matched += 1;
            }
            (false, _) => dead.keep(&message).await?,
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if message_id.is_none() {
        replayed.not_reached = (dead.ready as usize).saturating_sub(taken);
    }
    dead.close().await;
    Ok(replayed)
}
