//! Room and participant events → `rooms` and `room_participants`, a batch at a time: the
//! batch's rooms are locked in one statement, and joins and leaves are gathered, across rooms,
//! until a room event of a room they touch, then written in one statement that moves each
//! session's count by the change it makes. In a join storm (no room events), a batch is two
//! statements, however many rooms it spans.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use roomtape_shared::db::from_secs;
use roomtape_shared::db::notifications;
use roomtape_shared::events::parse::ParsedEvent;
use roomtape_shared::events::proto::{participant_info, ParticipantInfo};
use roomtape_shared::events::EventKind;
use tokio_postgres::Error;

use crate::db::rooms::{self, Presence};

/// The room sessions (name, sid) that each room's events name, to be locked
/// ([`rooms::lock`]) before they are applied; a room none of whose events carries it is left
/// out.
pub fn sessions<'a, E>(
    rooms_events: impl IntoIterator<Item = (&'a str, E)>,
) -> Vec<(&'a str, &'a str)>
where
    E: IntoIterator<Item = &'a ParsedEvent>,
{
    rooms_events
        .into_iter()
        .filter_map(|(name, events)| {
            let room = events
                .into_iter()
                .find_map(|parsed| parsed.event.room.as_ref())?;
            Some((name, room.sid.as_str()))
        })
        .collect()
}

/// Applies the events of each room (in delivery order per room) in the caller's transaction,
/// which has locked their rooms ([`rooms::lock`]). Events of other kinds change nothing.
pub async fn apply(
    client: &impl GenericClient,
    rooms_events: &[(&str, Vec<&ParsedEvent>)],
) -> Result<(), Error> {
    let mut run = Run::default();
    for (room_name, events) in rooms_events {
        for parsed in events {
            let (event, kind) = (&parsed.event, parsed.kind);
            let Some(room) = &event.room else { continue };
            let at = from_secs(event.created_at);
            match kind {
                EventKind::RoomStarted => {
                    // What came before it in this room is written first: order within a room
                    // (other rooms' joins and leaves may wait for the next flush).
                    run.flush_before(client, room_name).await?;
                    let started = from_secs(room.creation_time).or(at);
                    rooms::started(client, room_name, &room.sid, started).await?;
                }
                EventKind::RoomFinished => {
                    run.flush_before(client, room_name).await?;
                    if let Some(ended) = rooms::finished(client, room_name, &room.sid, at).await? {
                        notifications::room_finished(client, &ended).await?;
                    }
                }
                EventKind::ParticipantJoined
                | EventKind::ParticipantLeft
                | EventKind::ParticipantConnectionAborted => {
                    let Some(participant) =
                        event.participant.as_ref().filter(|p| is_viewer(p.kind))
                    else {
                        continue;
                    };
                    let joined = kind == EventKind::ParticipantJoined;
                    run.add(room_name, &room.sid, participant, joined, at);
                }
                EventKind::EgressStarted
                | EventKind::EgressUpdated
                | EventKind::EgressEnded
                | EventKind::Other => {}
            }
        }
    }
    run.flush(client).await
}

/// Joins and leaves not written yet, one entry per participant of a room session, written
/// together in one statement.
#[derive(Default)]
struct Run {
    entries: Vec<Presence>,
    /// (room, sid, participant sid) → index in `entries`.
    index: HashMap<(String, String, String), usize>,
    /// The rooms with entries.
    rooms: HashSet<String>,
}

impl Run {
    fn add(
        &mut self,
        room_name: &str,
        room_sid: &str,
        participant: &ParticipantInfo,
        joined: bool,
        at: Option<DateTime<Utc>>,
    ) {
        let (joined_at, left_at) = match joined {
            true => (joined_at(participant).or(at), None),
            // A leave without a time still ends the presence.
            false => (None, at.or_else(|| Some(Utc::now()))),
        };
        let key = (
            room_name.to_owned(),
            room_sid.to_owned(),
            participant.sid.clone(),
        );
        if !self.rooms.contains(room_name) {
            self.rooms.insert(room_name.to_owned());
        }
        let slot = *self.index.entry(key).or_insert_with(|| {
            self.entries.push(Presence {
                room_name: room_name.to_owned(),
                room_sid: room_sid.to_owned(),
                participant_sid: participant.sid.clone(),
                identity: participant.identity.clone(),
                joined_at: None,
                left_at: None,
            });
            self.entries.len() - 1
        });
        let entry = &mut self.entries[slot];
        entry.joined_at = earliest(entry.joined_at, joined_at);
        entry.left_at = earliest(entry.left_at, left_at);
    }

    /// Writes what is pending if `room_name` has entries: a room event of that room comes next.
    async fn flush_before(
        &mut self,
        client: &impl GenericClient,
        room_name: &str,
    ) -> Result<(), Error> {
        match self.rooms.contains(room_name) {
            true => self.flush(client).await,
            false => Ok(()),
        }
    }

    async fn flush(&mut self, client: &impl GenericClient) -> Result<(), Error> {
        if self.entries.is_empty() {
            return Ok(());
        }
        rooms::presence(client, &self.entries).await?;
        self.entries.clear();
        self.index.clear();
        self.rooms.clear();
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
        run.add("class", "RM_1", &alice, false, later);
        run.add("class", "RM_1", &alice, true, None);
        run.add("class", "RM_1", &alice, false, from_secs(5));
        run.add("class", "RM_1", &alice, true, None);
        run.add("class", "RM_2", &alice, true, None);
        assert_eq!(run.entries.len(), 2, "one per session");
        let entry = &run.entries[0];
        assert_eq!(entry.joined_at, DateTime::from_timestamp_millis(2_000));
        assert_eq!(entry.left_at, from_secs(5));
    }
}
