//! The LiveKit event model.
//!
//! [`EventEnvelope`] is the lenient view the ingestor routes by: it reads only the event name,
//! id, creation time, room and egress id, and never fails on fields or enum values it does not
//! know. The full types are `livekit_protocol`'s (re-exported as [`proto`]), which the processor
//! parses with their protojson serde ([`parse`]) and dispatches on by [`EventKind`].

mod kind;
pub mod parse;

pub use kind::EventKind;
pub use livekit_protocol as proto;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};

/// What every LiveKit webhook body carries that matters for routing and logging.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventEnvelope {
    /// `room_started`, `egress_ended`, …
    pub event: String,
    /// LiveKit's event id (`EV_…`), kept across its retries; absent in old servers' events.
    #[serde(default)]
    pub id: Option<String>,
    /// Seconds since the epoch; protojson writes int64 as a string.
    #[serde(default, deserialize_with = "lenient_i64")]
    pub created_at: Option<i64>,
    #[serde(default)]
    pub room: Option<RoomRef>,
    #[serde(default)]
    pub egress_info: Option<EgressRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomRef {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub sid: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressRef {
    #[serde(default)]
    pub egress_id: String,
    #[serde(default)]
    pub room_name: String,
}

/// Why a body is not a LiveKit webhook event.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("body is not a JSON object with an \"event\" string: {0}")]
    Json(#[from] serde_json::Error),
    #[error("event name {0:?} is not a LiveKit event name (lower-case letters, digits and _)")]
    BadEventName(String),
    #[error("field \"id\" is {0} bytes long; an event id may be at most {MAX_EVENT_ID_BYTES} (it becomes the AMQP message id)")]
    IdTooLong(usize),
}

/// The longest event id: AMQP's `message-id` is a short string. LiveKit's are `EV_` and 12
/// characters.
pub const MAX_EVENT_ID_BYTES: usize = 255;

impl EventEnvelope {
    pub fn parse(body: &[u8]) -> Result<Self, EnvelopeError> {
        let envelope: Self = serde_json::from_slice(body)?;
        let valid = !envelope.event.is_empty()
            && envelope.event.len() <= 64
            && envelope
                .event
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(EnvelopeError::BadEventName(envelope.event));
        }
        if let Some(len) = envelope
            .id
            .as_ref()
            .map(String::len)
            .filter(|&len| len > MAX_EVENT_ID_BYTES)
        {
            return Err(EnvelopeError::IdTooLong(len));
        }
        Ok(envelope)
    }

    /// The AMQP routing key: the event name with `_` replaced by `.` (`egress.ended`).
    pub fn routing_key(&self) -> String {
        routing_key(&self.event)
    }

    /// The room this event is about, from wherever the event carries it.
    pub fn room_name(&self) -> Option<&str> {
        let from_room = self.room.as_ref().map(|r| r.name.as_str());
        let from_egress = self.egress_info.as_ref().map(|e| e.room_name.as_str());
        from_room
            .into_iter()
            .chain(from_egress)
            .find(|n| !n.is_empty())
    }

    pub fn egress_id(&self) -> Option<&str> {
        self.egress_info
            .as_ref()
            .map(|e| e.egress_id.as_str())
            .filter(|id| !id.is_empty())
    }
}

/// The id an event is deduplicated by: LiveKit's event id, or for events without one (old
/// servers) a digest of the body, which is just as stable across LiveKit's retries.
pub fn event_id(id: Option<&str>, body: &[u8]) -> String {
    match id.filter(|id| !id.is_empty()) {
        Some(id) => id.to_owned(),
        None => format!("sha256:{:x}", Sha256::digest(body)),
    }
}

/// `egress_ended` → `egress.ended`.
pub fn routing_key(event: &str) -> String {
    event.replace('_', ".")
}

/// Reads an int64 written as a number or, as protojson does, as a string; anything else is
/// `None`. A visitor rather than an untagged enum: serde tries an untagged enum's variants in
/// turn, building an error for each miss, which cost ~5 % of the ingestor's instructions.
fn lenient_i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    struct LenientI64;

    impl<'de> Visitor<'de> for LenientI64 {
        type Value = Option<i64>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an integer, as a number or a string")
        }

        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
            Ok(Some(n))
        }

        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
            Ok(i64::try_from(n).ok())
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            Ok(s.trim().parse().ok())
        }

        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<de::IgnoredAny>()?.is_some() {}
            Ok(None)
        }

        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map
                .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                .is_some()
            {}
            Ok(None)
        }
    }

    deserializer.deserialize_any(LenientI64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_protojson_and_ignores_what_it_does_not_know() {
        let body = br#"{"event":"egress_ended", "id":"EV_1", "createdAt":"1700001803",
            "egressInfo":{"egressId":"EG_1","roomName":"standup","status":"EGRESS_FROM_THE_FUTURE",
            "newField":{"x":1}}, "brandNewTopLevel":[1,2]}"#;
        let envelope = EventEnvelope::parse(body).expect("lenient parse");
        assert_eq!(envelope.event, "egress_ended");
        assert_eq!(envelope.id.as_deref(), Some("EV_1"));
        assert_eq!(envelope.created_at, Some(1_700_001_803));
        assert_eq!(envelope.egress_id(), Some("EG_1"));
        assert_eq!(envelope.room_name(), Some("standup"));
        assert_eq!(envelope.routing_key(), "egress.ended");
    }

    #[test]
    fn reads_created_at_however_it_is_written() {
        for (created_at, expected) in [
            ("1700001803", Some(1_700_001_803)),
            ("\"1700001803\"", Some(1_700_001_803)),
            ("\" 42 \"", Some(42)),
            ("-5", Some(-5)),
            ("\"soon\"", None),
            ("1.5", None),
            ("18446744073709551615", None),
            ("null", None),
            ("true", None),
            ("[1]", None),
            ("{\"seconds\":1}", None),
        ] {
            let body =
                format!(r#"{{"event":"room_started","createdAt":{created_at},"id":"EV_1"}}"#);
            let envelope = EventEnvelope::parse(body.as_bytes()).expect(&body);
            assert_eq!(envelope.created_at, expected, "{body}");
            assert_eq!(envelope.id.as_deref(), Some("EV_1"), "{body}");
        }
    }

    #[test]
    fn rejects_bodies_without_a_usable_event_name() {
        for body in [
            &b"[]"[..],
            b"{}",
            b"{\"event\":1}",
            b"{\"event\":\"\"}",
            b"{\"event\":\"a.#\"}",
            b"not json",
        ] {
            assert!(
                EventEnvelope::parse(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
