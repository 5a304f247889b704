//! `roomtape dlq`: the dead-letter queue. `replay` moves dead letters back to the queue they
//! failed on, for another full retry schedule, once the cause is fixed. Each copy is confirmed
//! before its original is acked.

use std::collections::BTreeMap;

use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::Channel;
use roomtape_shared::config::{AmqpSettings, Env};
use roomtape_shared::queue::topology::DEAD_QUEUE;
use roomtape_shared::queue::{self, headers, publish_confirmed, Outgoing, CONFIRM_TIMEOUT};

use crate::error::{CliError, EXIT_OK};
use crate::output::Output;

#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// Move dead letters back to the queue they failed on, for a fresh retry schedule.
    Replay {
        /// At most this many messages.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}

pub async fn run(command: &DlqCommand, env: &Env, out: &mut Output<'_>) -> Result<u8, CliError> {
    match command {
        DlqCommand::Replay { limit } => {
            let replayed = replay(env, *limit).await?;
            print_replayed(out, &replayed);
            Ok(EXIT_OK)
        }
    }
}

fn print_replayed(out: &mut Output<'_>, replayed: &Replayed) {
    if out.json {
        let value = serde_json::json!({"replayed": replayed.by_queue, "left": replayed.left});
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
    out.line(format!(
        "replayed {moved}; {} left in roomtape.dead (no source queue)",
        replayed.left
    ));
}

/// What a replay did.
#[derive(Debug, Default)]
pub struct Replayed {
    pub by_queue: BTreeMap<String, usize>,
    /// Left in `roomtape.dead`: no source queue recorded on them.
    pub left: usize,
}

pub async fn replay(env: &Env, limit: usize) -> Result<Replayed, CliError> {
    let settings = AmqpSettings::from_env(env)?;
    let connection = queue::connect(&settings, "roomtape-cli").await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let mut replayed = Replayed::default();
    // Held unacked until the end, so the loop does not see them again.
    let mut unknown = Vec::new();
    while replayed.by_queue.values().sum::<usize>() + unknown.len() < limit {
        let Some(message) = channel
            .basic_get(DEAD_QUEUE.into(), BasicGetOptions::default())
            .await?
        else {
            break;
        };
        match source_queue(&message) {
            Some(queue) => {
                republish(&channel, &queue, &message).await?;
                message.ack(BasicAckOptions::default()).await?;
                *replayed.by_queue.entry(queue).or_default() += 1;
            }
            None => unknown.push(message),
        }
    }
    replayed.left = unknown.len();
    for message in unknown {
        let requeue = BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        };
        message.nack(requeue).await?;
    }
    let _ = connection.close(200, "replayed".into()).await;
    Ok(replayed)
}

/// The processor's header, or for messages the broker dead-lettered (delivery limit), the
/// queue in their first `x-death` entry.
fn source_queue(message: &BasicGetMessage) -> Option<String> {
    let found = message.delivery.properties.headers().as_ref();
    headers::text(found, headers::SOURCE_QUEUE).or_else(|| headers::first_death_queue(found))
}

/// A copy of the dead letter to `queue`, without the headers of its last retry schedule.
async fn republish(
    channel: &Channel,
    queue: &str,
    message: &BasicGetMessage,
) -> Result<(), CliError> {
    let delivery = &message.delivery;
    let mut kept = FieldTable::default();
    if let Some(original) = delivery.properties.headers() {
        for (key, value) in original.inner() {
            if !headers::RETRY_STATE.contains(&key.as_str()) {
                kept.insert(key.clone(), value.clone());
            }
        }
    }
    let properties = delivery.properties.clone().with_headers(kept);
    let copy = Outgoing::to_queue(queue, &delivery.data, properties);
    publish_confirmed(channel, copy, CONFIRM_TIMEOUT).await?;
    Ok(())
}
