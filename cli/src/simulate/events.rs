//! The webhooks LiveKit sends for one room in which one speaker is recorded by a room composite
//! egress to an S3 bucket, in Go protojson style as LiveKit encodes them: camelCase names,
//! int64 as strings, enums by name, zero values (EGRESS_STARTING) left out.
//!
//! The story is dated so that it ends now: the room opened 6 s ago, the egress recorded the
//! 4 s of the embedded video from 5 s ago to 1 s ago, then the speaker left and the room closed.

use std::time::Duration;

use roomtape_shared::config::StorageProfile;
use serde_json::{json, Value};

/// One simulated room and its recording.
#[derive(Debug, Clone)]
pub struct Story {
    pub room: String,
    pub room_sid: String,
    pub egress_id: String,
    pub participant_sid: String,
    /// The object key the egress wrote: `recordings/{room}/{egress_id}.mp4`.
    pub key: String,
    pub bucket: String,
    /// The profile's endpoint, as an egress request names it (no trailing slash).
    pub endpoint: String,
    pub region: String,
    pub size_bytes: usize,
    pub duration: Duration,
    /// When the room opened, in Unix seconds.
    pub opened_unix: i64,
}

/// Who speaks in the simulated room.
const SPEAKER: &str = "simulate-speaker";
/// From the room opening to the egress starting, and from its end to the room closing.
const LEAD_SECS: i64 = 1;

impl Story {
    /// A new room (`room`, or `simulate-<random>`) whose recording of `duration` and
    /// `size_bytes` goes to `profile`'s bucket, ending at `now_unix`.
    pub fn new(
        room: Option<&str>,
        profile: &StorageProfile,
        size_bytes: usize,
        duration: Duration,
        now_unix: i64,
    ) -> Self {
        let room = room.map_or_else(|| format!("simulate-{}", random_id(8)), str::to_owned);
        let egress_id = format!("EG_{}", random_id(12));
        let recorded = i64::try_from(duration.as_secs()).unwrap_or(i64::MAX / 2);
        Self {
            key: format!("recordings/{room}/{egress_id}.mp4"),
            room,
            room_sid: format!("RM_{}", random_id(12)),
            egress_id,
            participant_sid: format!("PA_{}", random_id(12)),
            bucket: profile.bucket.clone(),
            endpoint: profile.endpoint.as_str().trim_end_matches('/').to_owned(),
            region: profile.region.clone(),
            size_bytes,
            duration,
            opened_unix: now_unix - recorded - 2 * LEAD_SECS,
        }
    }

    /// The webhooks in the order LiveKit sends them: (event name, body).
    pub fn webhooks(&self) -> Vec<(&'static str, String)> {
        let opened = self.opened_unix;
        let egress_start = opened + LEAD_SECS;
        let egress_end = egress_start + self.recorded_secs();
        let closed = egress_end + LEAD_SECS;
        vec![
            ("room_started", self.room_event("room_started", opened)),
            (
                "participant_joined",
                self.participant_event("participant_joined", "ACTIVE", opened),
            ),
            (
                "egress_started",
                self.egress_event("egress_started", egress_start, self.started()),
            ),
            (
                "egress_updated",
                self.egress_event("egress_updated", egress_start, self.active()),
            ),
            (
                "participant_left",
                self.participant_event("participant_left", "DISCONNECTED", egress_end),
            ),
            (
                "egress_ended",
                self.egress_event("egress_ended", closed, self.complete()),
            ),
            ("room_finished", self.room_event("room_finished", closed)),
        ]
    }

    fn recorded_secs(&self) -> i64 {
        i64::try_from(self.duration.as_secs()).unwrap_or(i64::MAX / 2)
    }

    fn room(&self) -> Value {
        json!({"sid": self.room_sid, "name": self.room, "emptyTimeout": 300,
               "departureTimeout": 20, "creationTime": self.opened_unix.to_string()})
    }

    fn envelope(&self, name: &str, at_unix: i64) -> Value {
        json!({"event": name, "room": self.room(), "id": format!("EV_{}", random_id(12)),
               "createdAt": at_unix.to_string()})
    }

    fn room_event(&self, name: &str, at_unix: i64) -> String {
        self.envelope(name, at_unix).to_string()
    }

    fn participant_event(&self, name: &str, state: &str, at_unix: i64) -> String {
        let mut event = self.envelope(name, at_unix);
        event["participant"] = json!({
            "sid": self.participant_sid, "identity": SPEAKER, "name": "Simulated speaker",
            "state": state, "joinedAt": self.opened_unix.to_string(), "isPublisher": true,
            "kind": "STANDARD"});
        event.to_string()
    }

    fn egress_event(&self, name: &str, at_unix: i64, info: Value) -> String {
        let mut event = self.envelope(name, at_unix);
        event["egressInfo"] = info;
        event.to_string()
    }

