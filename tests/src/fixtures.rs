//! LiveKit event bodies in Go protojson style (camelCase, int64 as strings, `status` omitted
//! when it is EGRESS_STARTING), shaped like the ones LiveKit sends for a room composite egress.

use roomtape_shared::config::StorageProfile;
use serde_json::{json, Value};

/// The recording one egress writes, and the events that tell its story.
#[derive(Debug, Clone)]
pub struct Egress {
    pub egress_id: String,
    pub room: String,
    pub bucket: String,
    pub endpoint: String,
    pub key: String,
}

pub const STARTED_NS: i64 = 1_700_000_001_000_000_000;
pub const ENDED_NS: i64 = 1_700_001_801_000_000_000;

impl Egress {
    /// An egress of `room` writing to `profile`'s bucket.
    pub fn new(egress_id: &str, room: &str, profile: &StorageProfile) -> Self {
        Self {
            egress_id: egress_id.to_owned(),
            room: room.to_owned(),
            bucket: profile.bucket.clone(),
            endpoint: profile.endpoint.as_str().trim_end_matches('/').to_owned(),
            key: format!("recordings/{room}/{egress_id}.mp4"),
        }
    }

    fn info(&self, status: Option<&str>, updated_ns: i64) -> Value {
        let mut info = json!({
            "egressId": self.egress_id,
            "roomId": "RM_test",
            "roomName": self.room,
            "updatedAt": updated_ns.to_string(),
            "roomComposite": {"roomName": self.room, "layout": "speaker", "fileOutputs": [{
                "fileType": "MP4", "filepath": "recordings/{room_name}/{time}",
                "s3": {"accessKey": "{access_key}", "secret": "{secret}", "region": "us-east-1",
                       "endpoint": self.endpoint, "bucket": self.bucket, "forcePathStyle": true}}]},
            "fileResults": [{"filename": self.key}],
        });
        if let Some(status) = status {
            info["status"] = json!(status);
        }
        info
    }

    fn event(&self, name: &str, id: &str, info: Value) -> String {
        json!({"event": name, "room": {"sid": "RM_test", "name": self.room}, "egressInfo": info,
               "id": id, "createdAt": "1700000000"})
        .to_string()
    }

    pub fn started(&self, id: &str) -> String {
        self.event("egress_started", id, self.info(None, STARTED_NS))
    }

    pub fn updated(&self, id: &str, status: &str, updated_ns: i64) -> String {
        let mut info = self.info(Some(status), updated_ns);
        info["startedAt"] = json!(STARTED_NS.to_string());
        self.event("egress_updated", id, info)
    }

    /// `egress_ended` with EGRESS_COMPLETE and the file result LiveKit reports.
    pub fn ended(&self, id: &str) -> String {
        let mut info = self.info(Some("EGRESS_COMPLETE"), ENDED_NS + 2_000_000_000);
        info["startedAt"] = json!(STARTED_NS.to_string());
        info["endedAt"] = json!(ENDED_NS.to_string());
        info["fileResults"] = json!([{
            "filename": self.key, "startedAt": STARTED_NS.to_string(), "endedAt": ENDED_NS.to_string(),
            "duration": (ENDED_NS - STARTED_NS).to_string(), "size": "999999",
            "location": format!("{}/{}/{}", self.endpoint, self.bucket, self.key)}]);
        self.event("egress_ended", id, info)
    }

    /// `egress_ended` (EGRESS_COMPLETE) whose results are `results` (`segmentResults`,
    /// `streamResults`, `imageResults`, or none) instead of the file result.
    pub fn ended_with(&self, id: &str, results: Value) -> String {
        let mut body: Value = serde_json::from_str(&self.ended(id)).expect("json");
        let info = body["egressInfo"].as_object_mut().expect("egressInfo");
        info.remove("fileResults");
        info.extend(results.as_object().expect("results").clone());
        body.to_string()
    }

    pub fn failed(&self, id: &str, error: &str) -> String {
        let mut info = self.info(Some("EGRESS_FAILED"), ENDED_NS);
        info["error"] = json!(error);
        self.event("egress_ended", id, info)
    }

    pub fn ended_in_backup_storage(&self, id: &str) -> String {
        let mut body: Value = serde_json::from_str(&self.ended(id)).expect("json");
        body["egressInfo"]["backupStorageUsed"] = json!(true);
        body.to_string()
    }
}

pub fn room_event(name: &str, id: &str, room: &str, sid: &str) -> String {
    json!({"event": name, "room": {"sid": sid, "name": room, "creationTime": "1700000000"},
           "id": id, "createdAt": "1700000000"})
    .to_string()
}

/// `participant_joined` / `participant_left` for a viewer (`kind` 0) or a recorder (`EGRESS`).
pub fn participant_event(
    name: &str,
    id: &str,
    room: &str,
    participant: &str,
    kind: &str,
) -> String {
    participant_event_in(name, id, (room, "RM_test"), participant, kind)
}

/// [`participant_event`] in the room session `(name, sid)`.
pub fn participant_event_in(
    name: &str,
    id: &str,
    (room, sid): (&str, &str),
    participant: &str,
    kind: &str,
) -> String {
    json!({"event": name, "room": {"sid": sid, "name": room},
           "participant": {"sid": format!("PA_{participant}"), "identity": participant, "kind": kind,
                           "joinedAt": "1700000000"},
           "id": id, "createdAt": "1700000000"})
    .to_string()
}
