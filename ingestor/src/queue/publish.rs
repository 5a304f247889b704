//! Publishes verified events to `livekit.events` with publisher confirms, over a pool of
//! confirm-mode channels kept by the HTTP workers themselves ([`lanes`] keeps them).
//!
//! One confirm channel is one broker process confirming in order: it capped the ingestor at
//! about 27,000 webhooks/s whatever its cores, so there are `channels` of them. Each HTTP worker
//! keeps one broker connection with its share of the channels, and the connection's socket is
//! read and written by tasks on that same thread. A webhook is published on a channel of the
//! worker that received it, so the request, its publish and its confirm never leave the thread:
//! with lapin, whose connections run on threads of their own, every publish and every confirm
//! woke another thread, a quarter of the ingestor's CPU on two cores (`docs/benchmarks.md`).
//!
//! A publish takes its worker's channels in turn; when none is usable it takes any other
//! worker's (slower, still correct). `/readyz` is true while at least one channel is usable.

mod lanes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use amqprs::{BasicProperties, FieldName, FieldTable, FieldValue, LongStr};
use bytes::Bytes;
use roomtape_shared::clock::Clock;
use roomtape_shared::config::AmqpSettings;
use roomtape_shared::events::EventEnvelope;
use roomtape_shared::queue::topology;
use roomtape_shared::shutdown::Shutdown;

use super::alarm::BrokerAlarm;
use super::confirm::{ChannelError, Confirm};
use super::linger::Linger;
use crate::metrics::IngestorMetrics;
use lanes::{Lane, Slot};

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

/// The ingestor's publisher; cheap to share behind an `Arc`.
pub struct Publisher {
    settings: AmqpSettings,
    confirm_timeout: Duration,
    linger: Linger,
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
    /// connected until the workers [attach](Publisher::attach_worker). Each publish waits for
    /// the end of the current `linger` tick before it goes out ([`Linger`]).
    pub fn new(
        settings: AmqpSettings,
        confirm_timeout: Duration,
        linger: Duration,
        channels: usize,
        workers: usize,
        metrics: IngestorMetrics,
    ) -> Self {
        let lanes = (0..channels.max(1))
            .map(|index| Lane::new(metrics.channel_publishes(index)))
            .collect();
        let slots = (0..workers.max(1)).map(|_| Slot::default()).collect();
        metrics.set_channels_usable(0);
        Self {
            settings,
            confirm_timeout,
            linger: Linger::new(linger),
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

    /// Publishes `event` and waits for the broker's confirm. A channel that fails before
    /// confirming hands the event to the next usable one: the broker may then hold it twice,
    /// which consumers tolerate (they dedupe by event id), while a 503 would be a retry anyway.
    pub async fn publish(&self, event: EventMessage<'_>) -> Result<Published, PublishError> {
        let in_flight = self.metrics.publish_started();
        self.linger.wait(in_flight.ahead()).await;
        let started = Instant::now();
        let result = self.publish_on_pool(event).await;
        self.metrics.observe_confirm(started.elapsed());
        result
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
