//! Publishes verified events to `livekit.events` with publisher confirms, over a pool of
//! confirm-mode channels spread over a few connections.
//!
//! One confirm channel is one broker process confirming in order: it capped the ingestor at
//! about 27,000 webhooks/s whatever its cores. The pool has `channels` channels on `connections`
//! connections (channel `i` lives on connection `i % connections`); each publish takes the next
//! channel round-robin, skipping unusable ones, and awaits its own confirm, so confirms of
//! different requests are pipelined on every channel. A keeper task per connection opens its
//! channels, replaces a channel that fails while the connection lives, and reconnects with
//! backoff when the connection dies; meanwhile the other connections' channels serve.
//! `/readyz` is true while at least one channel is usable.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::options::ConfirmSelectOptions;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection};
use prometheus_client::metrics::counter::Counter;
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
/// How long connecting, or opening a channel, may take before trying again.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long closing a connection on shutdown may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a keeper looks at its channels when nothing woke it.
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

/// Why a keeper's connection ended.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("cannot connect or open a channel")]
    Connect(#[from] lapin::Error),
    #[error("no answer within {CONNECT_TIMEOUT:?}")]
    ConnectTimeout,
    #[error("the connection closed")]
    Lost,
}

/// One confirm channel of the pool.
struct Lane {
    channel: Mutex<Option<Channel>>,
    publishes: Counter,
}

impl Lane {
    /// The channel, if it can publish now.
    fn usable(&self) -> Option<Channel> {
        let channel = self.channel.lock().ok()?.clone()?;
        channel.status().connected().then_some(channel)
    }

    fn set(&self, channel: Option<Channel>) {
        if let Ok(mut slot) = self.channel.lock() {
            *slot = channel;
        }
    }

    fn take(&self) -> Option<Channel> {
        self.channel.lock().ok()?.take()
    }
}

/// The ingestor's publisher; cheap to share behind an `Arc`.
pub struct Publisher {
    settings: AmqpSettings,
    confirm_timeout: Duration,
    lanes: Box<[Lane]>,
    /// One per connection: wakes its keeper when a publish saw one of its channels fail.
    keepers: Box<[Notify]>,
    next: AtomicUsize,
    metrics: IngestorMetrics,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("channels", &self.lanes.len())
            .field("connections", &self.keepers.len())
            .field("usable", &self.usable_channels())
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A pool of `channels` confirm channels over `connections` connections (both at least 1;
    /// the settings check that), not connected until [`Publisher::keep_connected`] runs.
    pub fn new(
        settings: AmqpSettings,
        confirm_timeout: Duration,
        channels: usize,
        connections: usize,
        metrics: IngestorMetrics,
    ) -> Self {
        let channels = channels.max(1);
        let connections = connections.clamp(1, channels);
        let lanes = (0..channels)
            .map(|index| Lane {
                channel: Mutex::new(None),
                publishes: metrics.channel_publishes(index),
            })
            .collect();
        let keepers = (0..connections).map(|_| Notify::new()).collect();
        metrics.set_channels_usable(0);
        Self {
            settings,
            confirm_timeout,
            lanes,
            keepers,
            next: AtomicUsize::new(0),
            metrics,
        }
    }

    /// Whether a publish could be confirmed right now: at least one channel is usable.
    pub fn is_ready(&self) -> bool {
        self.lanes.iter().any(|lane| lane.usable().is_some())
    }

    fn usable_channels(&self) -> usize {
        self.lanes.iter().filter(|l| l.usable().is_some()).count()
    }

    fn refresh_usable(&self) {
        self.metrics.set_channels_usable(self.usable_channels());
    }

    /// The indexes of the channels that live on connection `connection`.
    fn lanes_of(&self, connection: usize) -> impl Iterator<Item = usize> {
        (connection..self.lanes.len()).step_by(self.keepers.len())
    }

    /// Keeps every connection and its channels until `shutdown`, then closes them. Run it as a
    /// task.
    pub async fn keep_connected(self: Arc<Self>, shutdown: Shutdown) {
        let keepers: Vec<_> = (0..self.keepers.len())
            .map(|connection| {
                let (publisher, shutdown) = (self.clone(), shutdown.clone());
                tokio::spawn(async move {
                    let what = format!(
                        "publisher connection {connection} to {}",
                        publisher.settings.address()
                    );
                    run_reconnecting(&what, RECONNECT, &shutdown, || {
                        publisher.keep_connection(connection, &shutdown)
                    })
                    .await;
                })
            })
            .collect();
        for keeper in keepers {
            let _ = keeper.await;
        }
    }

    /// Opens connection `index` and its channels and keeps them until the connection breaks
    /// (`Err`) or `shutdown` (`Ok`); then its channels leave the pool and it is closed.
    async fn keep_connection(&self, index: usize, shutdown: &Shutdown) -> Result<(), LinkError> {
        let connection = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            opened = tokio::time::timeout(
                CONNECT_TIMEOUT,
                queue::connect(&self.settings, "roomtape-ingestor"),
            ) => opened.map_err(|_| LinkError::ConnectTimeout)??,
        };
        let result = self.serve(index, &connection, shutdown).await;
        let channels: Vec<Channel> = self
            .lanes_of(index)
            .filter_map(|lane| self.lanes[lane].take())
            .collect();
        self.refresh_usable();
        // Each channel closed before its connection: lapin closes a dropped channel in the
        // background and logs an error when its connection is closing meanwhile.
        for channel in channels {
            let close = channel.close(200, "shutting down".into());
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, connection.close(200, "shutting down".into()))
            .await;
        result
    }

