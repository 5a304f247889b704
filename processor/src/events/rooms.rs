//! Room and participant events → `rooms` and `room_participants`, one room's events at a time:
//! its row is locked once, and each run of joins and leaves of one session is written in one
//! statement that moves the counts by the change it makes.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use roomtape_shared::db::from_secs;
use roomtape_shared::events::proto::{participant_info, ParticipantInfo, WebhookEvent};
use tokio_postgres::Error;

use crate::store::rooms::{self, Presence};

/// Applies `events` of the room `room_name`, in order, in the caller's transaction. Events of
/// other names change nothing.
pub async fn apply(
    client: &impl GenericClient,
    room_name: &str,
    events: &[&WebhookEvent],
) -> Result<(), Error> {
    let Some(first) = events.iter().find_map(|event| event.room.as_ref()) else {
        return Ok(());
    };
    rooms::lock(client, room_name, &first.sid).await?;
    let mut run = Run::default();
    for event in events {
        let Some(room) = &event.room else { continue };
        let at = from_secs(event.created_at);
        match event.event.as_str() {
            "room_started" => {
                run.flush(client, room_name).await?;
                let started = from_secs(room.creation_time).or(at);
                rooms::started(client, room_name, &room.sid, started).await?;
            }
            "room_finished" => {
                run.flush(client, room_name).await?;
                rooms::finished(client, room_name, &room.sid, at).await?;
            }
            "participant_joined" | "participant_left" | "participant_connection_aborted" => {
                let Some(participant) = event.participant.as_ref().filter(|p| is_viewer(p.kind))
                else {
                    continue;
                };
                if run.sid != room.sid {
                    run.flush(client, room_name).await?;
                    run.sid.clone_from(&room.sid);
                }
                let joined = event.event == "participant_joined";
                run.add(participant, joined, at);
            }
            _ => {}
        }
    }
    run.flush(client, room_name).await
}

/// Consecutive joins and leaves of one session, one entry per participant.
#[derive(Default)]
struct Run {
    sid: String,
    participants: Vec<Presence>,
    index: HashMap<String, usize>,
}

impl Run {
    fn add(&mut self, participant: &ParticipantInfo, joined: bool, at: Option<DateTime<Utc>>) {
        let (joined_at, left_at) = match joined {
            true => (joined_at(participant).or(at), None),
            // A leave without a time still ends the presence.
            false => (None, at.or_else(|| Some(Utc::now()))),
        };
        let slot = *self
            .index
            .entry(participant.sid.clone())
            .or_insert_with(|| {
                self.participants.push(Presence {
                    participant_sid: participant.sid.clone(),
                    identity: participant.identity.clone(),
                    joined_at: None,
                    left_at: None,
                });
                self.participants.len() - 1
            });
        let entry = &mut self.participants[slot];
        entry.joined_at = earliest(entry.joined_at, joined_at);
        entry.left_at = earliest(entry.left_at, left_at);
    }

    async fn flush(&mut self, client: &impl GenericClient, room_name: &str) -> Result<(), Error> {
        if self.participants.is_empty() {
            return Ok(());
        }
        rooms::presence(client, room_name, &self.sid, &self.participants).await?;
        self.participants.clear();
        self.index.clear();
        Ok(())
    }
}

/// The earlier of two times, either of which may be unknown (as SQL's `LEAST`).
fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// When the participant joined: `joinedAtMs` where LiveKit sends it, else `joinedAt` (seconds).
fn joined_at(participant: &ParticipantInfo) -> Option<DateTime<Utc>> {
    (participant.joined_at_ms > 0)
        .then(|| DateTime::from_timestamp_millis(participant.joined_at_ms))
        .flatten()
        .or_else(|| from_secs(participant.joined_at))
}

/// People count as viewers (`STANDARD`, `SIP`); recorders, ingress, agents, connectors,
/// bridges and kinds newer than this build do not.
fn is_viewer(kind: i32) -> bool {
    matches!(
        participant_info::Kind::try_from(kind),
        Ok(participant_info::Kind::Standard | participant_info::Kind::Sip)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_people_are_viewers() {
        use participant_info::Kind;
        assert!(is_viewer(Kind::Standard as i32) && is_viewer(Kind::Sip as i32));
        for kind in [Kind::Egress, Kind::Ingress, Kind::Agent, Kind::Connector] {
            assert!(!is_viewer(kind as i32), "{kind:?}");
        }
        assert!(!is_viewer(99), "a kind newer than this build");
    }

    #[test]
    fn a_batch_keeps_the_earliest_join_and_leave_of_each_participant() {
        let mut run = Run::default();
        let alice = ParticipantInfo {
            sid: "PA_a".into(),
            identity: "alice".into(),
            joined_at_ms: 2_000,
            ..ParticipantInfo::default()
        };
        let later = from_secs(9);
        run.add(&alice, false, later);
        run.add(&alice, true, None);
        run.add(&alice, false, from_secs(5));
        run.add(&alice, true, None);
        assert_eq!(run.participants.len(), 1);
        let entry = &run.participants[0];
        assert_eq!(entry.joined_at, DateTime::from_timestamp_millis(2_000));
        assert_eq!(entry.left_at, from_secs(5));
    }
}
