//! Webhook bodies shaped like LiveKit's `participant_joined`, each with its own event id, so the
//! ingestor's dedupe window never answers one without publishing it; and [`Source`], what the
//! load targets take their messages from (these, or the processor benchmark's mix).

use std::time::{SystemTime, UNIX_EPOCH};

/// One webhook of a run.
#[derive(Debug, Clone)]
pub struct Message {
    /// LiveKit's event id (`id` in the body), also the AMQP `message_id`.
    pub id: String,
    /// The event name (`event` in the body), also the AMQP `type`.
    pub event: &'static str,
    pub body: Vec<u8>,
}

/// Where the load targets take message `n` of a run from.
pub trait Source: Send + Sync + 'static {
    /// The event id of message `n`.
    fn id(&self, n: u64) -> String;
    /// Message `n`, created now.
    fn message(&self, n: u64) -> Message;
}

/// The event every benchmark message is.
pub const EVENT_NAME: &str = "participant_joined";

/// Builds message `n` of a run; ids are `EV_<run>_<n>`, distinct across runs with distinct
/// `run` prefixes.
#[derive(Debug, Clone)]
pub struct Events {
    run: String,
}

impl Events {
    pub fn new(run: impl Into<String>) -> Self {
        Self { run: run.into() }
    }

    /// The event id of message `n`.
    pub fn id(&self, n: u64) -> String {
        format!("EV_{}_{n}", self.run)
    }

    /// The JSON body of message `n`, created now.
    pub fn body(&self, n: u64) -> Vec<u8> {
        let now = now_unix();
        serde_json::json!({
            "event": EVENT_NAME,
            "room": {"sid": "RM_bench", "name": "bench", "emptyTimeout": 300, "creationTime": now.to_string()},
            "participant": {
                "sid": format!("PA_{}_{n}", self.run),
                "identity": format!("user-{n}"),
                "state": "ACTIVE",
                "joinedAt": now.to_string(),
                "name": format!("User {n}"),
            },
            "id": self.id(n),
            "createdAt": now.to_string(),
        })
        .to_string()
        .into_bytes()
    }
}

impl Source for Events {
    fn id(&self, n: u64) -> String {
        Events::id(self, n)
    }

    fn message(&self, n: u64) -> Message {
        Message {
            id: Events::id(self, n),
            event: EVENT_NAME,
            body: self.body(n),
        }
    }
}

/// Seconds since the epoch (0 if the clock is before it).
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A run prefix unlikely to repeat: seconds and process id.
pub fn default_run_id() -> String {
    format!("{}p{}", now_unix(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_distinct_ids() {
        let events = Events::new("r1");
        let a: serde_json::Value = serde_json::from_slice(&events.body(1)).expect("json");
        let b: serde_json::Value = serde_json::from_slice(&events.body(2)).expect("json");
        assert_eq!(a["id"], "EV_r1_1");
        assert_eq!(b["id"], "EV_r1_2");
        assert_eq!(a["event"], EVENT_NAME);
    }
}
