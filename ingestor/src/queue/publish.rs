//! Publishes verified events to `livekit.events` with publisher confirms, over a pool of
//! confirm-mode channels kept by the HTTP workers themselves.
//!
//! One confirm channel is one broker process confirming in order: it capped the ingestor at
//! about 27,000 webhooks/s whatever its cores, so there are `channels` of them. Each HTTP worker
//! (one thread, one single-threaded runtime) keeps one broker connection with its share of the
//! channels (channel `i` belongs to worker `i % workers`), and the connection's socket is read
//! and written by tasks on that same thread. A webhook is published on a channel of the worker
//! that received it, so the request, its publish and its confirm never leave the thread: with
//! lapin, whose connections run on threads of their own, every publish and every confirm woke
//! another thread, a quarter of the ingestor's CPU on two cores (`docs/benchmarks.md`).
//!
//! A publish takes its worker's channels in turn; when none is usable it takes any other
//! worker's (slower, still correct). A keeper task per worker opens its channels, replaces one
//! that fails while the connection lives, and reconnects with backoff when the connection dies;
//! meanwhile the other workers' channels serve. `/readyz` is true while at least one channel is
//! usable.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amqprs::connection::Connection;
use amqprs::{BasicProperties, FieldName, FieldTable, FieldValue, LongStr};
use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use roomtape_shared::clock::Clock;
use roomtape_shared::config::AmqpSettings;
use roomtape_shared::events::EventEnvelope;
use roomtape_shared::queue::reconnect::{run_reconnecting, Backoff, Established};
use roomtape_shared::queue::{self, topology};
use roomtape_shared::shutdown::Shutdown;
use tokio::sync::Notify;

use super::alarm::BrokerAlarm;
use super::confirm::{self, ChannelError, Confirm, ConfirmChannel};
use crate::metrics::IngestorMetrics;

/// At most a second between tries: every second without the broker is a second of 503s, and a
/// refused connect costs next to nothing.
const RECONNECT: Backoff = Backoff {
    min: Duration::from_millis(100),
    max: Duration::from_secs(1),
};
/// How long connecting, or opening a channel, may take before trying again.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long closing a lost connection may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a keeper looks at its channels when nothing woke it.
const HEALTH_POLL: Duration = Duration::from_secs(1);

thread_local! {
    /// The pool slot of the HTTP worker on this thread (`None` off the workers), and its turn
    /// among its channels. A thread-local rather than a shared counter: a counter every worker
    /// bumps on every publish bounces its cache line between cores.
    static WORKER: Cell<(Option<usize>, usize)> = const { Cell::new((None, 0)) };
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

/// Why an event was not confirmed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("no usable broker channel")]
    NotConnected,
    #[error("the broker channel failed")]
    Channel(#[from] ChannelError),
    #[error("the broker refused the message (nack)")]
    Nacked,
    #[error("no queue is bound for routing key {0:?}")]
    Unroutable(String),
    #[error("no confirm from the broker within {0:?}")]
    Timeout(Duration),
}

/// One event to publish: its body as LiveKit sent it, unchanged, and what CONTRACTS §3 puts in
/// the message's properties. The webhook endpoint makes it from an event it has verified.
#[derive(Debug, Clone, Copy)]
pub struct EventMessage<'a> {
    pub envelope: &'a EventEnvelope,
    /// The AMQP `message_id`.
    pub message_id: &'a str,
    /// The API key that signed it (the `x-livekit-key` header).
    pub api_key: &'a str,
    pub body: &'a Bytes,
}

/// Why a keeper's connection ended.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("cannot connect or open a channel")]
    Connect(#[from] ChannelError),
    #[error("cannot declare the topology")]
    Topology(#[from] lapin::Error),
    #[error("no answer within {CONNECT_TIMEOUT:?}")]
    ConnectTimeout,
    #[error("the connection closed")]
    Lost,
}

/// One confirm channel of the pool.
struct Lane {
    channel: Mutex<Option<Arc<ConfirmChannel>>>,
    publishes: Counter,
}

impl Lane {
    /// The channel, if it can publish now.
    fn usable(&self) -> Option<Arc<ConfirmChannel>> {
        let channel = self.channel.lock().ok()?.clone()?;
        channel.is_open().then_some(channel)
    }

    fn set(&self, channel: Option<Arc<ConfirmChannel>>) {
        if let Ok(mut slot) = self.channel.lock() {
            *slot = channel;
        }
    }

    fn take(&self) -> Option<Arc<ConfirmChannel>> {
        self.channel.lock().ok()?.take()
    }
}

/// One HTTP worker's share of the pool: whether a keeper holds it, and how to wake that keeper.
#[derive(Default)]
struct Slot {
    kept: AtomicBool,
    wake: Notify,
}

/// Frees a slot when its keeper ends, so a restarted worker can take it again.
struct SlotClaim<'a>(&'a Slot);

