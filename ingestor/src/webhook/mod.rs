//! The webhook endpoint: authenticate, parse the envelope, publish, answer.

pub mod error;
pub mod handler;
pub mod verify;

use bytes::Bytes;
use roomtape_shared::events::{EnvelopeError, EventEnvelope};
use sha2::{Digest, Sha256};

use verify::VerifiedBody;

/// An authenticated LiveKit event, ready to publish. Only built from a [`VerifiedBody`], so
/// nothing unverified can reach the queue.
#[derive(Debug, Clone)]
pub struct VerifiedEvent {
    pub envelope: EventEnvelope,
    /// The AMQP `message_id`: LiveKit's event id, or for events without one (old servers) a
    /// digest of the body, which is just as stable across LiveKit's retries.
    pub message_id: String,
    pub api_key: String,
    /// The original bytes, published unchanged.
    pub body: Bytes,
}

impl VerifiedEvent {
    pub fn parse(verified: VerifiedBody) -> Result<Self, EnvelopeError> {
        let envelope = EventEnvelope::parse(&verified.body)?;
        let message_id = match envelope.id.as_deref().filter(|id| !id.is_empty()) {
            Some(id) => id.to_owned(),
            None => format!("sha256:{:x}", Sha256::digest(&verified.body)),
        };
        Ok(Self {
            envelope,
            message_id,
            api_key: verified.api_key,
            body: verified.body,
        })
    }
}