    /// EgressInfo as LiveKit reports it for the request it was given; `status` is added by
    /// each stage (left out while EGRESS_STARTING, the zero value).
    fn info(&self, updated_ns: i64) -> Value {
        json!({
            "egressId": self.egress_id,
            "roomId": self.room_sid,
            "roomName": self.room,
            "sourceType": "EGRESS_SOURCE_TYPE_WEB",
            "updatedAt": updated_ns.to_string(),
            "roomComposite": {"roomName": self.room, "layout": "speaker", "fileOutputs": [{
                "fileType": "MP4", "filepath": self.key,
                // LiveKit reports the destination without its credentials.
                "s3": {"region": self.region, "endpoint": self.endpoint, "bucket": self.bucket,
                       "forcePathStyle": true}}]},
        })
    }

    fn started(&self) -> Value {
        self.info(nanos(self.opened_unix + LEAD_SECS))
    }

    fn active(&self) -> Value {
        let started = nanos(self.opened_unix + LEAD_SECS);
        let mut info = self.info(started + 500_000_000);
        info["status"] = json!("EGRESS_ACTIVE");
        info["startedAt"] = json!(started.to_string());
        info
    }

    /// EGRESS_COMPLETE with the file the egress wrote.
    fn complete(&self) -> Value {
        let started = nanos(self.opened_unix + LEAD_SECS);
        let ended = started + nanos(self.recorded_secs());
        let mut info = self.info(ended + nanos(LEAD_SECS));
        info["status"] = json!("EGRESS_COMPLETE");
        info["startedAt"] = json!(started.to_string());
        info["endedAt"] = json!(ended.to_string());
        info["fileResults"] = json!([{
            "filename": self.key,
            "startedAt": started.to_string(),
            "endedAt": ended.to_string(),
            "duration": i64::try_from(self.duration.as_nanos()).unwrap_or(i64::MAX).to_string(),
            "size": self.size_bytes.to_string(),
            "location": format!("{}/{}/{}", self.endpoint, self.bucket, self.key),
        }]);
        info
    }
}

fn nanos(secs: i64) -> i64 {
    secs.saturating_mul(1_000_000_000)
}

/// `len` random lower-case hex digits (at most 32).
fn random_id(len: usize) -> String {
    let mut id = uuid::Uuid::new_v4().simple().to_string();
    id.truncate(len);
    id
}

#[cfg(test)]
mod tests {
    use roomtape_shared::config::{Env, StorageProfiles};

    use super::*;

    fn story() -> Story {
        let env = Env::from_pairs([
            ("S3_ENDPOINT", "http://127.0.0.1:8014/"),
            ("S3_BUCKET", "recordings"),
            ("S3_ACCESS_KEY_ID", "k"),
            ("S3_SECRET_ACCESS_KEY", "s"),
        ]);
        let profiles = StorageProfiles::from_env(&env).expect("profile");
        Story::new(
            None,
            profiles.default_profile(),
            90_495,
            Duration::from_secs(4),
            1_700_000_006,
        )
    }

    #[test]
    fn the_story_is_seven_webhooks_with_unique_ids_ending_now() {
        let story = story();
        assert!(story.room.starts_with("simulate-") && story.room.len() == 17);
        assert_eq!(
            story.key,
            format!("recordings/{}/{}.mp4", story.room, story.egress_id)
        );
        let webhooks = story.webhooks();
        let names: Vec<_> = webhooks.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            [
                "room_started",
                "participant_joined",
                "egress_started",
                "egress_updated",
                "participant_left",
                "egress_ended",
                "room_finished"
            ]
        );
        let bodies: Vec<Value> = webhooks
            .iter()
            .map(|(_, body)| serde_json::from_str(body).expect("json"))
            .collect();
        let mut ids: Vec<_> = bodies
            .iter()
            .map(|b| b["id"].as_str().expect("id"))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 7);
        for (body, (name, _)) in bodies.iter().zip(&webhooks) {
            assert_eq!(body["event"], *name);
            assert_eq!(body["room"]["name"], story.room.as_str());
        }
        assert_eq!(bodies[6]["createdAt"], "1700000006");
        assert_eq!(bodies[1]["participant"]["kind"], "STANDARD");
        assert!(bodies[2]["egressInfo"].get("status").is_none());
        assert_eq!(bodies[3]["egressInfo"]["status"], "EGRESS_ACTIVE");
    }

    #[test]
    fn the_ended_egress_names_the_file_and_the_bucket_it_was_written_to() {
        let story = story();
        let ended: Value = serde_json::from_str(&story.webhooks()[5].1).expect("json");
        let info = &ended["egressInfo"];
        assert_eq!(info["status"], "EGRESS_COMPLETE");
        let s3 = &info["roomComposite"]["fileOutputs"][0]["s3"];
        assert_eq!(s3["bucket"], "recordings");
        assert_eq!(s3["endpoint"], "http://127.0.0.1:8014");
        assert!(s3.get("secret").is_none() && s3.get("accessKey").is_none());
        let file = &info["fileResults"][0];
        assert_eq!(file["filename"], story.key.as_str());
        assert_eq!(file["size"], "90495");
        assert_eq!(file["duration"], "4000000000");
        assert_eq!(file["startedAt"], "1700000001000000000");
        assert_eq!(file["endedAt"], "1700000005000000000");
        assert_eq!(
            file["location"],
            format!("http://127.0.0.1:8014/recordings/{}", story.key)
        );
    }
}
