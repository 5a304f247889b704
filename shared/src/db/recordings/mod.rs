//! `recordings`: one row per egress, whose status only moves forward. What the processor
//! writes (and a delete) is in `write`; the recording as operators, the API and the CLI read it,
//! [`Recording`], is in `read`. Both share the statuses and the `metadata` entries named here.

mod read;
mod write;

use std::fmt;

pub use read::{
    details, events, final_before, find, list, AppliedEvent, Filter, Recording, RecordingDetails,
};
pub use write::{
    apply, delete, fail_forgotten, note_waiting, requested, take_stale, unfinished_in_room,
    unfinished_like, Applied, EgressUpdate, Requested, Standing, StoredFile, StoredThumbnail,
};

pub use crate::kind::{Kind, Subject, UnknownKind};
use crate::redact::redact_json;

/// A row's JSON as it may be shown: rows written before redaction may still hold tokens.
fn redacted_json(mut value: serde_json::Value) -> serde_json::Value {
    redact_json(&mut value);
    value
}

/// The `metadata` entry listing what a finished egress reported writing: `{"keys": [...],
/// "prefixes": [...]}` (prefixes it owns: an HLS playlist's stem, an image sequence's prefix).
/// Delete and sweep remove all of it.
pub const OBJECTS: &str = "objects";
/// The `metadata` entry naming the storage profile the files were verified in: delete uses
/// that profile, not whichever has a bucket of the same name.
pub const STORAGE_PROFILE: &str = "storage_profile";
/// The `metadata` entry saying when the recording's events were pruned
/// (`WEBHOOK_EVENTS_RETENTION`); the processor's pruner writes it.
pub const EVENTS_PRUNED_AT: &str = "events_pruned_at";

/// Recording statuses of CONTRACTS §5, in the order they move. Written, read and shown as
/// their lowercase names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Starting,
    Active,
    Stopping,
    Stopped,
    Ready,
    Failed,
    Aborted,
}

impl Status {
    /// Every status, in the order they move.
    pub const ALL: [Self; 7] = [
        Self::Starting,
        Self::Active,
        Self::Stopping,
        Self::Stopped,
        Self::Ready,
        Self::Failed,
        Self::Aborted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Active => "active",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Ready => "ready",
            Self::Failed => "failed",
            Self::Aborted => "aborted",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Ready | Self::Failed | Self::Aborted)
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status filter (API query, CLI flag) that names none of the seven.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{given:?} is not one of {}", Status::ALL.map(Status::as_str).join(", "))]
pub struct UnknownStatus {
    given: String,
}

impl std::str::FromStr for Status {
    type Err = UnknownStatus;

    fn from_str(text: &str) -> Result<Self, UnknownStatus> {
        Self::parse(text).ok_or_else(|| UnknownStatus {
            given: text.to_owned(),
        })
    }
}

/// Read from the `status` column, whose CHECK constraint admits only these names.
impl<'a> tokio_postgres::types::FromSql<'a> for Status {
    fn from_sql(
        ty: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let text = <&str as tokio_postgres::types::FromSql>::from_sql(ty, raw)?;
        Self::parse(text).ok_or_else(|| format!("{text:?} is not a recording status").into())
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        <&str as tokio_postgres::types::FromSql>::accepts(ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_reads_back_from_its_name_and_serializes_as_it() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
            assert_eq!(status.to_string(), status.as_str());
            assert_eq!(
                serde_json::to_value(status).expect("serializes"),
                serde_json::json!(status.as_str())
            );
        }
        assert_eq!(Status::parse("Ready"), None);
    }
}
