//! The consuming loop every queue of the processor runs on: it decodes each delivery once into
//! a [`Message`], hands handlers a message or a batch of them, and settles what they return
//! (ack, retry with the attempt count, give up, dead-letter) in one place. Bounded concurrency,
//! ack only after the work is committed, reconnects with backoff, and a graceful stop that
//! finishes in-flight work and acks nothing unfinished.

mod acks;
mod handler;
mod message;
mod settle;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use roomtape_shared::config::AmqpSettings;
use roomtape_shared::queue::reconnect::{run_reconnecting, Backoff, Established};
use roomtape_shared::queue::{self, topology};
use roomtape_shared::shutdown::Shutdown;
use roomtape_shared::Chain;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::{Disposition, HandleError};
use crate::metrics::ProcessorMetrics;
use acks::Acks;
pub use handler::{Handled, Handler, Outbox};
pub use message::{Attempt, Message};

const RECONNECT: Backoff = Backoff {
    min: Duration::from_millis(200),
    max: Duration::from_secs(10),
};
/// How long connecting and starting to consume may take before trying again.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long closing the connection at the end of a session may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pauses between in-place retries while the database is away.
const HOLD: Backoff = Backoff {
    min: Duration::from_millis(100),
    max: Duration::from_secs(5),
};

/// How a consumer runs.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub amqp: AmqpSettings,
    /// Unacked deliveries the broker may hand us: enough to keep `concurrency` workers busy
    /// while acks travel back, small enough that one processor does not hoard the queue.
    pub prefetch: u16,
    /// Messages (or batches) handled at once; each holds a database connection while it runs.
    pub concurrency: usize,
    /// For a queue handled in batches: how long a batch that is not full waits for more after
    /// its first message (`PROCESSOR_BATCH_WAIT`). At a steady rate this is what makes batches:
    /// one transaction, one ack and one round of statements for several events.
    pub batch_wait: Duration,
}

/// What becomes of a message the handler is done with.
#[derive(Debug)]
pub enum Settlement {
    /// Acked, after its reply (if any) is confirmed.
    Ack(Handled),
    /// To the next delay queue, or dead-lettered once the schedule is used up.
    Retry(HandleError),
    DeadLetter(HandleError),
}

/// What to do next with a message after one try.
#[derive(Debug)]
pub enum Step {
    Settle(Settlement),
    /// Keep it unacked and try again here after a pause.
    Hold(HandleError),
}

/// Decides a message's next step from its handler's result: the one place where retry policy
/// lives. Needs no broker.
pub async fn decide<H: Handler, O: Outbox>(
    handler: &H,
    message: &Message,
    result: Result<Handled, HandleError>,
    outbox: &O,
) -> Step {
    let error = match result {
        Ok(handled) => return Step::Settle(Settlement::Ack(handled)),
        Err(error) => error,
    };
    let retry = match (error.disposition(), message.attempt.next_delay) {
        (Disposition::RetryInPlace, _) => return Step::Hold(error),
        (Disposition::RetryLater, Some(delay)) => handler.retry_allowed(message, delay).await,
        (Disposition::RetryLater | Disposition::GiveUp, _) => false,
    };
    if retry {
        return Step::Settle(Settlement::Retry(error));
    }
    // A panic while giving up is caught like one in the handler: the message is dead-lettered
    // instead of left unacked until the channel closes.
    let giving_up = std::panic::AssertUnwindSafe(handler.give_up(message, &error, outbox));
    let given_up = giving_up.catch_unwind().await.unwrap_or_else(|panic| {
        let reason = panic_reason(panic.as_ref());
        tracing::error!(%reason, "giving up panicked");
        Err(HandleError::Panicked(reason))
    });
    match given_up {
        Ok(Some(handled)) => Step::Settle(Settlement::Ack(handled)),
        Ok(None) => Step::Settle(Settlement::DeadLetter(error)),
        Err(again) if again.disposition() == Disposition::RetryInPlace => Step::Hold(again),
        Err(again) => {
            tracing::error!(error = %Chain(&again), "giving up failed too");
            Step::Settle(Settlement::DeadLetter(error))
        }
    }
}

/// What a panic said.
fn panic_reason(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
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
    let what = format!(
        "consumer of {} at {}",
        handler.queue(),
        settings.amqp.address()
    );
    run_reconnecting(&what, RECONNECT, &shutdown, |established| async {
        let result = session(
            &handler,
            &settings,
            &metrics,
            &ready,
            &shutdown,
            established,
        )
        .await;
        ready.store(false, Ordering::SeqCst);
        result
    })
    .await;
}

/// Why a consuming session ended early.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("broker error")]
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
    let publisher = connection.create_channel().await?;
    publisher
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
    Ok((connection, channel, publisher, consumer))
}

