//! The headers roomtape sets on messages it moves between queues (CONTRACTS §3), and reading
//! them back.

use lapin::types::{AMQPValue, FieldTable, LongString};

/// Which attempt a message is on (1 for the first delivery).
pub const ATTEMPT: &str = "x-roomtape-attempt";
/// Why the last attempt failed.
pub const ERROR: &str = "x-roomtape-error";
/// The queue a dead letter failed on.
pub const SOURCE_QUEUE: &str = "x-roomtape-source-queue";
/// The routing key the message was first published with: a retried message comes back from
/// its delay queue under the queue's name.
pub const ROUTING_KEY: &str = "x-roomtape-routing-key";
/// Dropped when a dead letter is replayed, so it starts its retry schedule afresh.
pub const RETRY_STATE: [&str; 3] = [ERROR, ATTEMPT, SOURCE_QUEUE];
/// Set by the broker on what it dead-lettered itself (the delivery limit).
pub const X_DEATH: &str = "x-death";

/// A header value as text, if it is a string.
pub fn text(headers: Option<&FieldTable>, name: &str) -> Option<String> {
    as_text(headers?.inner().get(name)?)
}

/// A header value as a count, if it is a non-negative integer.
pub fn count(headers: Option<&FieldTable>, name: &str) -> Option<u32> {
    match headers?.inner().get(name)? {
        AMQPValue::LongUInt(n) => Some(*n),
        AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::ShortInt(n) => u32::try_from(*n).ok(),
        AMQPValue::ShortShortUInt(n) => Some(u32::from(*n)),
        _ => None,
    }
}

/// The newest `x-death` entry the broker added (it puts the newest first).
pub fn first_death(headers: Option<&FieldTable>) -> Option<&FieldTable> {
    match headers?.inner().get(X_DEATH)? {
        AMQPValue::FieldArray(deaths) => deaths.as_slice().iter().find_map(|death| match death {
            AMQPValue::FieldTable(death) => Some(death),
            _ => None,
        }),
        _ => None,
    }
}

/// The queue in the newest `x-death` entry the broker added.
pub fn first_death_queue(headers: Option<&FieldTable>) -> Option<String> {
    first_death(headers)?.inner().get("queue").and_then(as_text)
}

/// A string header value.
pub fn string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

fn as_text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{FieldArray, ShortString};

    fn table(entries: Vec<(&str, AMQPValue)>) -> FieldTable {
        let mut table = FieldTable::default();
        for (key, value) in entries {
            table.insert(ShortString::from(key), value);
        }
        table
    }

    #[test]
    fn reads_text_and_counts_of_any_integer_width() {
        let headers = table(vec![
            (ERROR, string("boom")),
            (ATTEMPT, AMQPValue::LongLongInt(3)),
            (SOURCE_QUEUE, AMQPValue::LongInt(-1)),
        ]);
        assert_eq!(text(Some(&headers), ERROR).as_deref(), Some("boom"));
        assert_eq!(count(Some(&headers), ATTEMPT), Some(3));
        assert_eq!(count(Some(&headers), SOURCE_QUEUE), None);
        assert_eq!(text(None, ERROR), None);
    }

    #[test]
    fn finds_the_queue_the_broker_dead_lettered_from() {
        let death = table(vec![("queue", string("roomtape.events"))]);
        let headers = table(vec![(
            X_DEATH,
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(death)])),
        )]);
        assert_eq!(
            first_death_queue(Some(&headers)).as_deref(),
            Some("roomtape.events")
        );
    }
}
