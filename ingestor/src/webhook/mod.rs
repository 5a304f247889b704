//! The webhook endpoint: authenticate, parse the envelope, publish, answer.

pub mod error;
pub mod handler;
pub mod log_throttle;
pub mod verify;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod verify_properties;

use std::sync::Arc;

use bytes::Bytes;
use roomtape_shared::events::{event_id, EnvelopeError, EventEnvelope};

use crate::queue::publish::EventMessage;
use verify::VerifiedBody;

/// An authenticated LiveKit event, ready to publish. Its fields are private and it is only
/// built from a [`VerifiedBody`], so nothing unverified can reach the queue.
#[derive(Debug, Clone)]
pub struct VerifiedEvent {
    envelope: EventEnvelope,
    message_id: String,
    api_key: Arc<str>,
    body: Bytes,
}

impl VerifiedEvent {
    pub fn parse(verified: VerifiedBody) -> Result<Self, EnvelopeError> {
        let (api_key, body) = verified.into_parts();
        let envelope = EventEnvelope::parse(&body)?;
        let message_id = event_id(envelope.id.as_deref(), &body);
        Ok(Self {
            envelope,
            message_id,
            api_key,
            body,
        })
    }

    pub fn envelope(&self) -> &EventEnvelope {
        &self.envelope
    }

    /// The AMQP `message_id`: see [`event_id`].
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// What the publisher sends for it: the original bytes, unchanged, and the API key that
    /// signed them (the `x-livekit-key` header).
    pub fn message(&self) -> EventMessage<'_> {
        EventMessage {
            envelope: &self.envelope,
            message_id: &self.message_id,
            api_key: &self.api_key,
            body: &self.body,
        }
    }
}
