//! Auto-record: a room that matches the configured rule gets a `recording.start` command when
//! it starts, once per room session (the command's id is the session's sid). The room's
//! metadata (`{"record": true, "stream_id": …, "user_id": …}`, set by the app that created the
//! room) links the recording to the app's stream and user, however the room was matched.
//! A participant the participant rule names gets a participant recording of its own when it
//! joins, once per participant session (its sid): one who rejoins gets another. LiveKit ends
//! it when the participant leaves.

use crate::config::{AutoRecordSettings, ParticipantKind, ParticipantRule};
use lapin::BasicProperties;
use roomtape_shared::events::proto::{ParticipantInfo, Room};
use roomtape_shared::queue::topology::COMMANDS_EXCHANGE;
use roomtape_shared::queue::{Outgoing, PublishError};
use serde_json::{json, Value};

use crate::worker::Outbox;

/// Whether `room` is to be recorded from its start.
pub fn wanted(rule: &AutoRecordSettings, room: &Room) -> bool {
    let by_name = rule.room_patterns.iter().any(|p| p.matches(&room.name));
    let by_metadata = rule.on_metadata && metadata(room)["record"] == true;
    by_name || by_metadata
}

/// The room's metadata as JSON; `null` when it is empty or not JSON.
fn metadata(room: &Room) -> Value {
    serde_json::from_str(&room.metadata).unwrap_or(Value::Null)
}

/// The start command for `room`: its name, and the stream and user its metadata names.
fn command(room: &Room) -> Value {
    let metadata = metadata(room);
    let mut command = json!({"room_name": room.name, "metadata": {"auto_record": true}});
    for field in ["stream_id", "user_id"] {
        // Ids are strings (UUIDs); a number is taken as its text, anything else left out.
        let id = match &metadata[field] {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        };
        if let Some(id) = id {
            command[field] = Value::String(id);
        }
    }
    command
}

/// Publishes the room's start command (confirmed); its `message_id` makes repeats harmless.
pub async fn request(outbox: &impl Outbox, room: &Room) -> Result<(), PublishError> {
    let id = format!("auto:{}:{}", room.name, room.sid);
    publish(outbox, &id, &command(room)).await
}

/// LiveKit's own recorders join as egress participants (`EG_…` identities before participant
/// kinds existed): recording them would record the recording.
fn is_recorder(participant: &ParticipantInfo) -> bool {
    participant.kind == ParticipantKind::Egress as i32 || participant.identity.starts_with("EG_")
}

/// Whether `participant` gets a recording of its own when it joins.
pub fn participant_wanted(rule: &ParticipantRule, participant: &ParticipantInfo) -> bool {
    let kind_listed = rule.kinds.iter().any(|k| *k as i32 == participant.kind);
    let identity_matches = rule
        .identities
        .iter()
        .any(|p| p.matches(&participant.identity));
    kind_listed && identity_matches && !is_recorder(participant)
}

/// The participant recording's start command. A rejoin may arrive before the end of the
/// previous session's egress, which LiveKit is ending: one recording per session is what the
/// command id (the session) ensures, so the previous one does not refuse it.
fn participant_command(room_name: &str, participant: &ParticipantInfo) -> Value {
    json!({"room_name": room_name, "kind": "participant", "identity": participant.identity,
           "allow_concurrent": true, "metadata": {"auto_record": true}})
}

/// Publishes the participant's start command; one per participant session (`sid`), so a
/// re-sent join starts nothing twice and a rejoin starts a new recording.
pub async fn request_participant(
    outbox: &impl Outbox,
    room_name: &str,
    participant: &ParticipantInfo,
) -> Result<(), PublishError> {
    let id = format!("auto:{room_name}:{}", participant.sid);
    publish(outbox, &id, &participant_command(room_name, participant)).await
}

async fn publish(outbox: &impl Outbox, message_id: &str, body: &Value) -> Result<(), PublishError> {
    let body = body.to_string();
    let properties = BasicProperties::default()
        .with_message_id(message_id.into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2);
    let command = Outgoing::to_exchange(
        COMMANDS_EXCHANGE,
        "recording.start",
        body.as_bytes(),
        properties,
    );
    outbox.publish(command).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn participant(identity: &str, kind: ParticipantKind) -> ParticipantInfo {
        ParticipantInfo {
            sid: "PA_1".into(),
            identity: identity.into(),
            kind: kind as i32,
            ..ParticipantInfo::default()
        }
    }

    #[test]
    fn participants_are_recorded_by_kind_and_identity_never_recorders() {
        let rule = |identities: &[&str], kinds: &[ParticipantKind]| ParticipantRule {
            identities: identities
                .iter()
                .map(|p| glob::Pattern::new(p).expect("pattern"))
                .collect(),
            kinds: kinds.to_vec(),
        };
        let sip_callers = rule(&["*"], &[ParticipantKind::Sip]);
        assert!(participant_wanted(
            &sip_callers,
            &participant("sip_+15551234", ParticipantKind::Sip)
        ));
        assert!(!participant_wanted(
            &sip_callers,
            &participant("agent-1", ParticipantKind::Agent)
        ));
        let guests = rule(&["guest-*"], &[ParticipantKind::Standard]);
        assert!(participant_wanted(
            &guests,
            &participant("guest-ann", ParticipantKind::Standard)
        ));
        assert!(!participant_wanted(
            &guests,
            &participant("host", ParticipantKind::Standard)
        ));
        let everyone = rule(&["*"], &[ParticipantKind::Standard]);
        assert!(!participant_wanted(
            &everyone,
            &participant("EG_abc", ParticipantKind::Standard)
        ));
        assert_eq!(
            participant_command("r", &participant("ann", ParticipantKind::Standard)),
            json!({"room_name": "r", "kind": "participant", "identity": "ann",
                   "allow_concurrent": true, "metadata": {"auto_record": true}})
        );
    }

    fn room(metadata: &str) -> Room {
        Room {
            name: "stream-123".into(),
            sid: "RM_a".into(),
            metadata: metadata.into(),
            ..Room::default()
        }
    }

    #[test]
    fn the_stream_and_user_come_from_the_rooms_metadata() {
        let linked = command(&room(
            r#"{"record": true, "stream_id": "s-1", "user_id": 42, "title": "x"}"#,
        ));
        assert_eq!(
            linked,
            json!({"room_name": "stream-123", "metadata": {"auto_record": true},
                   "stream_id": "s-1", "user_id": "42"})
        );
        for metadata in [
            "",
            "not json",
            r#"{"stream_id": {"id": 1}, "user_id": null}"#,
        ] {
            assert_eq!(
                command(&room(metadata)),
                json!({"room_name": "stream-123", "metadata": {"auto_record": true}}),
                "{metadata}"
            );
        }
    }
}
