//! Parses a queued body into LiveKit's `WebhookEvent` (protojson), tolerating what a newer
//! LiveKit may send: unknown fields are skipped by the generated serde already, and a value the
//! generated code rejects (an enum value it does not know) is dropped and parsing retried, so
//! the field takes its default. Only bodies that are not a JSON event at all are poison.

use serde_json::Value;

use super::proto::WebhookEvent;
use super::EventKind;

/// Values dropped before giving up; real events need at most a handful.
const MAX_REPAIRS: usize = 16;

#[derive(Debug)]
pub struct ParsedEvent {
    pub event: WebhookEvent,
    /// What `event.event` names, read once here.
    pub kind: EventKind,
    /// The body as JSON, stored in `webhook_events.payload` and searched for S3 destinations.
    pub raw: Value,
    /// JSON paths of values that were dropped to parse, for the logs.
    pub dropped: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("body is not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("body is not a LiveKit WebhookEvent: no \"event\" string")]
    NoEventName,
    #[error("body is not a LiveKit WebhookEvent: {0}")]
    Invalid(String),
}

pub fn parse(body: &[u8]) -> Result<ParsedEvent, ParseError> {
    let raw: Value = serde_json::from_slice(body).map_err(ParseError::NotJson)?;
    if !raw.get("event").is_some_and(Value::is_string) {
        return Err(ParseError::NoEventName);
    }
    // A copy to repair only once a value needs removing: most bodies deserialize as they are.
    let mut repaired: Option<Value> = None;
    let mut dropped = Vec::new();
    loop {
        let value = repaired.as_ref().unwrap_or(&raw);
        match serde_path_to_error::deserialize::<_, WebhookEvent>(value) {
            Ok(event) => {
                return Ok(ParsedEvent {
                    kind: EventKind::of(&event.event),
                    event,
                    raw,
                    dropped,
                })
            }
            Err(error) => {
                let path = error.path().clone();
                let mut value = repaired.take().unwrap_or_else(|| raw.clone());
                if dropped.len() >= MAX_REPAIRS || !remove_at(&mut value, &path) {
                    return Err(ParseError::Invalid(error.to_string()));
                }
                dropped.push(path.to_string());
                repaired = Some(value);
            }
        }
    }
}

/// Removes the value at `path`; `false` if there is nothing removable there.
fn remove_at(value: &mut Value, path: &serde_path_to_error::Path) -> bool {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut node = value;
    for segment in parents {
        let next = match (segment, node) {
            (Segment::Map { key }, Value::Object(map)) => map.get_mut(key),
            (Segment::Seq { index }, Value::Array(items)) => items.get_mut(*index),
            _ => None,
        };
        match next {
            Some(child) => node = child,
            None => return false,
        }
    }
    match (last, node) {
        (Segment::Map { key }, Value::Object(map)) => map.remove(key).is_some(),
        (Segment::Seq { index }, Value::Array(items)) if *index < items.len() => {
            items.remove(*index);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_enum_value_takes_the_default_instead_of_poisoning() {
        let body = br#"{"event":"egress_updated","id":"EV_1","egressInfo":{"egressId":"EG_1",
            "status":"EGRESS_TELEPORTING","sourceType":"EGRESS_SOURCE_TYPE_HOLOGRAM",
            "updatedAt":"5"}}"#;
        let parsed = parse(body).expect("tolerated");
        assert_eq!(parsed.kind, EventKind::EgressUpdated);
        let info = parsed.event.egress_info.expect("egress info");
        assert_eq!(info.egress_id, "EG_1");
        assert_eq!(info.status, 0);
        assert_eq!(info.updated_at, 5);
        assert_eq!(parsed.dropped.len(), 2, "{:?}", parsed.dropped);
    }

    #[test]
    fn bodies_that_are_not_events_are_poison() {
        assert!(matches!(parse(b"not json"), Err(ParseError::NotJson(_))));
        assert!(matches!(parse(b"[1,2]"), Err(ParseError::NoEventName)));
        assert!(matches!(
            parse(br#"{"id":"EV_1"}"#),
            Err(ParseError::NoEventName)
        ));
    }
}
