//! Room and participant events → `rooms` and `room_participants`.

use deadpool_postgres::GenericClient;
use roomtape_shared::events::proto::{participant_info, WebhookEvent};
use tokio_postgres::Error;

use crate::store::rooms;
use roomtape_shared::db::from_secs;

/// Applies a `room_*` or `participant_*` event. Events of other names change nothing.
pub async fn apply(client: &impl GenericClient, event: &WebhookEvent) -> Result<(), Error> {
    let Some(room) = &event.room else {
        return Ok(());
    };
    let at = from_secs(event.created_at);
    match event.event.as_str() {
        "room_started" => {
            rooms::started(
                client,
                &room.name,
                &room.sid,
                from_secs(room.creation_time).or(at),
            )
            .await
        }
        "room_finished" => rooms::finished(client, &room.name, &room.sid, at).await,
        "participant_joined" | "participant_left" | "participant_connection_aborted" => {
            let Some(participant) = event.participant.as_ref().filter(|p| counts(p.kind)) else {
                return Ok(());
            };
            let joined = event.event == "participant_joined";
            let presence = rooms::Presence {
                room_name: &room.name,
                room_sid: &room.sid,
                participant_sid: &participant.sid,
                identity: &participant.identity,
                joined_at: if joined {
                    from_secs(participant.joined_at).or(at)
                } else {
                    None
                },
                left_at: if joined {
                    None
                } else {
                    at.or_else(|| Some(chrono::Utc::now()))
                },
            };
            rooms::presence(client, &presence).await
        }
        _ => Ok(()),
    }
}

/// Recorders (egress) and ingress bots are not viewers.
fn counts(kind: i32) -> bool {
    !matches!(
        participant_info::Kind::try_from(kind),
        Ok(participant_info::Kind::Egress | participant_info::Kind::Ingress)
    )
}