    async fn serve(
        &self,
        index: usize,
        connection: &Connection,
        shutdown: &Shutdown,
    ) -> Result<(), LinkError> {
        for (n, lane) in self.lanes_of(index).enumerate() {
            let channel = open_channel(connection).await?;
            if n == 0 {
                // Idempotent; each connection declares it so that whichever comes up first
                // finds the exchange and queues in place.
                topology::declare(&channel, &self.settings.retry_delays).await?;
            }
            self.lanes[lane].set(Some(channel));
        }
        self.refresh_usable();
        tracing::info!(
            connection = index,
            channels = self.lanes_of(index).count(),
            "connected to the broker"
        );
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = self.keepers[index].notified() => {}
                () = tokio::time::sleep(HEALTH_POLL) => {}
            }
            if !connection.status().connected() {
                return Err(LinkError::Lost);
            }
            for lane in self.lanes_of(index) {
                if self.lanes[lane].usable().is_some() {
                    continue;
                }
                // The connection lives: only this channel failed (a channel error). Replace it
                // and leave the connection's other channels serving.
                tracing::warn!(
                    connection = index,
                    channel = lane,
                    "pool channel lost; opening another"
                );
                self.lanes[lane].set(None);
                let channel = open_channel(connection).await?;
                // A channel error is often the topology gone (an exchange deleted by hand):
                // declaring it again lets publishing recover without a restart.
                topology::declare(&channel, &self.settings.retry_delays).await?;
                self.lanes[lane].set(Some(channel));
                self.metrics.channel_replaced();
            }
            self.refresh_usable();
        }
    }

    /// Publishes `event` and waits for the broker's confirm. A channel that fails before
    /// confirming hands the event to the next usable one: the broker may then hold it twice,
    /// which consumers tolerate (they dedupe by event id), while a 503 would be a retry anyway.
    pub async fn publish(&self, event: &VerifiedEvent) -> Result<Published, PublishError> {
        let _in_flight = self.metrics.publish_started();
        let started = Instant::now();
        let result = self.publish_on_pool(event).await;
        self.metrics.observe_confirm(started.elapsed());
        result
    }

    async fn publish_on_pool(&self, event: &VerifiedEvent) -> Result<Published, PublishError> {
        let key = event.envelope().routing_key();
        let count = self.lanes.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        let mut failure = PublishError::NotConnected;
        for index in (0..count).map(|offset| (first + offset) % count) {
            let lane = &self.lanes[index];
            let Some(channel) = lane.usable() else {
                continue;
            };
            lane.publishes.inc();
            // Built per attempt: a retry is rare, a clone of the properties on every publish not.
            let message = Outgoing::to_exchange(
                topology::EVENTS_EXCHANGE,
                &key,
                event.body(),
                properties(event),
            );
            match publish_confirmed(&channel, message, self.confirm_timeout).await {
                Ok(()) => return Ok(Published::Queued),
                Err(PublishError::Unroutable { .. }) if !topology::is_consumed(&key) => {
                    return Ok(Published::NotSubscribed)
                }
                Err(error @ (PublishError::NotConnected | PublishError::Broker(_))) => {
                    // The channel is likely dead: let its keeper look now rather than at its
                    // next poll, and try another.
                    self.keepers[index % self.keepers.len()].notify_one();
                    failure = error;
                }
                Err(error) => {
                    if matches!(error, PublishError::Timeout(_)) {
                        self.keepers[index % self.keepers.len()].notify_one();
                    }
                    return Err(error);
                }
            }
        }
        Err(failure)
    }
}

async fn open_channel(connection: &Connection) -> Result<Channel, LinkError> {
    let open = async {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok::<_, lapin::Error>(channel)
    };
    Ok(tokio::time::timeout(CONNECT_TIMEOUT, open)
        .await
        .map_err(|_| LinkError::ConnectTimeout)??)
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
