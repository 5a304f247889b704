//! Stepping a handler without a broker: what it publishes is kept in a list.

use std::sync::Mutex;

use roomtape_processor::error::HandleError;
use roomtape_processor::worker::{Handled, Handler, Message, Outbox};
use roomtape_shared::queue::{Outgoing, PublishError};

/// A published message, as the outbox kept it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub exchange: String,
    pub routing_key: String,
    pub body: String,
    pub message_id: Option<String>,
}

/// Confirms everything and remembers it.
#[derive(Debug, Default)]
pub struct RecordingOutbox {
    sent: Mutex<Vec<Sent>>,
}

impl RecordingOutbox {
    pub fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }
}

impl Outbox for RecordingOutbox {
    async fn publish(&self, message: Outgoing<'_>) -> Result<(), PublishError> {
        self.sent.lock().unwrap().push(Sent {
            exchange: message.exchange.to_owned(),
            routing_key: message.routing_key.to_owned(),
            body: String::from_utf8_lossy(message.body).into_owned(),
            message_id: message
                .properties
                .message_id()
                .as_ref()
                .map(ToString::to_string),
        });
        Ok(())
    }
}

/// Hands `body` to `handler` as a first delivery, the way the worker would, without a broker.
pub async fn handle<H: Handler>(handler: &H, body: &str) -> Result<Handled, HandleError> {
    handler
        .handle(&Message::new(body, "test"), &RecordingOutbox::default())
        .await
}

/// Hands `bodies` to `handler` as one batch of first deliveries, as the worker would.
pub async fn handle_batch<H: Handler>(
    handler: &H,
    bodies: &[String],
) -> Vec<Result<Handled, HandleError>> {
    let messages: Vec<Message> = bodies
        .iter()
        .map(|b| Message::new(b.as_str(), "test"))
        .collect();
    handler
        .handle_batch(&messages, &RecordingOutbox::default())
        .await
}
