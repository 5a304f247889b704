//! Publishes verified events to `livekit.events` with publisher confirms, and keeps a healthy
//! confirm-mode channel around: a background task reconnects with backoff whenever the
//! connection or channel dies, and `/readyz` reports whether one is usable right now.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::options::ConfirmSelectOptions;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection};
use roomtape_shared::clock::Clock;
use roomtape_shared::config::AmqpSettings;
use roomtape_shared::queue::reconnect::{run_reconnecting, Backoff};
use roomtape_shared::queue::{self, publish_confirmed, topology, Outgoing, PublishError};
use roomtape_shared::shutdown::Shutdown;
use tokio::sync::Notify;

use crate::metrics::IngestorMetrics;
use crate::webhook::VerifiedEvent;

const RECONNECT: Backoff = Backoff {
    min: Duration::from_millis(100),
    max: Duration::from_secs(5),
};
/// How long connecting may take before trying again.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the keeper looks at the channel when nothing woke it.
const HEALTH_POLL: Duration = Duration::from_secs(1);

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

/// Why the keeper's connection ended.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("cannot connect")]
    Connect(#[from] lapin::Error),
    #[error("no answer within {CONNECT_TIMEOUT:?}")]
    ConnectTimeout,
    #[error("the connection or channel closed")]
    Lost,
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
        let what = format!("publisher at {}", self.settings.address());
        run_reconnecting(&what, RECONNECT, &shutdown, || self.keep_link(&shutdown)).await;
        self.close().await;
    }

    /// Opens a link and watches it until it breaks (`Err`) or `shutdown` (`Ok`).
    async fn keep_link(&self, shutdown: &Shutdown) -> Result<(), LinkError> {
        let link = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            opened = tokio::time::timeout(CONNECT_TIMEOUT, self.open()) => {
                opened.map_err(|_| LinkError::ConnectTimeout)??
            }
        };
        tracing::info!("connected to the broker");
        self.replace(Some(Arc::new(link)));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = self.wake_keeper.notified() => {}
                () = tokio::time::sleep(HEALTH_POLL) => {}
            }
            if !self.is_ready() {
                return Err(LinkError::Lost);
            }
        }
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
        let message = Outgoing::to_exchange(
            topology::EVENTS_EXCHANGE,
            &key,
            event.body(),
            properties(event),
        );
        match publish_confirmed(&link.channel, message, self.confirm_timeout).await {
            Ok(()) => Ok(Published::Queued),
            Err(PublishError::Unroutable { .. }) if !topology::is_consumed(&key) => {
                Ok(Published::NotSubscribed)
            }
            Err(error) => Err(error),
        }
    }
}

/// AMQP properties of CONTRACTS §3, so any LiveKit SDK consumer can use the message as is.
fn properties(event: &VerifiedEvent) -> BasicProperties {
    let timestamp = event
        .envelope()
        .created_at
        .and_then(|secs| u64::try_from(secs).ok())
        .unwrap_or_else(|| Clock::System.now_unix());
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
