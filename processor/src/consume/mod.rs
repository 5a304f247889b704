//! The consuming loop shared by every queue the processor reads: bounded concurrency, ack
//! after the work is committed, delayed retries and dead letters, reconnects with backoff, and
//! a graceful stop that finishes in-flight work and acks nothing unfinished.

mod delivery;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use roomtape_shared::config::AmqpSettings;
use roomtape_shared::queue::{self, topology};
use roomtape_shared::shutdown::Shutdown;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::error::Disposition;
use crate::metrics::ProcessorMetrics;
pub use delivery::{original_routing_key, Attempt};

const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(200);
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How long connecting and starting to consume may take before trying again.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between in-place retries while the database is away.
const HOLD_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What a handled message was, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    pub kind: String,
    pub outcome: &'static str,
}

impl Handled {
    pub fn new(kind: &str, outcome: &'static str) -> Self {
        Self {
            kind: kind.to_owned(),
            outcome,
        }
    }
}

/// Handles the messages of one queue.
pub trait Handler: Send + Sync + 'static {
    fn queue(&self) -> &'static str;
    /// Handles one delivery; `publisher` is a confirm-mode channel for replies.
    fn handle(
        &self,
        delivery: &Delivery,
        attempt: Attempt,
        publisher: &Channel,
    ) -> impl Future<Output = Result<Handled, crate::error::HandleError>> + Send;
}

/// How a consumer runs.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub amqp: AmqpSettings,
    /// Unacked deliveries the broker may hand us: enough to keep `concurrency` workers busy
    /// while acks travel back, small enough that one processor does not hoard the queue.
    pub prefetch: u16,
    /// Messages handled at once; each holds a database connection while it runs.
    pub concurrency: usize,
}

/// Consumes `handler`'s queue until `shutdown`, reconnecting whenever the broker goes away.
/// `ready` tells `/readyz` whether a consumer is attached right now.
pub async fn run<H: Handler>(
    handler: Arc<H>,
    settings: ConsumerSettings,
    metrics: ProcessorMetrics,
    ready: Arc<AtomicBool>,
    shutdown: Shutdown,
) {
    let mut backoff = RECONNECT_BACKOFF_MIN;
    while !shutdown.is_cancelled() {
        let started = Instant::now();
        let result = session(&handler, &settings, &metrics, &ready, &shutdown).await;
        ready.store(false, Ordering::SeqCst);
        match result {
            Ok(()) => break,
            Err(error) => {
                if started.elapsed() > RECONNECT_BACKOFF_MAX {
                    backoff = RECONNECT_BACKOFF_MIN;
                }
                tracing::warn!(queue = handler.queue(), %error, retry_in = ?backoff, "consumer lost the broker");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
            }
        }
    }
}

/// Why a consuming session ended early.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Broker(#[from] lapin::Error),
    #[error("the broker cancelled the consumer")]
    Cancelled,
    #[error("the publishing channel closed")]
    PublisherClosed,
    #[error("could not attach to the broker within {ATTACH_TIMEOUT:?}")]
    AttachTimeout,
}

