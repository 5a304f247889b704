//! What a recording records (CONTRACTS §4 "Kinds of recording"): the kind of egress and the
//! participant or tracks it names. Always there: the command messages (`commands`) validate
//! kinds in every binary; `db::recordings` stores and reads them.

use std::fmt;

/// The kind of egress a recording is (CONTRACTS §4 "Kinds of recording"): LiveKit's request
/// it came from. `web` only for web egresses started elsewhere: roomtape starts the other four.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    #[default]
    RoomComposite,
    Participant,
    TrackComposite,
    Track,
    Web,
}

impl Kind {
    pub const ALL: [Self; 5] = [
        Self::RoomComposite,
        Self::Participant,
        Self::TrackComposite,
        Self::Track,
        Self::Web,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoomComposite => "room_composite",
            Self::Participant => "participant",
            Self::TrackComposite => "track_composite",
            Self::Track => "track",
            Self::Web => "web",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind filter (API query, CLI flag) that names none of the five.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{given:?} is not one of {}", Kind::ALL.map(Kind::as_str).join(", "))]
pub struct UnknownKind {
    given: String,
}

impl std::str::FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(text: &str) -> Result<Self, UnknownKind> {
        Self::parse(text).ok_or_else(|| UnknownKind {
            given: text.to_owned(),
        })
    }
}

/// Read from the `kind` column, whose CHECK constraint admits only these names.
#[cfg(feature = "db")]
impl<'a> tokio_postgres::types::FromSql<'a> for Kind {
    fn from_sql(
        ty: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let text = <&str as tokio_postgres::types::FromSql>::from_sql(ty, raw)?;
        Self::parse(text).ok_or_else(|| format!("{text:?} is not a recording kind").into())
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        <&str as tokio_postgres::types::FromSql>::accepts(ty)
    }
}

/// What a recording records: its kind, and the participant or the tracks for the kinds that
/// record one (`None` where the kind has no such field).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub kind: Kind,
    /// The participant a `participant` recording records.
    pub identity: Option<String>,
    /// The audio track of a `track_composite`.
    pub audio_track_id: Option<String>,
    /// The video track of a `track_composite`.
    pub video_track_id: Option<String>,
    /// The track a `track` recording writes as it is.
    pub track_id: Option<String>,
}

impl Subject {
    /// The track ids it records, for `already_recording`'s "one track".
    pub fn track_ids(&self) -> Vec<String> {
        [&self.track_id, &self.audio_track_id, &self.video_track_id]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}