/// One connection's worth of consuming; `Ok` only when stopped by `shutdown`.
async fn session<H: Handler>(
    handler: &Arc<H>,
    settings: &ConsumerSettings,
    metrics: &ProcessorMetrics,
    ready: &AtomicBool,
    shutdown: &Shutdown,
    established: Established,
) -> Result<(), SessionError> {
    let attach = tokio::time::timeout(ATTACH_TIMEOUT, attach(handler.queue(), settings));
    let (connection, channel, publisher, mut consumer) = tokio::select! {
        () = shutdown.cancelled() => return Ok(()),
        attached = attach => attached.map_err(|_| SessionError::AttachTimeout)??,
    };
    established.mark();
    ready.store(true, Ordering::SeqCst);
    tracing::info!(queue = handler.queue(), "consuming");

    // A queue handled in batches is acked in batches.
    let acks = (handler.batch_limit() > 1).then(|| Arc::new(Acks::new(channel.clone())));
    let limit = Arc::new(Semaphore::new(handler.tasks(settings.concurrency).max(1)));
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
        if !publisher.status().connected() {
            break Err(SessionError::PublisherClosed);
        }
        let mut batch = match next {
            Some(Ok(delivery)) => vec![delivery],
            Some(Err(error)) => break Err(error.into()),
            None => break Err(SessionError::Cancelled),
        };
        let ended = fill(&mut consumer, &mut batch, handler.batch_limit(), settings).await;
        if let Some(acks) = &acks {
            batch
                .iter()
                .for_each(|delivery| acks.received(delivery.delivery_tag));
        }
        let work = Work {
            handler: handler.clone(),
            publisher: publisher.clone(),
            acks: acks.clone(),
            retry_delays: settings.amqp.retry_delays.clone(),
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
        };
        let span = tracing::info_span!(
            "message",
            queue = handler.queue(),
            batch = batch.len(),
            event_id = tracing::field::Empty,
            event = tracing::field::Empty,
            egress_id = tracing::field::Empty,
            room = tracing::field::Empty,
        );
        in_flight.spawn(
            async move {
                work.run(batch).await;
                drop(permit);
            }
            .instrument(span),
        );
        // Reap finished tasks so the set does not grow.
        while in_flight.try_join_next().is_some() {}
        if let Some(ended) = ended {
            break Err(ended);
        }
    };
    ready.store(false, Ordering::SeqCst);
    // Stop deliveries first, then let what is in flight finish and ack.
    let _ = channel
        .basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await;
    while in_flight.join_next().await.is_some() {}
    if let (Some(acks), Ok(())) = (&acks, &outcome) {
        acks.flush().await; // what is settled, now rather than after the delay
    }
    // Deliveries prefetched but not started are returned to the queue by the close. Bounded
    // like an ack (see `settle::SETTLE_TIMEOUT`): a close queued just as the connection fails
    // would never complete.
    let closing = connection.close(200, "shutting down".into());
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
    outcome
}

/// Adds to `batch` what the prefetch holds, up to `limit`; a batch of a queue handled in batches
/// waits up to `batch_wait` from now for more. What ended the consumer meanwhile, if anything,
/// is returned once the batch is complete.
async fn fill(
    consumer: &mut Consumer,
    batch: &mut Vec<Delivery>,
    limit: usize,
    settings: &ConsumerSettings,
) -> Option<SessionError> {
    let wait = if limit > 1 {
        settings.batch_wait
    } else {
        Duration::ZERO
    };
    let deadline = Instant::now() + wait;
    while batch.len() < limit {
        let next = match consumer.next().now_or_never() {
            Some(next) => next,
            None if wait.is_zero() => return None,
            None => match tokio::time::timeout_at(deadline, consumer.next()).await {
                Ok(next) => next,
                Err(_) => return None,
            },
        };
        match next {
            Some(Ok(delivery)) => batch.push(delivery),
            Some(Err(error)) => return Some(error.into()),
            None => return Some(SessionError::Cancelled),
        }
    }
    None
}

/// Everything one task needs to handle and settle its deliveries.
struct Work<H> {
    handler: Arc<H>,
    publisher: Channel,
    /// The consuming channel's ack window, for a queue acked in batches.
    acks: Option<Arc<Acks>>,
    retry_delays: Vec<Duration>,
    metrics: ProcessorMetrics,
    shutdown: Shutdown,
}

