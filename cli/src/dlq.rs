//! `roomtape dlq replay`: moves dead letters back to the queue they failed on, for another full
//! retry schedule, once the cause is fixed. Each copy is confirmed before its original is acked.

use std::collections::BTreeMap;

use lapin::message::BasicGetMessage;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use roomtape_shared::config::{AmqpSettings, Env};
use roomtape_shared::queue::{self, topology::DEAD_QUEUE};

use crate::command::CliError;

/// Set by the processor on what it dead-letters.
const SOURCE_QUEUE_HEADER: &str = "x-roomtape-source-queue";
/// Dropped on replay: the message starts its retry schedule afresh.
const RESET_HEADERS: [&str; 3] = [
    "x-roomtape-error",
    "x-roomtape-attempt",
    SOURCE_QUEUE_HEADER,
];

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
    let headers = message.delivery.properties.headers().as_ref()?;
    let text = |value: &AMQPValue| match value {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    };
    if let Some(queue) = headers.inner().get(SOURCE_QUEUE_HEADER).and_then(text) {
        return Some(queue);
    }
    match headers.inner().get("x-death")? {
        AMQPValue::FieldArray(deaths) => deaths.as_slice().iter().find_map(|death| match death {
            AMQPValue::FieldTable(death) => death.inner().get("queue").and_then(text),
            _ => None,
        }),
        _ => None,
    }
}

async fn republish(
    channel: &Channel,
    queue: &str,
    message: &BasicGetMessage,
) -> Result<(), CliError> {
    let delivery = &message.delivery;
    let mut headers = FieldTable::default();
    if let Some(original) = delivery.properties.headers() {
        for (key, value) in original.inner() {
            if !RESET_HEADERS.contains(&key.as_str()) {
                headers.insert(key.clone(), value.clone());
            }
        }
    }
    let properties = delivery.properties.clone().with_headers(headers);
    publish_confirmed(channel, "", queue, &delivery.data, properties).await
}

/// Publishes with `mandatory` and waits for the confirm: a nack or a message no queue takes is
/// an error.
pub(crate) async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> Result<(), CliError> {
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let confirmation = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            options,
            body,
            properties,
        )
        .await?
        .await?;
    if confirmation.is_nack() {
        return Err(CliError::Nacked);
    }
    if confirmation.take_message().is_some() {
        return Err(CliError::Unroutable);
    }
    Ok(())
}
