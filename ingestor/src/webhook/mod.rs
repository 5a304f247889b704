//! The webhook endpoint: authenticate, parse the envelope, publish, answer.

pub mod error;
pub mod handler;
pub mod verify;

use bytes::Bytes;
use roomtape_shared::events::{event_id, EnvelopeError, EventEnvelope};

use verify::VerifiedBody;

/// An authenticated LiveKit event, ready to publish. Only built from a [`VerifiedBody`], so
/// nothing unverified can reach the queue.
#[derive(Debug, Clone)]
pub struct VerifiedEvent {
    pub envelope: EventEnvelope,
    /// The AMQP `message_id`: see [`event_id`].
    pub message_id: String,
    pub api_key: String,
    /// The original bytes, published unchanged.
    pub body: Bytes,
}

impl VerifiedEvent {
    pub fn parse(verified: VerifiedBody) -> Result<Self, EnvelopeError> {
        let envelope = EventEnvelope::parse(&verified.body)?;
        let message_id = event_id(envelope.id.as_deref(), &verified.body);
        Ok(Self {
            envelope,
            message_id,
            api_key: verified.api_key,
            body: verified.body,
        })
    }
}
