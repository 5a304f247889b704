//! `roomtape dlq list`: a table of dead letters with their last error.

use roomtape_shared::config::Env;
use roomtape_shared::queue::topology::DEAD_QUEUE;
use serde_json::{json, Value};

use crate::error::{CliError, EXIT_OK};
use crate::output::{self, Output};

use super::letter::{dead_letters, Summary};
use super::queue::DeadLetters;

pub async fn run(env: &Env, limit: usize, out: &mut Output<'_>) -> Result<u8, CliError> {
    let dead = DeadLetters::open(env).await?;
    let total = dead.ready;
    let walk = total.min(u32::try_from(limit).unwrap_or(u32::MAX));
    let bar = output::progress(u64::from(walk), "reading roomtape.dead");
    let mut shown = Vec::new();
    for _ in 0..walk {
        let Some(message) = dead.take().await? else {
            break;
        };
        shown.push(Summary::of(&message.delivery.properties));
        dead.keep(&message).await?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    dead.close().await;

    if out.json {
        let letters: Vec<Value> = shown.iter().map(Summary::json).collect();
        out.json_value(&json!({"total": total, "dead_letters": letters}));
        return Ok(EXIT_OK);
    }
    if total == 0 {
        out.line(format!("{DEAD_QUEUE} is empty"));
        return Ok(EXIT_OK);
    }
    let header = [
        "message_id",
        "kind",
        "source queue",
        "attempts",
        "when",
        "last error",
    ];
    let rows = shown.iter().map(Summary::row).collect();
    out.table(&header, rows);
    if shown.len() < total as usize {
        out.line(format!(
            "showing {} of {}; those shown are now at the back of {DEAD_QUEUE}, so `roomtape dlq list` again shows the next ones (or raise --limit)",
            shown.len(),
            dead_letters(total as usize)
        ));
    } else {
        out.line(format!("{} in {DEAD_QUEUE}", dead_letters(total as usize)));
    }
    Ok(EXIT_OK)
}
