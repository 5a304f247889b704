//! Settling a delivery on the broker: ack it (after its reply), or move it to a delay queue or
//! the dead-letter queue first. A copy is confirmed by the broker before the original is acked,
//! so a message is never in neither place; if the copy fails, the original is returned to its
//! queue.

use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use roomtape_shared::queue::topology::{retry_queue, DEAD_QUEUE};
use roomtape_shared::queue::{headers, publish_confirmed, Outgoing, PublishError, CONFIRM_TIMEOUT};
use roomtape_shared::Chain;
use serde_json::Value;

use super::acks::Acks;
use super::{Message, Settlement};
use crate::error::HandleError;

/// Carries out `settlement` for `delivery`, whose decoded form is `message`. With `acks`, an
/// ack is only noted there, for the batch's [`Acks::flush`]; a nack is sent at once.
pub async fn settle(
    channel: &Channel,
    queue: &str,
    delivery: &Delivery,
    message: &Message,
    settlement: Settlement,
    acks: Option<&Acks>,
) {
    let settlement = match settlement {
        Settlement::Ack(handled) => match &handled.reply {
            Some(reply) => match send_reply(channel, message, reply).await {
                Ok(()) => Settlement::Ack(handled),
                // What was stored answers the redelivery the same way.
                Err(error) => Settlement::Retry(HandleError::Publish(error)),
            },
            None => Settlement::Ack(handled),
        },
        other => other,
    };
    let moved = match &settlement {
        Settlement::Ack(_) => Ok(()),
        Settlement::Retry(error) => match message.attempt.next_delay {
            Some(delay) => {
                let reason = Chain(error).to_string();
                let next = message.attempt.number + 1;
                tracing::info!(retry_in = ?delay, next_attempt = next, error = %reason, "retrying later");
                let added = [
                    (headers::ATTEMPT, AMQPValue::LongUInt(next)),
                    (headers::ERROR, headers::string(&reason)),
                ];
                copy_to(
                    channel,
                    &retry_queue(queue, delay),
                    delivery,
                    message,
                    &added,
                )
                .await
            }
            None => dead_letter(channel, queue, delivery, message, error).await,
        },
        Settlement::DeadLetter(error) => {
            dead_letter(channel, queue, delivery, message, error).await
        }
    };
    let settling = async {
        match (moved, acks) {
            (Ok(()), Some(acks)) => {
                acks.settled(delivery.delivery_tag);
                Ok(true)
            }
            (Ok(()), None) => delivery.ack(BasicAckOptions::default()).await,
            (Err(error), _) => {
                tracing::error!(error = %Chain(&error), "could not move the message; returning it to its queue");
                let requeue = BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                };
                let nacked = delivery.nack(requeue).await;
                if let Some(acks) = acks {
                    acks.done(delivery.delivery_tag);
                }
                nacked
            }
        }
    };
    // The channel is gone in both failures: the broker redelivers the message, and dedupe makes
    // that safe.
    match tokio::time::timeout(SETTLE_TIMEOUT, settling).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::warn!(%error, "could not settle the delivery"),
        Err(_) => tracing::warn!(
            timeout = ?SETTLE_TIMEOUT,
            "could not settle the delivery: lapin never completed the ack or nack"
        ),
    }
}

/// How long an ack or nack may take. Lapin completes one once its frame is handed to the
/// connection, so this only bounds the case where it never does: an ack queued in the instant
/// the connection fails (after its IO loop has stopped the command loop, before the channels
/// are marked failed) stays in lapin's command queue unrun, its promise pending, for as long as
/// anything holds the connection's handles, which the waiting task itself does (lapin 4.12.3).
/// Unbounded, that task never ends, and the consuming session waiting for it never reconnects
/// nor lets the process stop.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Publishes `reply` to the message's `reply_to` (a requester that has gone away is not an
/// error) with its `correlation_id`.
async fn send_reply(
    channel: &Channel,
    message: &Message,
    reply: &Value,
) -> Result<(), PublishError> {
    let Some(reply_to) = &message.reply_to else {
        return Ok(());
    };
    let mut properties = BasicProperties::default().with_content_type("application/json".into());
    if let Some(correlation_id) = &message.correlation_id {
        properties = properties.with_correlation_id(correlation_id.as_str().into());
    }
    let body = reply.to_string();
    let outgoing = Outgoing {
        mandatory: false,
        ..Outgoing::to_queue(reply_to, body.as_bytes(), properties)
    };
    publish_confirmed(channel, outgoing, CONFIRM_TIMEOUT).await
}

async fn dead_letter(
    channel: &Channel,
    queue: &str,
    delivery: &Delivery,
    message: &Message,
    error: &HandleError,
) -> Result<(), PublishError> {
    let reason = Chain(error).to_string();
    tracing::error!(error = %reason, attempts = message.attempt.number, "dead-lettering the message");
    let added = [
        (
            headers::ATTEMPT,
            AMQPValue::LongUInt(message.attempt.number),
        ),
        (headers::ERROR, headers::string(&reason)),
        (headers::SOURCE_QUEUE, headers::string(queue)),
    ];
    copy_to(channel, DEAD_QUEUE, delivery, message, &added).await
}

/// Publishes a copy of the message (same body and properties, `added` headers and its original
/// routing key set) straight to `queue`, and waits for the broker's confirm.
async fn copy_to(
    channel: &Channel,
    queue: &str,
    delivery: &Delivery,
    message: &Message,
    added: &[(&str, AMQPValue)],
) -> Result<(), PublishError> {
    let mut table: FieldTable = delivery.properties.headers().clone().unwrap_or_default();
    table.insert(
        headers::ROUTING_KEY.into(),
        headers::string(&message.routing_key),
    );
    for (key, value) in added {
        table.insert((*key).into(), value.clone());
    }
    let properties = delivery.properties.clone().with_headers(table);
    let copy = Outgoing::to_queue(queue, &message.body, properties);
    publish_confirmed(channel, copy, CONFIRM_TIMEOUT).await
}