impl Drop for SlotClaim<'_> {
    fn drop(&mut self) {
        self.0.kept.store(false, Ordering::Release);
    }
}

/// The ingestor's publisher; cheap to share behind an `Arc`.
pub struct Publisher {
    settings: AmqpSettings,
    confirm_timeout: Duration,
    lanes: Box<[Lane]>,
    slots: Box<[Slot]>,
    /// `x-livekit-key`, built once.
    key_header: FieldName,
    alarm: Arc<BrokerAlarm>,
    metrics: IngestorMetrics,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("channels", &self.lanes.len())
            .field("workers", &self.slots.len())
            .field("usable", &self.usable_channels())
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A pool of `channels` confirm channels for `workers` HTTP workers (both at least 1), not
    /// connected until the workers [attach](Publisher::attach_worker).
    pub fn new(
        settings: AmqpSettings,
        confirm_timeout: Duration,
        channels: usize,
        workers: usize,
        metrics: IngestorMetrics,
    ) -> Self {
        let lanes = (0..channels.max(1))
            .map(|index| Lane {
                channel: Mutex::new(None),
                publishes: metrics.channel_publishes(index),
            })
            .collect();
        let slots = (0..workers.max(1)).map(|_| Slot::default()).collect();
        metrics.set_channels_usable(0);
        Self {
            settings,
            confirm_timeout,
            lanes,
            slots,
            key_header: FieldName::try_from("x-livekit-key").expect("a short field name"),
            alarm: Arc::new(BrokerAlarm::new(metrics.clone())),
            metrics,
        }
    }

