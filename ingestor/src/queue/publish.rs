//! Publishes verified events to `livekit.events` with publisher confirms, and keeps a healthy
//! confirm-mode channel around: a background task reconnects with backoff whenever the
//! connection or channel dies, and `/readyz` reports whether one is usable right now.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection};
use roomtape_shared::config::AmqpSettings;
use roomtape_shared::queue::{self, topology};
use roomtape_shared::shutdown::Shutdown;
use tokio::sync::Notify;

use crate::metrics::IngestorMetrics;
use crate::webhook::VerifiedEvent;

const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(100);
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long connecting may take before trying again.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the keeper looks at the channel when nothing woke it.
const HEALTH_POLL: Duration = Duration::from_secs(1);

/// Why an event was not confirmed; every case is answered 503 so that LiveKit retries.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("not connected to the broker")]
    NotConnected,
    #[error("broker error: {0}")]
    Broker(#[from] lapin::Error),
    #[error("broker refused the message (nack)")]
    Nacked,
    #[error("no queue is bound for routing key {0:?}")]
    Unroutable(String),
    #[error("no confirm from the broker within {0:?}")]
    Timeout(Duration),
}

/// What a confirmed publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Stored in at least one queue.
    Queued,
    /// An event roomtape does not consume (`track_*`, `ingress_*`) and nobody else has bound a
    /// queue for. It is acknowledged anyway: a 503 would make LiveKit retry it forever, filling
    /// its webhook queue until it drops the events that matter.
    NotSubscribed,
}

struct Link {
    // Kept so the connection lives as long as its channel.
    connection: Connection,
    channel: Channel,
}

impl Link {
    fn usable(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

/// The ingestor's publisher; cheap to share behind an `Arc`.
pub struct Publisher {
    settings: AmqpSettings,
    confirm_timeout: Duration,
    link: Mutex<Option<Arc<Link>>>,
    wake_keeper: Notify,
    metrics: IngestorMetrics,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

impl Publisher {
    pub fn new(
        settings: AmqpSettings,
        confirm_timeout: Duration,
        metrics: IngestorMetrics,
    ) -> Self {
        Self {
            settings,
            confirm_timeout,
            link: Mutex::new(None),
            wake_keeper: Notify::new(),
            metrics,
        }
    }

    /// Whether a publish could be confirmed right now.
    pub fn is_ready(&self) -> bool {
        self.current().is_some()
    }

    fn current(&self) -> Option<Arc<Link>> {
        let link = self.link.lock().ok()?.clone()?;
        link.usable().then_some(link)
    }

    /// Keeps a usable channel until `shutdown`, then closes it. Run it as a task.
    pub async fn keep_connected(self: Arc<Self>, shutdown: Shutdown) {
        let mut backoff = RECONNECT_BACKOFF_MIN;
        loop {
            if !self.is_ready() {
                let opened = tokio::select! {
                    () = shutdown.cancelled() => break,
                    opened = tokio::time::timeout(CONNECT_TIMEOUT, self.open()) => opened,
                };
                let failure = match opened {
                    Ok(Ok(link)) => {
                        tracing::info!("connected to the broker");
                        self.replace(Some(Arc::new(link)));
                        backoff = RECONNECT_BACKOFF_MIN;
                        None
                    }
                    Ok(Err(error)) => Some(error.to_string()),
                    Err(_) => Some(format!("no answer within {CONNECT_TIMEOUT:?}")),
                };
                if let Some(error) = failure {
                    tracing::warn!(%error, retry_in = ?backoff, "cannot connect to the broker");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
                    continue;
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake_keeper.notified() => {}
                () = tokio::time::sleep(HEALTH_POLL) => {}
            }
        }
        self.close().await;
    }

    async fn open(&self) -> lapin::Result<Link> {
        let connection = queue::connect(&self.settings, "roomtape-ingestor").await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        topology::declare(&channel, &self.settings.retry_delays).await?;
        Ok(Link {
            connection,
            channel,
        })
    }

    fn replace(&self, link: Option<Arc<Link>>) {
        if let Ok(mut slot) = self.link.lock() {
            *slot = link;
        }
    }

    async fn close(&self) {
        let link = self.link.lock().ok().and_then(|mut slot| slot.take());
        if let Some(link) = link {
            let _ = link.connection.close(200, "shutting down".into()).await;
        }
    }

    /// Publishes `event` and waits for the broker's confirm.
    pub async fn publish(&self, event: &VerifiedEvent) -> Result<Published, PublishError> {
        let _in_flight = self.metrics.publish_started();
        let started = Instant::now();
        let result = self.publish_confirmed(event).await;
        self.metrics.observe_confirm(started.elapsed());
        if matches!(
            result,
            Err(PublishError::NotConnected | PublishError::Broker(_) | PublishError::Timeout(_))
        ) {
            // The channel may be dead: let the keeper look now rather than at its next poll.
            self.wake_keeper.notify_one();
        }
        result
    }

    async fn publish_confirmed(&self, event: &VerifiedEvent) -> Result<Published, PublishError> {
        let link = self.current().ok_or(PublishError::NotConnected)?;
        let key = event.envelope().routing_key();
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let confirm = async {
            link.channel
                .basic_publish(
                    topology::EVENTS_EXCHANGE.into(),
                    key.as_str().into(),
                    options,
                    event.body(),
                    properties(event),
                )
                .await?
                .await
        };
        let confirmation = tokio::time::timeout(self.confirm_timeout, confirm)
            .await
            .map_err(|_| PublishError::Timeout(self.confirm_timeout))??;
        if confirmation.is_nack() {
            return Err(PublishError::Nacked);
        }
        match confirmation.take_message() {
            None => Ok(Published::Queued),
            Some(_) if !topology::is_consumed(&key) => Ok(Published::NotSubscribed),
            Some(_) => Err(PublishError::Unroutable(key)),
        }
    }
}

/// AMQP properties of CONTRACTS §3, so any LiveKit SDK consumer can use the message as is.
fn properties(event: &VerifiedEvent) -> BasicProperties {
    let timestamp = event
        .envelope()
        .created_at
        .and_then(|secs| u64::try_from(secs).ok())
        .unwrap_or_else(now_unix);
    let mut headers = FieldTable::default();
    headers.insert(
        "x-livekit-key".into(),
        AMQPValue::LongString(LongString::from(event.api_key())),
    );
    BasicProperties::default()
        .with_message_id(event.message_id().into())
        .with_type(event.envelope().event.as_str().into())
        .with_timestamp(timestamp)
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_headers(headers)
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
