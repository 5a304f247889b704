//! Whether RabbitMQ is blocking publishers (a memory or disk alarm), so that webhooks are
//! answered 503 at once instead of queueing frames behind a socket the broker stopped reading.
//!
//! RabbitMQ tells a connection it blocks it with `connection.blocked`, but only a connection
//! that advertised the `connection.blocked` capability, and only once that connection publishes
//! during the alarm. amqprs, which carries the webhooks, does not advertise it. So a small lapin
//! connection (lapin does) publishes a probe every [`PROBE_EVERY`] to a queue of its own that
//! keeps nothing, and turns the broker's `connection.blocked` / `connection.unblocked` into a
//! flag the webhook handler reads. Asking the management API instead would need its URL and
//! credentials, and a plugin production brokers do not always expose.
//!
//! Blocking is node-wide (an alarm on any cluster node blocks publishers on all of them), so one
//! watcher per ingestor tells for every publish connection. While the watcher cannot reach the
//! broker the flag is down: the publish connections then fail on their own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, Event};
use roomtape_shared::config::AmqpSettings;
use roomtape_shared::queue::reconnect::{run_reconnecting, Backoff, Established};
use roomtape_shared::queue::{self};
use roomtape_shared::shutdown::Shutdown;

use crate::metrics::IngestorMetrics;

/// How often the watcher publishes its probe: how late, at most, an alarm is noticed. Five tiny
/// transient messages a second, dropped by the broker at once.
pub const PROBE_EVERY: Duration = Duration::from_millis(200);
const RECONNECT: Backoff = Backoff {
    min: Duration::from_millis(200),
    max: Duration::from_secs(2),
};
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a watching session ended.
#[derive(Debug, thiserror::Error)]
enum WatchError {
    #[error("broker error")]
    Broker(#[from] lapin::Error),
    #[error("no answer within {CONNECT_TIMEOUT:?}")]
    Timeout,
    #[error("the connection closed")]
    Lost,
}

/// The broker's publisher block as last reported; cheap to read on every webhook.
#[derive(Debug)]
pub struct BrokerAlarm {
    blocked: AtomicBool,
    metrics: IngestorMetrics,
}

impl BrokerAlarm {
    pub fn new(metrics: IngestorMetrics) -> Self {
        Self {
            blocked: AtomicBool::new(false),
            metrics,
        }
    }

    /// Whether the broker blocks publishers now.
    pub fn is_blocked(&self) -> bool {
        self.blocked.load(Ordering::Acquire)
    }

    fn set(&self, blocked: bool, reason: &str) {
        if self.blocked.swap(blocked, Ordering::AcqRel) == blocked {
            return;
        }
        self.metrics.set_broker_blocked(blocked);
        if blocked {
            tracing::warn!(
                reason,
                "RabbitMQ blocks publishers (resource alarm): webhooks are answered 503 until it \
                 lifts"
            );
        } else {
            tracing::info!(reason, "RabbitMQ publishes again");
        }
    }

    /// Watches until `shutdown`, reconnecting when the broker goes away.
    pub async fn watch(self: Arc<Self>, settings: AmqpSettings, shutdown: Shutdown) {
        let what = format!("broker alarm watcher for {}", settings.address());
        run_reconnecting(&what, RECONNECT, &shutdown, |established| {
            let (alarm, settings, shutdown) = (self.clone(), settings.clone(), shutdown.clone());
            async move {
                let result = tokio::select! {
                    () = shutdown.cancelled() => Ok(()),
                    result = alarm.watch_session(&settings, established) => result,
                };
                alarm.set(false, "the watcher's connection ended");
                result
            }
        })
        .await;
    }

    async fn watch_session(
        &self,
        settings: &AmqpSettings,
        established: Established,
    ) -> Result<(), WatchError> {
        let (connection, probe_queue) = tokio::time::timeout(CONNECT_TIMEOUT, open(settings))
            .await
            .map_err(|_| WatchError::Timeout)??;
        let mut events = connection.events_listener();
        let channel = connection.create_channel().await?;
        established.mark();
        let mut probe = tokio::time::interval(PROBE_EVERY);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Event::ConnectionBlocked(reason)) => self.set(true, &reason),
                    Some(Event::ConnectionUnblocked) => self.set(false, "unblocked"),
                    Some(Event::Error(error)) => return Err(error.into()),
                    Some(_) => {}
                    None => return Err(WatchError::Lost),
                },
                _ = probe.tick() => {
                    // A blocked connection publishes nothing more: the broker reads nothing
                    // from it until it sends `connection.unblocked`.
                    if !self.is_blocked() {
                        let publish = channel.basic_publish(
                            "".into(),
                            probe_queue.as_str().into(),
                            BasicPublishOptions::default(),
                            b"",
                            BasicProperties::default(),
                        );
                        let _not_confirmed = tokio::time::timeout(PROBE_EVERY, publish)
                            .await
                            .map_err(|_| WatchError::Timeout)??;
                    }
                }
            }
        }
    }
}

/// The watcher's connection and the server-named queue its probes go to: exclusive (gone with
/// the connection) and `x-max-length` 0, so a probe is dropped on arrival without counting as
/// unroutable in the broker's metrics.
async fn open(settings: &AmqpSettings) -> Result<(Connection, String), WatchError> {
    let connection = queue::connect(settings, "roomtape-ingestor-alarm-watch").await?;
    let channel = connection.create_channel().await?;
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(0));
    let options = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    let queue = channel.queue_declare("".into(), options, arguments).await?;
    Ok((connection, queue.name().as_str().to_owned()))
}
