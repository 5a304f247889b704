//! The processor benchmark's events: whole room sessions with a recording, in Go-protojson
//! bodies shaped like LiveKit's (as `tests/src/fixtures.rs` has them).
//!
//! Each session is nine events: `room_started`, two `participant_joined`, `egress_started`,
//! `egress_updated` (ACTIVE), a `participant_left`, `egress_ended` (COMPLETE, with the file the
//! processor HEADs and probes), the other `participant_left` and `room_finished`. Sessions run
//! [`ROOMS_AT_ONCE`] at a time, their events interleaved, so consecutive messages belong to
//! different rooms (as when many rooms are live) while each room's events keep their order.

use std::ops::Range;

use roomtape_shared::config::StorageProfile;
use serde_json::{json, Value};

use crate::event::{now_unix, Message, Source};

/// Events per room session.
pub const EVENTS_PER_ROOM: u64 = 9;
/// Sessions whose events are interleaved.
pub const ROOMS_AT_ONCE: u64 = 50;
/// The slot of `egress_ended`, whose file must be in the bucket first.
const ENDED_SLOT: u64 = 6;
/// Each recording file put in the bucket: the video `roomtape simulate` uploads (a faststart
/// MP4 of 4 s, 90 KB), so that a probing processor finds it playable.
pub const RECORDING: &[u8] = include_bytes!("../../cli/assets/test-video.mp4");
/// Its length, as its `fileResults` entry reports it.
const RECORDING_NS: i64 = 4_000_000_000;

const STARTED_NS: i64 = 1_700_000_001_000_000_000;
const ENDED_NS: i64 = 1_700_001_801_000_000_000;

/// Builds message `n` of a run; ids are `EV_<run>_<n>`, rooms `bench-<run>-<room>`.
#[derive(Debug, Clone)]
pub struct Mix {
    run: String,
    bucket: String,
    endpoint: String,
}

/// Which room session message `n` belongs to, and which of its events it is.
fn place(n: u64) -> (u64, u64) {
    let wave_len = EVENTS_PER_ROOM * ROOMS_AT_ONCE;
    let (wave, within) = (n / wave_len, n % wave_len);
    (
        wave * ROOMS_AT_ONCE + within % ROOMS_AT_ONCE,
        within / ROOMS_AT_ONCE,
    )
}

impl Mix {
    /// Sessions whose recordings are written to `profile`'s bucket.
    pub fn new(run: impl Into<String>, profile: &StorageProfile) -> Self {
        Self {
            run: run.into(),
            bucket: profile.bucket.clone(),
            endpoint: profile.endpoint.as_str().trim_end_matches('/').to_owned(),
        }
    }

    /// The object key room `room`'s recording is written to.
    pub fn key(&self, room: u64) -> String {
        format!("bench/{}/{room}.mp4", self.run)
    }

    /// The rooms whose `egress_ended` is among `messages`: their files must exist before.
    pub fn ended_rooms(&self, messages: Range<u64>) -> Vec<u64> {
        messages
            .map(place)
            .filter(|(_, slot)| *slot == ENDED_SLOT)
            .map(|(room, _)| room)
            .collect()
    }

    /// How many of `messages` are `egress_ended` (one HEAD each).
    pub fn ended_count(&self, messages: Range<u64>) -> usize {
        self.ended_rooms(messages).len()
    }

    /// The event name of message `n`.
    pub fn event_name(&self, n: u64) -> &'static str {
        match place(n).1 {
            0 => "room_started",
            1 | 2 => "participant_joined",
            3 => "egress_started",
            4 => "egress_updated",
            5 | 7 => "participant_left",
            ENDED_SLOT => "egress_ended",
            _ => "room_finished",
        }
    }

    fn egress_info(&self, room: u64, status: Option<&str>, updated_ns: i64) -> Value {
        let name = self.room_name(room);
        let mut info = json!({
            "egressId": format!("EG_{}_{room}", self.run),
            "roomId": self.room_sid(room),
            "roomName": name,
            "updatedAt": updated_ns.to_string(),
            "roomComposite": {"roomName": name, "layout": "speaker", "fileOutputs": [{
                "fileType": "MP4", "filepath": "bench/{room_name}/{time}",
                "s3": {"accessKey": "{access_key}", "secret": "{secret}", "region": "us-east-1",
                       "endpoint": self.endpoint, "bucket": self.bucket, "forcePathStyle": true}}]},
            "fileResults": [{"filename": self.key(room)}],
        });
        if let Some(status) = status {
            info["status"] = json!(status);
            info["startedAt"] = json!(STARTED_NS.to_string());
        }
        info
    }

    fn room_name(&self, room: u64) -> String {
        format!("bench-{}-{room}", self.run)
    }

    fn room_sid(&self, room: u64) -> String {
        format!("RM_{}_{room}", self.run)
    }

    fn room(&self, room: u64, now: u64) -> Value {
        json!({"sid": self.room_sid(room), "name": self.room_name(room), "emptyTimeout": 300,
               "creationTime": now.to_string()})
    }

    fn participant(&self, room: u64, who: &str, now: u64) -> Value {
        json!({"sid": format!("PA_{}_{room}_{who}", self.run), "identity": format!("user-{who}"),
               "state": "ACTIVE", "joinedAt": now.to_string(), "name": format!("User {who}")})
    }

    fn egress_ended(&self, room: u64) -> Value {
        let mut info = self.egress_info(room, Some("EGRESS_COMPLETE"), ENDED_NS + 2_000_000_000);
        info["endedAt"] = json!(ENDED_NS.to_string());
        info["fileResults"] = json!([{
            "filename": self.key(room), "startedAt": STARTED_NS.to_string(),
            "endedAt": ENDED_NS.to_string(), "duration": RECORDING_NS.to_string(),
            "size": RECORDING.len().to_string(),
            "location": format!("{}/{}/{}", self.endpoint, self.bucket, self.key(room))}]);
        info
    }
}

