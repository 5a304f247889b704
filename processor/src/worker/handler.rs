//! What a queue's handler is, and the outbox it publishes follow-up messages through.

use std::future::Future;

use roomtape_shared::queue::{publish_confirmed, Outgoing, PublishError, CONFIRM_TIMEOUT};
use serde_json::Value;

use super::Message;
use crate::error::HandleError;

/// A message handled: acked after its reply (if any) is confirmed.
#[derive(Debug, Clone, PartialEq)]
pub struct Handled {
    /// The event name or command, for metrics.
    pub kind: String,
    /// A stable label for metrics (`applied`, `duplicate`, `ok`, ...).
    pub outcome: &'static str,
    /// The reply to send to the message's `reply_to`, if it has one.
    pub reply: Option<Value>,
}

impl Handled {
    pub fn new(kind: &str, outcome: &'static str) -> Self {
        Self {
            kind: kind.to_owned(),
            outcome,
            reply: None,
        }
    }

    pub fn with_reply(mut self, reply: Value) -> Self {
        self.reply = Some(reply);
        self
    }
}

/// Where handlers publish follow-up messages (auto-record commands), each confirmed by the
/// broker before the call returns. The worker's is a confirm-mode channel; tests keep a list.
pub trait Outbox: Send + Sync {
    fn publish(
        &self,
        message: Outgoing<'_>,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;
}

impl Outbox for lapin::Channel {
    async fn publish(&self, message: Outgoing<'_>) -> Result<(), PublishError> {
        publish_confirmed(self, message, CONFIRM_TIMEOUT).await
    }
}

/// Handles the messages of one queue. The worker decides what becomes of each: a handled
/// message is acked, a failed one retried, given up or dead-lettered by its
/// [`HandleError::disposition`].
pub trait Handler: Send + Sync + 'static {
    fn queue(&self) -> &'static str;

    /// The most messages the worker hands to one [`Handler::handle_batch`]: what the prefetch
    /// holds at that moment, up to this.
    fn batch_limit(&self) -> usize {
        1
    }

    /// How many messages (or batches) run at once, given `PROCESSOR_CONCURRENCY`.
    fn tasks(&self, configured: usize) -> usize {
        configured
    }

    fn handle<O: Outbox>(
        &self,
        message: &Message,
        outbox: &O,
    ) -> impl Future<Output = Result<Handled, HandleError>> + Send;

    /// One result per message, in order. By default, one message after the other.
    fn handle_batch<O: Outbox>(
        &self,
        messages: &[Message],
        outbox: &O,
    ) -> impl Future<Output = Vec<Result<Handled, HandleError>>> + Send {
        async move {
            let mut results = Vec::with_capacity(messages.len());
            for message in messages {
                results.push(self.handle(message, outbox).await);
            }
            results
        }
    }

    /// Whether a failed message may be retried after `delay` (the next delay queue's). By
    /// default while the schedule lasts; a handler with a deadline says no past it.
    fn retry_allowed(
        &self,
        message: &Message,
        delay: std::time::Duration,
    ) -> impl Future<Output = bool> + Send {
        let _ = (message, delay);
        async { true }
    }

    /// Called once `error` will not be retried (the schedule is used up, or it can never
    /// work): `Some` settles the message as handled (an error reply, a failed recording),
    /// `None` dead-letters it.
    fn give_up<O: Outbox>(
        &self,
        message: &Message,
        error: &HandleError,
        outbox: &O,
    ) -> impl Future<Output = Result<Option<Handled>, HandleError>> + Send {
        let _ = (message, error, outbox);
        async { Ok(None) }
    }
}