impl<H: Handler> Work<H> {
    async fn run(self, mut deliveries: Vec<Delivery>) {
        let queue = self.handler.queue();
        let mut messages: Vec<Message> = deliveries
            .iter_mut()
            .map(|delivery| Message::take_from(delivery, &self.retry_delays))
            .collect();
        let gauge = self.metrics.in_flight(queue);
        gauge.inc_by(messages.len() as i64);
        for message in &messages {
            if let Some(lag) = lag(message) {
                self.metrics.lag(queue, lag);
            }
        }
        let mut hold = HOLD.min;
        while !messages.is_empty() {
            let started = Instant::now();
            let results = self.attempt(&messages).await;
            let took = started.elapsed() / messages.len().max(1) as u32;
            let mut held = Vec::new();
            let pairs = deliveries.drain(..).zip(messages.drain(..));
            for ((delivery, message), result) in pairs.zip(results) {
                self.count(&message, &result, took);
                match decide(self.handler.as_ref(), &message, result, &self.publisher).await {
                    Step::Settle(settlement) => {
                        gauge.dec();
                        let acks = self.acks.as_deref();
                        settle::settle(
                            &self.publisher,
                            queue,
                            &delivery,
                            &message,
                            settlement,
                            acks,
                        )
                        .await;
                    }
                    Step::Hold(error) => {
                        tracing::warn!(error = %Chain(&error), retry_in = ?hold, "holding the message until it can be handled");
                        held.push((delivery, message));
                    }
                }
            }
            if let Some(acks) = &self.acks {
                acks.flush_soon();
            }
            if held.is_empty() {
                return;
            }
            tokio::select! {
                // Unfinished: left unacked, so the broker hands them out again.
                () = self.shutdown.cancelled() => {
                    gauge.dec_by(held.len() as i64);
                    return;
                }
                () = tokio::time::sleep(hold) => {}
            }
            hold = (hold * 2).min(HOLD.max);
            (deliveries, messages) = held.into_iter().unzip();
        }
    }

    /// One result per message; a panic in the handler fails every message of the try (to be
    /// retried on the schedule) instead of leaving them unacked until the channel closes.
    async fn attempt(&self, messages: &[Message]) -> Vec<Result<Handled, HandleError>> {
        let work = async {
            match messages {
                [one] => vec![self.handler.handle(one, &self.publisher).await],
                many => self.handler.handle_batch(many, &self.publisher).await,
            }
        };
        match std::panic::AssertUnwindSafe(work).catch_unwind().await {
            Ok(results) => results,
            Err(panic) => {
                let reason = panic_reason(panic.as_ref());
                tracing::error!(%reason, messages = messages.len(), "the handler panicked");
                messages
                    .iter()
                    .map(|_| Err(HandleError::Panicked(reason.clone())))
                    .collect()
            }
        }
    }

    fn count(&self, message: &Message, result: &Result<Handled, HandleError>, took: Duration) {
        let queue = self.handler.queue();
        match result {
            Ok(handled) => self
                .metrics
                .handled(queue, &handled.kind, handled.outcome, took),
            Err(error) => {
                tracing::warn!(error = %Chain(error), attempt = message.attempt.number, "message failed");
                self.metrics
                    .handled(queue, message.kind(), error.outcome(), took);
            }
        }
    }
}

/// How long ago the message was stamped (publishers set `timestamp` in seconds).
fn lag(message: &Message) -> Option<Duration> {
    let stamped = message.published_at?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(now.saturating_sub(stamped)))
}

#[cfg(test)]
mod tests {
    use roomtape_shared::queue::{Outgoing, PublishError};

    use super::*;
    use crate::egress::FilesUnconfirmed;

    /// Fails every message for good, and panics while giving it up.
    struct PanicsGivingUp;

    impl Handler for PanicsGivingUp {
        fn queue(&self) -> &'static str {
            "roomtape.test"
        }

        async fn handle<O: Outbox>(&self, _: &Message, _: &O) -> Result<Handled, HandleError> {
            Err(HandleError::from(FilesUnconfirmed::UnknownBucket {
                bucket: "b".into(),
                egress_id: "EG_1".into(),
            }))
        }

        async fn give_up<O: Outbox>(
            &self,
            _: &Message,
            _: &HandleError,
            _: &O,
        ) -> Result<Option<Handled>, HandleError> {
            panic!("a bug while giving up")
        }
    }

    struct NoOutbox;

    impl Outbox for NoOutbox {
        async fn publish(&self, _: Outgoing<'_>) -> Result<(), PublishError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_panic_while_giving_up_dead_letters_the_message() {
        let message = Message::new("{}", "roomtape.test");
        let result = PanicsGivingUp.handle(&message, &NoOutbox).await;
        match decide(&PanicsGivingUp, &message, result, &NoOutbox).await {
            Step::Settle(Settlement::DeadLetter(error)) => {
                assert_eq!(error.outcome(), "not_configured");
            }
            other => panic!("expected a dead letter, got {other:?}"),
        }
    }
}