impl Source for Mix {
    fn id(&self, n: u64) -> String {
        format!("EV_{}_{n}", self.run)
    }

    fn message(&self, n: u64) -> Message {
        let (room, slot) = place(n);
        let now = now_unix();
        let (event, extra) = match slot {
            0 => ("room_started", None),
            1 => (
                "participant_joined",
                Some(("participant", self.participant(room, "a", now))),
            ),
            2 => (
                "participant_joined",
                Some(("participant", self.participant(room, "b", now))),
            ),
            3 => (
                "egress_started",
                Some(("egressInfo", self.egress_info(room, None, STARTED_NS))),
            ),
            4 => (
                "egress_updated",
                Some((
                    "egressInfo",
                    self.egress_info(room, Some("EGRESS_ACTIVE"), STARTED_NS + 1_000_000_000),
                )),
            ),
            5 => (
                "participant_left",
                Some(("participant", self.participant(room, "a", now))),
            ),
            ENDED_SLOT => (
                "egress_ended",
                Some(("egressInfo", self.egress_ended(room))),
            ),
            7 => (
                "participant_left",
                Some(("participant", self.participant(room, "b", now))),
            ),
            _ => ("room_finished", None),
        };
        let mut body = json!({"event": event, "room": self.room(room, now), "id": self.id(n),
                              "createdAt": now.to_string()});
        if let Some((field, value)) = extra {
            body[field] = value;
        }
        Message {
            id: self.id(n),
            event,
            body: body.to_string().into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomtape_shared::config::{Env, StorageProfiles};

    fn mix() -> Mix {
        let env = Env::from_pairs([
            ("S3_ENDPOINT", "http://127.0.0.1:8014"),
            ("S3_BUCKET", "bench"),
            ("S3_ACCESS_KEY_ID", "k"),
            ("S3_SECRET_ACCESS_KEY", "s"),
        ]);
        let profiles = StorageProfiles::from_env(&env).expect("profile");
        Mix::new("r1", profiles.default_profile())
    }

    #[test]
    fn every_room_gets_its_nine_events_in_order() {
        let total = EVENTS_PER_ROOM * ROOMS_AT_ONCE * 2;
        let mut slots = vec![Vec::new(); usize::try_from(ROOMS_AT_ONCE * 2).expect("small")];
        for n in 0..total {
            let (room, slot) = place(n);
            slots[usize::try_from(room).expect("small")].push(slot);
        }
        for room in slots {
            assert_eq!(room, (0..EVENTS_PER_ROOM).collect::<Vec<_>>());
        }
        assert_eq!(
            mix().ended_count(0..total),
            usize::try_from(ROOMS_AT_ONCE * 2).expect("small")
        );
    }

    #[test]
    fn egress_ended_names_the_bucket_and_the_key() {
        let mix = mix();
        let n = ENDED_SLOT * ROOMS_AT_ONCE + 3;
        let message = mix.message(n);
        assert_eq!(message.event, "egress_ended");
        let body: Value = serde_json::from_slice(&message.body).expect("json");
        assert_eq!(body["id"], format!("EV_r1_{n}"));
        let info = &body["egressInfo"];
        assert_eq!(info["status"], "EGRESS_COMPLETE");
        assert_eq!(
            info["roomComposite"]["fileOutputs"][0]["s3"]["bucket"],
            "bench"
        );
        assert_eq!(info["fileResults"][0]["filename"], mix.key(3));
        assert_eq!(mix.ended_rooms(n..n + 1), vec![3]);
    }
}
