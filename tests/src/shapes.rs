//! The one JSON shape of a recording: what the API answers (lists, details, start and stop) and
//! what `roomtape recordings --json` prints are the same fields, each serialized from
//! `roomtape_shared::db::recordings::Recording`.

use serde_json::Value;

/// Every field of a recording: the API's from before it was one shape with the CLI's (`id` …
/// `updated_at`, CONTRACTS §7), where the file is (`storage_provider`, `storage_bucket`,
/// `storage_key`, `file_url`), the rest of the row command replies carried (`room_sid`,
/// `audio_only`, `is_processed`), its picture (`thumbnail_url`, CONTRACTS §5) and what it
/// records (`kind` and its participant or tracks, CONTRACTS §4).
pub const RECORDING_FIELDS: [&str; 29] = [
    "id",
    "egress_id",
    "room_name",
    "status",
    "layout",
    "file_format",
    "started_at",
    "ended_at",
    "duration_seconds",
    "file_size_bytes",
    "error",
    "stream_id",
    "user_id",
    "metadata",
    "created_at",
    "updated_at",
    "storage_provider",
    "storage_bucket",
    "storage_key",
    "file_url",
    "room_sid",
    "audio_only",
    "is_processed",
    "thumbnail_url",
    "kind",
    "identity",
    "audio_track_id",
    "video_track_id",
    "track_id",
];

/// Asserts that `recording` is a recording: every field of [`RECORDING_FIELDS`] and no other.
pub fn assert_recording(recording: &Value) {
    let fields = assert_has_recording_fields(recording);
    assert_eq!(
        fields,
        RECORDING_FIELDS.len(),
        "a recording has exactly {RECORDING_FIELDS:?}: {recording}"
    );
}

/// Asserts that `value` holds every field of a recording (a recording's details add its files,
/// and in the CLI its events); returns how many fields it has.
pub fn assert_has_recording_fields(value: &Value) -> usize {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("a recording is an object: {value}"));
    for field in RECORDING_FIELDS {
        assert!(object.contains_key(field), "{field} in {value}");
    }
    object.len()
}
