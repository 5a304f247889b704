//! Settling one delivery: ack it, or move it to a delay queue or the dead-letter queue first.
//! The copy is confirmed by the broker before the original is acked, so a message is never in
//! neither place; if the copy fails, the original is returned to its queue.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel};
use roomtape_shared::queue::topology::{retry_queue, DEAD_QUEUE};

use crate::error::Disposition;
use crate::publish::{self, PublishError};

/// Header carrying which attempt a message is on (1 for the first delivery).
const ATTEMPT_HEADER: &str = "x-roomtape-attempt";
/// Headers a dead letter carries: why, from which queue, after how many attempts.
const ERROR_HEADER: &str = "x-roomtape-error";
const SOURCE_QUEUE_HEADER: &str = "x-roomtape-source-queue";
/// The routing key the message was first published with: a retried message comes back from
/// its delay queue under the queue's name.
const ROUTING_KEY_HEADER: &str = "x-roomtape-routing-key";

/// The routing key the message was published with, through any retries.
pub fn original_routing_key(delivery: &Delivery) -> &str {
    match delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(ROUTING_KEY_HEADER))
    {
        Some(AMQPValue::LongString(key)) => std::str::from_utf8(key.as_bytes()).unwrap_or_default(),
        _ => delivery.routing_key.as_str(),
    }
}

/// Which try this is, and whether it is the last one the retry schedule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pub number: u32,
    pub is_last: bool,
}

impl Attempt {
    pub fn first(schedule_len: usize) -> Self {
        Self::numbered(1, schedule_len)
    }

    fn numbered(number: u32, schedule_len: usize) -> Self {
        Self {
            number,
            is_last: number as usize > schedule_len,
        }
    }

    pub fn of(delivery: &Delivery, schedule_len: usize) -> Self {
        let number = delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(ATTEMPT_HEADER))
            .and_then(as_u32)
            .unwrap_or(1)
            .max(1);
        Self::numbered(number, schedule_len)
    }
}

fn as_u32(value: &AMQPValue) -> Option<u32> {
    match value {
        AMQPValue::LongUInt(n) => Some(*n),
        AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::ShortInt(n) => u32::try_from(*n).ok(),
        _ => None,
    }
}

/// How long ago the message was stamped (publishers set `timestamp` in seconds).
pub fn lag(delivery: &Delivery) -> Option<Duration> {
    let stamped = (*delivery.properties.timestamp())?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(now.saturating_sub(stamped)))
}

/// Carries out `disposition` (never `RetryInPlace`, which the caller loops on).
pub async fn settle(
    republish: &Channel,
    queue: &str,
    delivery: &Delivery,
    attempt: Attempt,
    retry_delays: &[Duration],
    disposition: Disposition,
) {
    let moved = match disposition {
        Disposition::Ack | Disposition::RetryInPlace(_) => Ok(()),
        Disposition::RetryLater(error) => match retry_delays.get(attempt.number as usize - 1) {
            Some(delay) => {
                let headers = [
                    (ATTEMPT_HEADER, AMQPValue::LongUInt(attempt.number + 1)),
                    (ERROR_HEADER, text(&error)),
                ];
                tracing::info!(retry_in = ?delay, next_attempt = attempt.number + 1, "retrying later");
                copy_to(republish, &retry_queue(queue, *delay), delivery, &headers).await
            }
            None => dead_letter(republish, queue, delivery, attempt, &error).await,
        },
        Disposition::DeadLetter(error) => {
            dead_letter(republish, queue, delivery, attempt, &error).await
        }
    };
    let settled = match moved {
        Ok(()) => delivery.ack(BasicAckOptions::default()).await,
        Err(error) => {
            tracing::error!(%error, "could not move the message; returning it to its queue");
            delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await
        }
    };
    if let Err(error) = settled {
        // The channel is gone: the broker redelivers the message, and dedupe makes that safe.
        tracing::warn!(%error, "could not settle the delivery");
    }
}

async fn dead_letter(
    republish: &Channel,
    queue: &str,
    delivery: &Delivery,
    attempt: Attempt,
    error: &str,
) -> Result<(), PublishError> {
    tracing::error!(%error, attempts = attempt.number, "dead-lettering the message");
    let headers = [
        (ATTEMPT_HEADER, AMQPValue::LongUInt(attempt.number)),
        (ERROR_HEADER, text(error)),
        (SOURCE_QUEUE_HEADER, text(queue)),
    ];
    copy_to(republish, DEAD_QUEUE, delivery, &headers).await
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// Publishes a copy of `delivery` (same body and properties, `headers` added) straight to
/// `queue` through the default exchange, and waits for the broker's confirm.
async fn copy_to(
    channel: &Channel,
    queue: &str,
    delivery: &Delivery,
    headers: &[(&str, AMQPValue)],
) -> Result<(), PublishError> {
    let mut table: FieldTable = delivery.properties.headers().clone().unwrap_or_default();
    table.insert(
        ROUTING_KEY_HEADER.into(),
        text(original_routing_key(delivery)),
    );
    for (key, value) in headers {
        table.insert((*key).into(), value.clone());
    }
    let properties: BasicProperties = delivery.properties.clone().with_headers(table);
    publish::confirmed(channel, "", queue, true, &delivery.data, properties).await
}