/// Connects, declares the topology, and starts consuming `queue`.
async fn attach(
    queue_name: &str,
    settings: &ConsumerSettings,
) -> lapin::Result<(Connection, Channel, Channel, Consumer)> {
    let connection = queue::connect(&settings.amqp, "roomtape-processor").await?;
    let channel = connection.create_channel().await?;
    topology::declare(&channel, &settings.amqp.retry_delays).await?;
    channel
        .basic_qos(settings.prefetch, BasicQosOptions::default())
        .await?;
    // Retries, dead letters and replies are published with confirms before the original is
    // acked.
    let republish = connection.create_channel().await?;
    republish
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let consumer = channel
        .basic_consume(
            queue_name.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((connection, channel, republish, consumer))
}

/// One connection's worth of consuming; `Ok` only when stopped by `shutdown`.
async fn session<H: Handler>(
    handler: &Arc<H>,
    settings: &ConsumerSettings,
    metrics: &ProcessorMetrics,
    ready: &AtomicBool,
    shutdown: &Shutdown,
) -> Result<(), SessionError> {
    let attach = tokio::time::timeout(ATTACH_TIMEOUT, attach(handler.queue(), settings));
    let (connection, channel, republish, mut consumer) = tokio::select! {
        () = shutdown.cancelled() => return Ok(()),
        attached = attach => attached.map_err(|_| SessionError::AttachTimeout)??,
    };
    ready.store(true, Ordering::SeqCst);
    tracing::info!(queue = handler.queue(), "consuming");

    let limit = Arc::new(Semaphore::new(settings.concurrency));
    let mut in_flight = JoinSet::new();
    let outcome = loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break Ok(()),
            permit = limit.clone().acquire_owned() => permit,
        };
        // The semaphore is never closed.
        let Ok(permit) = permit else { break Ok(()) };
        let next = tokio::select! {
            () = shutdown.cancelled() => break Ok(()),
            next = consumer.next() => next,
        };
        // Settling needs the publishing channel: without it, reconnect rather than fail every
        // message.
        if !republish.status().connected() {
            break Err(SessionError::PublisherClosed);
        }
        let delivery = match next {
            Some(Ok(delivery)) => delivery,
            Some(Err(error)) => break Err(error.into()),
            None => break Err(SessionError::Cancelled),
        };
        let work = Work {
            handler: handler.clone(),
            republish: republish.clone(),
            retry_delays: settings.amqp.retry_delays.clone(),
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
        };
        let span = tracing::info_span!(
            "message",
            queue = handler.queue(),
            event_id = tracing::field::Empty,
            event = tracing::field::Empty,
            egress_id = tracing::field::Empty,
            room = tracing::field::Empty,
        );
        in_flight.spawn(
            async move {
                work.handle(delivery).await;
                drop(permit);
            }
            .instrument(span),
        );
        // Reap finished tasks so the set does not grow.
        while in_flight.try_join_next().is_some() {}
    };
    ready.store(false, Ordering::SeqCst);
    // Stop deliveries first, then let what is in flight finish and ack.
    let _ = channel
        .basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await;
    while in_flight.join_next().await.is_some() {}
    // Deliveries prefetched but not started are returned to the queue by the close.
    let _ = connection.close(200, "shutting down".into()).await;
    outcome
}

/// Everything one delivery's task needs.
struct Work<H> {
    handler: Arc<H>,
    republish: Channel,
    retry_delays: Vec<Duration>,
    metrics: ProcessorMetrics,
    shutdown: Shutdown,
}

impl<H: Handler> Work<H> {
    async fn handle(self, delivery: Delivery) {
        let queue = self.handler.queue();
        let attempt = Attempt::of(&delivery, self.retry_delays.len());
        let _in_flight = InFlight::start(self.metrics.in_flight(queue));
        if let Some(lag) = delivery::lag(&delivery) {
            self.metrics.lag(queue, lag);
        }
        let mut hold = Duration::from_millis(100);
        loop {
            let started = Instant::now();
            let result = self
                .handler
                .handle(&delivery, attempt, &self.republish)
                .await;
            let (kind, outcome, disposition) = match &result {
                Ok(handled) => (handled.kind.as_str(), handled.outcome, Disposition::Ack),
                Err(error) => (kind_of(&delivery), error.outcome(), error.disposition()),
            };
            self.metrics
                .handled(queue, kind, outcome, started.elapsed());
            if let Disposition::RetryInPlace(reason) = &disposition {
                tracing::warn!(%reason, retry_in = ?hold, "holding the message until it can be handled");
                tokio::select! {
                    // Unfinished: left unacked, so the broker hands it out again.
                    () = self.shutdown.cancelled() => return,
                    () = tokio::time::sleep(hold) => {}
                }
                hold = (hold * 2).min(HOLD_BACKOFF_MAX);
                continue;
            }
            if let Err(error) = &result {
                tracing::warn!(%error, attempt = attempt.number, "message failed");
            }
            delivery::settle(
                &self.republish,
                queue,
                &delivery,
                attempt,
                &self.retry_delays,
                disposition,
            )
            .await;
            return;
        }
    }
}

/// The AMQP `type` (the event name or command) for metrics of messages that failed early.
fn kind_of(delivery: &Delivery) -> &str {
    delivery
        .properties
        .kind()
        .as_ref()
        .map_or("unknown", |kind| kind.as_str())
}

/// Counts a delivery in flight until dropped.
struct InFlight(prometheus_client::metrics::gauge::Gauge);

impl InFlight {
    fn start(gauge: prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
