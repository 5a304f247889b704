//! The exchanges and queues of CONTRACTS §3, declared idempotently by whoever starts first.
//!
//! ```text
//! livekit.events (topic) ──egress.# room.# participant.#──▶ roomtape.events (quorum)
//! roomtape.commands (direct) ──recording.start|stop──────▶ roomtape.commands (quorum)
//! <queue>.retry.<delay> (quorum, TTL) ──expires──▶ default exchange ──▶ <queue>
//! any failure past the schedule, or unparseable ─────────▶ roomtape.dead (quorum)
//! roomtape.notifications (topic) ──recording.# room.#──▶ whatever queues the apps bind
//! ```

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

/// Where the ingestor publishes LiveKit webhooks.
pub const EVENTS_EXCHANGE: &str = "livekit.events";
/// The processor's queue of LiveKit events.
pub const EVENTS_QUEUE: &str = "roomtape.events";
/// Routing-key patterns bound to [`EVENTS_QUEUE`].
pub const EVENTS_BINDINGS: [&str; 3] = ["egress.#", "room.#", "participant.#"];
/// Where any AMQP client publishes recording commands.
pub const COMMANDS_EXCHANGE: &str = "roomtape.commands";
pub const COMMANDS_QUEUE: &str = "roomtape.commands";
pub const COMMAND_ROUTING_KEYS: [&str; 2] = ["recording.start", "recording.stop"];
/// Where the processors' relay publishes notifications (CONTRACTS §8), routed by their type
/// (`recording.ready`, `room.finished`). roomtape binds no queue to it: each app binds its own.
pub const NOTIFICATIONS_EXCHANGE: &str = "roomtape.notifications";
/// Messages that can never succeed, or failed past the retry schedule.
pub const DEAD_QUEUE: &str = "roomtape.dead";
/// Redeliveries after which the broker itself dead-letters a message (a consumer crashing on it
/// over and over); the processor's own retries go through the delay queues instead.
pub const DELIVERY_LIMIT: i64 = 20;

/// Whether events with this routing key land in [`EVENTS_QUEUE`]: every binding is `<word>.#`.
pub fn is_consumed(routing_key: &str) -> bool {
    let first_word = routing_key.split('.').next().unwrap_or_default();
    EVENTS_BINDINGS
        .iter()
        .any(|binding| binding.strip_suffix(".#") == Some(first_word))
}

/// The delay queue that holds a message of `queue` for `delay` before handing it back.
pub fn retry_queue(queue: &str, delay: Duration) -> String {
    let delay = humantime::format_duration(delay)
        .to_string()
        .replace(' ', "");
    format!("{queue}.retry.{delay}")
}

/// Declares everything. Safe to call any number of times, from any number of processes: the
/// arguments never change for a given name (a changed `RETRY_DELAYS` makes new queue names).
pub async fn declare(channel: &Channel, retry_delays: &[Duration]) -> lapin::Result<()> {
    declare_exchange(channel, EVENTS_EXCHANGE, ExchangeKind::Topic).await?;
    declare_exchange(channel, COMMANDS_EXCHANGE, ExchangeKind::Direct).await?;
    declare_notifications(channel).await?;
    declare_queue(channel, DEAD_QUEUE, dead_queue_args()).await?;
    for (queue, exchange, keys) in [
        (EVENTS_QUEUE, EVENTS_EXCHANGE, &EVENTS_BINDINGS[..]),
        (COMMANDS_QUEUE, COMMANDS_EXCHANGE, &COMMAND_ROUTING_KEYS[..]),
    ] {
        declare_queue(channel, queue, work_queue_args()).await?;
        for key in keys {
            let options = QueueBindOptions::default();
            channel
                .queue_bind(
                    queue.into(),
                    exchange.into(),
                    (*key).into(),
                    options,
                    FieldTable::default(),
                )
                .await?;
        }
        for delay in retry_delays {
            let name = retry_queue(queue, *delay);
            declare_queue(channel, &name, retry_queue_args(queue, *delay)).await?;
        }
    }
    Ok(())
}