    /// Why a publish could not be confirmed right now, if it could not: no channel is usable,
    /// or the broker blocks publishers.
    pub fn unready_reason(&self) -> Option<&'static str> {
        if self.is_blocked() {
            Some("the broker blocks publishers (resource alarm)")
        } else if self.lanes.iter().all(|lane| lane.usable().is_none()) {
            Some("no usable broker channel")
        } else {
            None
        }
    }

    /// Whether RabbitMQ blocks publishers now (see [`BrokerAlarm`]).
    pub fn is_blocked(&self) -> bool {
        self.alarm.is_blocked()
    }

    /// Watches the broker's resource alarms until `shutdown`.
    pub async fn watch_alarm(&self, shutdown: Shutdown) {
        self.alarm
            .clone()
            .watch(self.settings.clone(), shutdown)
            .await;
    }

    fn usable_channels(&self) -> usize {
        self.lanes.iter().filter(|l| l.usable().is_some()).count()
    }

    fn refresh_usable(&self) {
        self.metrics.set_channels_usable(self.usable_channels());
    }

    /// The indexes of the channels that belong to worker slot `slot`.
    fn lanes_of(&self, slot: usize) -> impl Iterator<Item = usize> {
        (slot..self.lanes.len()).step_by(self.slots.len())
    }

    /// Called on each HTTP worker's thread as it starts (in its app factory): takes a free slot
    /// and keeps its connection and channels on this thread's runtime.
    ///
    /// The keeper ends with its worker. A worker stops once it has answered its last request,
    /// so every publish it answered 2xx is confirmed by then; its connection then goes without
    /// a close handshake (RabbitMQ logs "client unexpectedly closed TCP connection"), which
    /// loses nothing. Closing it first would turn the requests still arriving on kept-alive
    /// connections into 503s.
    pub fn attach_worker(self: &Arc<Self>) {
        let Some(slot) = self.slots.iter().position(|slot| {
            slot.kept
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        }) else {
            // Every slot is kept: actix restarted a failed service on a worker that keeps one
            // already (its thread-local still names it).
            return;
        };
        WORKER.with(|worker| worker.set((Some(slot), 0)));
        let publisher = self.clone();
        tokio::spawn(async move {
            let _claim = SlotClaim(&publisher.slots[slot]);
            let what = format!(
                "publisher connection {slot} to {}",
                publisher.settings.address()
            );
            let until_the_worker_ends = Shutdown::new();
            run_reconnecting(&what, RECONNECT, &until_the_worker_ends, |established| {
                publisher.keep_connection(slot, established)
            })
            .await;
        });
    }

    /// Opens worker `slot`'s connection and channels and keeps them until the connection
    /// breaks; then its channels leave the pool, failing the publishes that await a confirm.
    async fn keep_connection(
        &self,
        slot: usize,
        established: Established,
    ) -> Result<(), LinkError> {
        let name = format!("roomtape-ingestor-publish-{slot}");
        let connection =
            tokio::time::timeout(CONNECT_TIMEOUT, confirm::connect(&self.settings, &name))
                .await
                .map_err(|_| LinkError::ConnectTimeout)??;
        let error = self.serve(slot, &connection, established).await;
        for lane in self.lanes_of(slot) {
            if let Some(channel) = self.lanes[lane].take() {
                channel.retire();
            }
        }
        self.refresh_usable();
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, connection.close()).await;
        Err(error)
    }

    /// Serves until the connection breaks, replacing channels that fail meanwhile.
    async fn serve(
        &self,
        slot: usize,
        connection: &Connection,
        established: Established,
    ) -> LinkError {
        match self.open_lanes(slot, connection).await {
            Ok(()) => {
                established.mark();
                self.watch_lanes(slot, connection).await
            }
            Err(error) => error,
        }
    }

    async fn open_lanes(&self, slot: usize, connection: &Connection) -> Result<(), LinkError> {
        self.declare_topology().await?;
        for lane in self.lanes_of(slot) {
            let channel = open_channel(connection).await?;
            self.lanes[lane].set(Some(Arc::new(channel)));
        }
        self.refresh_usable();
        tracing::info!(
            connection = slot,
            channels = self.lanes_of(slot).count(),
            "connected to the broker"
        );
        Ok(())
    }

    async fn watch_lanes(&self, slot: usize, connection: &Connection) -> LinkError {
        loop {
            tokio::select! {
                () = self.slots[slot].wake.notified() => {}
                _ = connection.listen_network_io_failure() => {}
                () = tokio::time::sleep(HEALTH_POLL) => {}
            }
            if !connection.is_open() {
                return LinkError::Lost;
            }
            for lane in self.lanes_of(slot) {
                if self.lanes[lane].usable().is_some() {
                    continue;
                }
                if let Err(error) = self.replace_lane(slot, lane, connection).await {
                    return error;
                }
            }
            self.refresh_usable();
        }
    }

    /// The connection lives: only this channel failed (a channel error). Replaces it and
    /// leaves the worker's other channels serving.
    async fn replace_lane(
        &self,
        slot: usize,
        lane: usize,
        connection: &Connection,
    ) -> Result<(), LinkError> {
        tracing::warn!(
            connection = slot,
            channel = lane,
            "pool channel lost; opening another"
        );
        if let Some(lost) = self.lanes[lane].take() {
            lost.retire();
        }
        // A channel error is often the topology gone (an exchange deleted by hand): declaring
        // it again lets publishing recover without a restart.
        self.declare_topology().await?;
        let channel = open_channel(connection).await?;
        self.lanes[lane].set(Some(Arc::new(channel)));
        self.metrics.channel_replaced();
        Ok(())
    }

    /// Declares the exchanges and queues (idempotent) over a short-lived lapin connection, with
    /// the one topology definition the processor and the CLI use too.
    async fn declare_topology(&self) -> Result<(), LinkError> {
        let declare = async {
            let connection = queue::connect(&self.settings, "roomtape-ingestor-topology").await?;
            let channel = connection.create_channel().await?;
            topology::declare(&channel, &self.settings.retry_delays).await?;
            let _ = channel.close(200, "declared".into()).await;
            connection.close(200, "declared".into()).await
        };
        tokio::time::timeout(CONNECT_TIMEOUT, declare)
            .await
            .map_err(|_| LinkError::ConnectTimeout)??;
        Ok(())
    }

    /// Publishes `event` and waits for the broker's confirm. A channel that fails before
    /// confirming hands the event to the next usable one: the broker may then hold it twice,
    /// which consumers tolerate (they dedupe by event id), while a 503 would be a retry anyway.
    pub async fn publish(&self, event: EventMessage<'_>) -> Result<Published, PublishError> {
        let _in_flight = self.metrics.publish_started();
        let started = Instant::now();
        let result = self.publish_on_pool(event).await;
        self.metrics.observe_confirm(started.elapsed());
        result
    }

    /// The lanes in the order a publish on this thread tries them: first one of its worker's
    /// own (in turn), then on round the rest.
    fn lane_order(&self) -> impl Iterator<Item = usize> {
        let count = self.lanes.len();
        let workers = self.slots.len();
        let (slot, turn) = WORKER.with(|worker| {
            let (slot, turn) = worker.get();
            worker.set((slot, turn.wrapping_add(1)));
            (slot, turn)
        });
        let first = match slot {
            Some(slot) if slot < count => {
                let own = (count - slot).div_ceil(workers);
                slot + (turn % own) * workers
            }
            _ => turn % count,
        };
        (0..count).map(move |offset| (first + offset) % count)
    }

    async fn publish_on_pool(&self, event: EventMessage<'_>) -> Result<Published, PublishError> {
        let key = event.envelope.routing_key();
        let mut failure = PublishError::NotConnected;
        for index in self.lane_order() {
            let lane = &self.lanes[index];
            let Some(channel) = lane.usable() else {
                continue;
            };
            lane.publishes.inc();
            let publish = channel.publish(
                topology::EVENTS_EXCHANGE,
                &key,
                event.body,
                self.properties(&event),
            );
            let slot = &self.slots[index % self.slots.len()];
            match tokio::time::timeout(self.confirm_timeout, publish).await {
                Ok(Ok(Confirm::Ack)) => return Ok(Published::Queued),
                Ok(Ok(Confirm::Returned)) if !topology::is_consumed(&key) => {
                    return Ok(Published::NotSubscribed)
                }
                Ok(Ok(Confirm::Returned)) => return Err(PublishError::Unroutable(key)),
                Ok(Ok(Confirm::Nack)) => return Err(PublishError::Nacked),
                Ok(Err(error)) => {
                    // The channel is likely dead: let its keeper look now rather than at its
                    // next poll, and try another.
                    slot.wake.notify_one();
                    failure = error.into();
                }
                Err(_) => {
                    // Whether the broker has this publish, and which confirm is whose, can no
                    // longer be known: retire the channel so no later publish is settled by
                    // another's confirm; its keeper opens a fresh one.
                    channel.retire();
                    slot.wake.notify_one();
                    return Err(PublishError::Timeout(self.confirm_timeout));
                }
            }
        }
        Err(failure)
    }

    /// AMQP properties of CONTRACTS §3, so any LiveKit SDK consumer can use the message as is.
    fn properties(&self, event: &EventMessage<'_>) -> BasicProperties {
        let timestamp = event
            .envelope
            .created_at
            .and_then(|secs| u64::try_from(secs).ok())
            .unwrap_or_else(|| Clock::System.now_unix());
        let mut headers = FieldTable::new();
        if let Ok(key) = LongStr::try_from(event.api_key) {
            headers.insert(self.key_header.clone(), FieldValue::S(key));
        }
        let mut properties = BasicProperties::default();
        properties
            .with_message_id(event.message_id)
            .with_message_type(event.envelope.event.as_str())
            .with_timestamp(timestamp)
            .with_content_type("application/json")
            .with_delivery_mode(2)
            .with_headers(headers);
        properties
    }
}

async fn open_channel(connection: &Connection) -> Result<ConfirmChannel, LinkError> {
    tokio::time::timeout(CONNECT_TIMEOUT, ConfirmChannel::open(connection))
        .await
        .map_err(|_| LinkError::ConnectTimeout)?
        .map_err(LinkError::from)
}
