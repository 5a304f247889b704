//! A delivery, decoded once into what handlers need: no AMQP types reach them.

use std::time::Duration;

use lapin::message::Delivery;
use roomtape_shared::queue::{commands, headers};

/// Which try this is, and when the retry schedule would try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pub number: u32,
    /// The delay before the next try if this one fails; `None` when the schedule is used up.
    pub next_delay: Option<Duration>,
}

impl Attempt {
    /// Try `number` (1 for the first delivery) of a message retried after `delays`.
    pub fn nth(number: u32, delays: &[Duration]) -> Self {
        Self {
            number,
            next_delay: delays.get(number as usize - 1).copied(),
        }
    }

    /// Whether a failure now can still be retried through a delay queue.
    pub fn can_retry(self) -> bool {
        self.next_delay.is_some()
    }
}

/// One message of a queue, as handlers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub body: Vec<u8>,
    /// The AMQP `message_id`: the event id, or a command's idempotency key.
    pub message_id: Option<String>,
    /// The AMQP `type`: the event name or command.
    pub kind: Option<String>,
    /// The routing key it was first published with, through any retries.
    pub routing_key: String,
    /// Where a reply goes, if the sender wants one.
    pub reply_to: Option<String>,
    pub correlation_id: Option<String>,
    pub attempt: Attempt,
    /// When the sender stamped it (seconds since the epoch).
    pub published_at: Option<u64>,
    /// When the sender sent it, in milliseconds since the epoch, if it said so
    /// (`x-roomtape-sent-at-ms`).
    pub sent_at_ms: Option<u64>,
}

impl Message {
    /// A first delivery of `body` with no properties: what tests and tools start from.
    pub fn new(body: impl Into<Vec<u8>>, routing_key: &str) -> Self {
        Self {
            body: body.into(),
            message_id: None,
            kind: None,
            routing_key: routing_key.to_owned(),
            reply_to: None,
            correlation_id: None,
            attempt: Attempt::nth(1, &[]),
            published_at: None,
            sent_at_ms: None,
        }
    }

    /// Decodes `delivery`, taking its body (the worker keeps the rest for settling).
    pub fn take_from(delivery: &mut Delivery, retry_delays: &[Duration]) -> Self {
        let properties = &delivery.properties;
        let header_map = properties.headers().as_ref();
        let text =
            |value: &Option<lapin::types::ShortString>| value.as_ref().map(|v| v.to_string());
        let number = headers::count(header_map, headers::ATTEMPT)
            .unwrap_or(1)
            .max(1);
        Self {
            routing_key: headers::text(header_map, headers::ROUTING_KEY)
                .unwrap_or_else(|| delivery.routing_key.to_string()),
            message_id: text(properties.message_id()),
            kind: text(properties.kind()),
            reply_to: text(properties.reply_to()),
            correlation_id: text(properties.correlation_id()),
            attempt: Attempt::nth(number, retry_delays),
            published_at: *properties.timestamp(),
            sent_at_ms: commands::sent_at_ms(header_map),
            body: std::mem::take(&mut delivery.data),
        }
    }

    /// The name for metrics and logs: the AMQP `type`, else the routing key.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or(&self.routing_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_allows_one_retry_per_delay() {
        let delays = [Duration::from_secs(1), Duration::from_secs(5)];
        assert_eq!(Attempt::nth(1, &delays).next_delay, Some(delays[0]));
        assert_eq!(Attempt::nth(2, &delays).next_delay, Some(delays[1]));
        assert!(!Attempt::nth(3, &delays).can_retry());
        assert!(!Attempt::nth(1, &[]).can_retry());
    }
}