/// Declares [`NOTIFICATIONS_EXCHANGE`], what the relay publishes to (also declared with the
/// rest by [`declare`]).
pub async fn declare_notifications(channel: &Channel) -> lapin::Result<()> {
    // Topic, so an app binds what it wants (`recording.#`, `recording.ready`, `#`); durable, so
    // the apps' bindings outlive a broker restart.
    declare_exchange(channel, NOTIFICATIONS_EXCHANGE, ExchangeKind::Topic).await
}

/// What a queue holds, asked without changing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueCounts {
    /// Messages ready (not handed to a consumer).
    pub messages: u32,
    pub consumers: u32,
}

/// Counts of `queue`, by a passive declare on a channel of its own (asking about a queue that
/// does not exist closes the channel it is asked on).
pub async fn inspect(connection: &lapin::Connection, queue: &str) -> lapin::Result<QueueCounts> {
    let channel = connection.create_channel().await?;
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await?;
    let _ = channel.close(200, "inspected".into()).await;
    Ok(QueueCounts {
        messages: declared.message_count(),
        consumers: declared.consumer_count(),
    })
}

async fn declare_exchange(channel: &Channel, name: &str, kind: ExchangeKind) -> lapin::Result<()> {
    let options = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(name.into(), kind, options, FieldTable::default())
        .await
}

async fn declare_queue(channel: &Channel, name: &str, args: FieldTable) -> lapin::Result<()> {
    channel
        .queue_declare(name.into(), QueueDeclareOptions::durable(), args)
        .await
        .map(drop)
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in entries {
        table.insert(ShortString::from(*key), value.clone());
    }
    table
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

fn quorum() -> (&'static str, AMQPValue) {
    // Replicated and fsynced before the publisher confirm: what was answered 2xx survives a
    // broker crash.
    ("x-queue-type", text("quorum"))
}

fn dead_letter_to(queue: &str) -> [(&'static str, AMQPValue); 4] {
    [
        // The default exchange routes by queue name, so no extra exchange is needed.
        ("x-dead-letter-exchange", text("")),
        ("x-dead-letter-routing-key", text(queue)),
        // Keep the message until the target queue confirms it (quorum queues only)…
        ("x-dead-letter-strategy", text("at-least-once")),
        // …which RabbitMQ allows only when overflow rejects publishes instead of dropping.
        ("x-overflow", text("reject-publish")),
    ]
}

fn work_queue_args() -> FieldTable {
    let mut entries = vec![
        quorum(),
        // A message that keeps crashing its consumer is dead-lettered by the broker.
        ("x-delivery-limit", AMQPValue::LongLongInt(DELIVERY_LIMIT)),
    ];
    entries.extend(dead_letter_to(DEAD_QUEUE));
    table(&entries)
}

fn retry_queue_args(target: &str, delay: Duration) -> FieldTable {
    let ttl_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    let mut entries = vec![
        quorum(),
        // Every message waits the same time here, so expiry is first-in first-out.
        ("x-message-ttl", AMQPValue::LongLongInt(ttl_ms)),
    ];
    // On expiry the message goes back to the queue it failed on.
    entries.extend(dead_letter_to(target));
    table(&entries)
}

fn dead_queue_args() -> FieldTable {
    // Kept until an operator replays or purges it.
    table(&[quorum()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_which_routing_keys_it_consumes() {
        for key in [
            "egress.ended",
            "room.started",
            "participant.joined",
            "participant.connection.aborted",
        ] {
            assert!(is_consumed(key), "{key}");
        }
        for key in ["track.published", "ingress.started", "egressx.ended", ""] {
            assert!(!is_consumed(key), "{key}");
        }
    }

    #[test]
    fn names_retry_queues_by_delay() {
        assert_eq!(
            retry_queue(EVENTS_QUEUE, Duration::from_secs(120)),
            "roomtape.events.retry.2m"
        );
        assert_eq!(
            retry_queue(COMMANDS_QUEUE, Duration::from_millis(1500)),
            "roomtape.commands.retry.1s500ms"
        );
    }
}
