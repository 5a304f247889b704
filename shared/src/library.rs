//! The recording library: what operators and the HTTP API do to recordings. List them, show
//! one with its files and the events applied to it, make a download link or a signed HLS
//! playlist, link a private bucket's thumbnails, delete one (objects first, then rows, so no row
//! ever points at nothing it claims), sweep old ones. The
//! `roomtape recordings` commands and `roomtape-api` both use this.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use url::Url;

use crate::config::{RetentionRules, StorageProfile};
use crate::db::assets::{self, Asset};
use crate::db::notifications::{self, DeletedBy};
use crate::db::recordings::{self, AppliedEvent, Filter, Recording, RecordingDetails, Status};
use crate::db::usage::{self, UsageRecord};
use crate::hls;
use crate::storage::{ObjectStore, StorageError};
use crate::Chain;

/// `storage_provider` of a file LiveKit wrote to its own backup bucket.
const BACKUP_PROVIDER: &str = "livekit-backup";
/// Thumbnail links of private buckets are signed as of the start of a window this long and work
/// for two: the same link all through the window (a list refreshed every few seconds keeps its
/// cached images), and at least one window long.
const THUMBNAIL_LINK_WINDOW: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("no recording has egress id {0}")]
    NotFound(String),
    #[error("recording {egress_id} is {status}, not finished: stop it first")]
    NotFinal { egress_id: String, status: Status },
    #[error("recording {0} has no file")]
    NoFile(String),
    #[error("recording {egress_id} is not HLS: its file is {key}; download it instead")]
    NotPlaylist { egress_id: String, key: String },
    #[error("the HLS playlist of {egress_id} cannot be served: {reason}")]
    InvalidPlaylist { egress_id: String, reason: String },
    #[error(
        "the file of {0} is in LiveKit's backup storage, which roomtape cannot reach: remove it there"
    )]
    InBackupStorage(String),
    #[error(
        "the file of {egress_id} is in bucket {bucket:?}, which no storage profile names: configure one (STORAGE_<NAME>_*) and try again"
    )]
    UnknownBucket { egress_id: String, bucket: String },
    #[error(
        "the file of {egress_id} is in bucket {bucket:?}, which storage profiles {profiles:?} all name, and the recording does not say which: remove it by hand"
    )]
    AmbiguousBucket {
        egress_id: String,
        bucket: String,
        profiles: Vec<String>,
    },
    #[error("database error")]
    Database(#[from] tokio_postgres::Error),
    #[error("no database connection")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A recording with its files and the events applied to it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Details {
    #[serde(flatten)]
    pub recording: Recording,
    pub assets: Vec<Asset>,
    pub events: Vec<AppliedEvent>,
    /// When events of this recording were pruned (`WEBHOOK_EVENTS_RETENTION`): `events` lists
    /// only those applied after.
    pub events_pruned_at: Option<String>,
}

/// What a sweep deleted, and what it could not.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Swept {
    /// Egress ids deleted.
    pub deleted: Vec<String>,
    pub objects: usize,
    /// Bytes freed: the deleted recordings' files.
    pub bytes: i64,
    /// Egress id and why, for each that could not be deleted.
    pub failed: Vec<(String, String)>,
}

/// What a delete removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Deleted {
    pub objects: usize,
    pub bytes: i64,
}

#[derive(Debug, Clone)]
pub struct Library {
    pool: Pool,
    objects: ObjectStore,
}

impl Library {
    pub fn new(pool: Pool, objects: ObjectStore) -> Self {
        Self { pool, objects }
    }

    /// One page of recordings, as readers see them ([`Self::shown`]).
    pub async fn list(&self, filter: &Filter) -> Result<Vec<Recording>, LibraryError> {
        let client = self.pool.get().await?;
        let found = recordings::list(&client, filter).await?;
        let mut shown = Vec::with_capacity(found.len());
        for recording in found {
            shown.push(self.shown(recording).await);
        }
        Ok(shown)
    }

    /// The recording as readers see it: `thumbnail_url` a presigned link where its bucket has
    /// no public base URL (the stored public URL would not open), else the public URL.
    pub async fn shown(&self, mut recording: Recording) -> Recording {
        if let Some(link) = self.thumbnail_link(&recording).await {
            recording.thumbnail_url = Some(link);
        }
        recording
    }

    /// A presigned link to the thumbnail of a recording in a private bucket; `None` where the
    /// public URL serves (or no link can be made: the stored URL is shown then).
    async fn thumbnail_link(&self, recording: &Recording) -> Option<String> {
        let key = recording.thumbnail_key.as_deref()?;
        let profile = self.profile_of(recording).ok()?;
        if profile.public_base_url.is_some() {
            return None;
        }
        let window = THUMBNAIL_LINK_WINDOW.as_secs();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()?
            .as_secs();
        let signed_at = SystemTime::UNIX_EPOCH + Duration::from_secs(now - now % window);
        let expires = THUMBNAIL_LINK_WINDOW * 2;
        match self
            .objects
            .presigned_get_from(profile, key, signed_at, expires)
            .await
        {
            Ok(url) => Some(url.into()),
            Err(error) => {
                tracing::warn!(egress_id = %recording.egress_id, error = %crate::Chain(&error), "cannot sign the thumbnail's link");
                None
            }
        }
    }

    pub async fn details(&self, egress_id: &str) -> Result<Details, LibraryError> {
        let client = self.pool.get().await?;
        let RecordingDetails { recording, assets } = recordings::details(&client, egress_id)
            .await?
            .ok_or_else(|| LibraryError::NotFound(egress_id.to_owned()))?;
        let recording = self.shown(recording).await;
        let events_pruned_at = recording
            .metadata
            .get(recordings::EVENTS_PRUNED_AT)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        Ok(Details {
            assets,
            events: recordings::events(&client, egress_id).await?,
            events_pruned_at,
            recording,
        })
    }

    /// A GET URL of the recording's file that works without credentials for `expires`.
    pub async fn download_url(
        &self,
        egress_id: &str,
        expires: Duration,
    ) -> Result<Url, LibraryError> {
        let recording = self.find(egress_id).await?;
        let (profile, key) = self
            .file_of(&recording)?
            .ok_or_else(|| LibraryError::NoFile(egress_id.to_owned()))?;
        Ok(self.objects.presigned_get(profile, key, expires).await?)
    }

    /// A URL of the recording's file to hand to people: its public URL when the storage
    /// profile has a public base (`S3_PUBLIC_BASE_URL`, R2's custom domain), which does not
    /// expire and a CDN can cache; else a presigned GET that works for `expires`.
    pub async fn shared_url(
        &self,
        recording: &Recording,
        expires: Duration,
    ) -> Result<Url, LibraryError> {
        let (profile, key) = self
            .file_of(recording)?
            .ok_or_else(|| LibraryError::NoFile(recording.egress_id.clone()))?;
        let public = profile
            .public_base_url
            .is_some()
            .then(|| crate::storage::public_url(profile, key))
            .flatten();
        match public {
            Some(url) => Ok(url),
            None => Ok(self.objects.presigned_get(profile, key, expires).await?),
        }
    }

    /// The recording's HLS playlist with every segment (and `#EXT-X-MAP`) it names replaced by
    /// a GET link presigned for `expires`, so that it plays from a private bucket.
    pub async fn signed_playlist(
        &self,
        egress_id: &str,
        expires: Duration,
    ) -> Result<String, LibraryError> {
        let recording = self.find(egress_id).await?;
        let (profile, key) = self
            .file_of(&recording)?
            .ok_or_else(|| LibraryError::NoFile(egress_id.to_owned()))?;
        if !key.to_ascii_lowercase().ends_with(".m3u8") {
            return Err(LibraryError::NotPlaylist {
                egress_id: egress_id.to_owned(),
                key: key.to_owned(),
            });
        }
        let invalid = |reason: String| LibraryError::InvalidPlaylist {
            egress_id: egress_id.to_owned(),
            reason,
        };
        let text = match hls::read(&self.objects, profile, key).await {
            Ok(text) => text,
            Err(hls::ReadError::Storage(error)) => return Err(error.into()),
            Err(hls::ReadError::Invalid(reason)) => return Err(invalid(reason)),
        };
        // Every key first (the rewrite cannot wait), then each signed once.
        let mut keys = Vec::new();
        hls::rewrite(key, &text, |segment| {
            keys.push(segment.to_owned());
            String::new()
        })
        .map_err(|error| invalid(error.to_string()))?;
        let mut links = HashMap::with_capacity(keys.len());
        for segment in keys {
            let url = self
                .objects
                .presigned_get(profile, &segment, expires)
                .await?;
            links.insert(segment, String::from(url));
        }
        hls::rewrite(key, &text, |segment| {
            links.get(segment).cloned().unwrap_or_default()
        })
        .map_err(|error| invalid(error.to_string()))
    }

    /// Deletes the recording's objects, then its rows. A recording that is not final is refused
    /// unless `force`; so is one whose files roomtape cannot reach. The objects are every file
    /// and asset, the thumbnail, everything the egress reported writing, and what lies under a
    /// prefix it owns (an HLS playlist's segments and manifest, an image sequence). The rows go in one
    /// transaction with the `recording.deleted` notification, which says `by` whom.
    pub async fn delete(
        &self,
        egress_id: &str,
        force: bool,
        by: DeletedBy,
    ) -> Result<Deleted, LibraryError> {
        let recording = self.find(egress_id).await?;
        if !recording.is_final() && !force {
            return Err(LibraryError::NotFinal {
                egress_id: recording.egress_id,
                status: recording.status,
            });
        }
        let assets = {
            let client = self.pool.get().await?;
            assets::of_recording(&client, egress_id).await?
        };
        let stored = StoredObjects::of(&recording, &assets);
        let mut deleted = Deleted::default();
        if !stored.is_empty() {
            let profile = self.profile_of(&recording)?;
            let mut keys = stored.keys;
            for prefix in &stored.prefixes {
                let under = self.objects.keys_under(profile, prefix).await?;
                keys.extend(under.into_iter().filter(|key| owned_by(prefix, key)));
            }
            keys.sort();
            keys.dedup();
            for key in &keys {
                self.objects.delete(profile, key).await?;
                deleted.objects += 1;
            }
            deleted.bytes = recording.file_size_bytes.unwrap_or_default();
        }
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        // Deleted meanwhile (another sweep, another delete): not this call's deletion.
        let Some(room_name) = recordings::delete(&transaction, egress_id).await? else {
            return Err(LibraryError::NotFound(egress_id.to_owned()));
        };
        notifications::recording_deleted(&transaction, egress_id, &room_name, by).await?;
        transaction.commit().await?;
        Ok(deleted)
    }

    /// Final recordings past their age under `rules` at `now`, oldest first: what a sweep
    /// deletes, and what its dry run lists. A recording's age counts from its end (else its
    /// creation); recordings that are not final are never due.
    pub async fn due(
        &self,
        rules: &RetentionRules,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recording>, LibraryError> {
        // `None`: an age longer than time goes back, which nothing has reached.
        let before = |age: Duration| {
            chrono::Duration::from_std(age)
                .ok()
                .and_then(|age| now.checked_sub_signed(age))
        };
        let Some(cutoff) = rules.shortest().and_then(before) else {
            return Ok(Vec::new());
        };
        let client = self.pool.get().await?;
        let candidates = recordings::final_before(&client, cutoff).await?;
        Ok(candidates
            .into_iter()
            .filter(|r| {
                let ended = r.ended_at.unwrap_or(r.created_at);
                let cutoff = rules.age_for(&r.room_name).and_then(before);
                cutoff.is_some_and(|cutoff| ended < cutoff)
            })
            .collect())
    }

    /// The usage ledger's records that count in `[from, to)` (`db::usage::records`).
    pub async fn usage(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        room: Option<&str>,
    ) -> Result<Vec<UsageRecord>, LibraryError> {
        let client = self.pool.get().await?;
        Ok(usage::records(&client, from, to, room).await?)
    }

    /// Deletes each of `due` ([`Self::delete`]), calling `done` after each; one that cannot be
    /// deleted does not stop the others.
    pub async fn sweep(&self, due: &[Recording], by: DeletedBy, mut done: impl FnMut()) -> Swept {
        let mut swept = Swept::default();
        for recording in due {
            match self.delete(&recording.egress_id, false, by).await {
                Ok(gone) => {
                    swept.bytes += gone.bytes;
                    swept.objects += gone.objects;
                    swept.deleted.push(recording.egress_id.clone());
                }
                Err(LibraryError::NotFound(_)) => {} // deleted meanwhile
                Err(error) => swept
                    .failed
                    .push((recording.egress_id.clone(), Chain(&error).to_string())),
            }
            done();
        }
        swept
    }

    /// The recording of `egress_id`, without its files and events.
    pub async fn find(&self, egress_id: &str) -> Result<Recording, LibraryError> {
        let client = self.pool.get().await?;
        recordings::find(&client, egress_id)
            .await?
            .ok_or_else(|| LibraryError::NotFound(egress_id.to_owned()))
    }

    /// The profile and key of the recording's file; `None` when it has no file.
    fn file_of<'r>(
        &self,
        recording: &'r Recording,
    ) -> Result<Option<(&StorageProfile, &'r str)>, LibraryError> {
        let Some(key) = recording.storage_key.as_deref() else {
            return Ok(None);
        };
        Ok(Some((self.profile_of(recording)?, key)))
    }

    /// The storage profile the recording's files are in: the one it was verified in; for
    /// recordings from before that was noted, the one profile with its bucket's name.
    fn profile_of(&self, recording: &Recording) -> Result<&StorageProfile, LibraryError> {
        if recording.storage_provider.as_deref() == Some(BACKUP_PROVIDER) {
            return Err(LibraryError::InBackupStorage(recording.egress_id.clone()));
        }
        let bucket = recording.storage_bucket.clone().unwrap_or_default();
        let unknown = || LibraryError::UnknownBucket {
            egress_id: recording.egress_id.clone(),
            bucket: bucket.clone(),
        };
        let named = recording.metadata.get(recordings::STORAGE_PROFILE);
        if let Some(name) = named.and_then(serde_json::Value::as_str) {
            return self.objects.profile(name).ok_or_else(unknown);
        }
        let same_bucket: Vec<&StorageProfile> = self
            .objects
            .profiles()
            .filter(|p| !bucket.is_empty() && p.bucket == bucket)
            .collect();
        match same_bucket[..] {
            [] => Err(unknown()),
            [profile] => Ok(profile),
            _ => Err(LibraryError::AmbiguousBucket {
                egress_id: recording.egress_id.clone(),
                profiles: same_bucket.iter().map(|p| p.name.clone()).collect(),
                bucket,
            }),
        }
    }
}

/// What a recording has in its bucket, as far as its row, its assets and its egress's report
/// say.
#[derive(Debug, Default)]
struct StoredObjects {
    keys: Vec<String>,
    /// Prefixes the egress owns ([`owned_by`]).
    prefixes: Vec<String>,
}

impl StoredObjects {
    fn of(recording: &Recording, assets: &[Asset]) -> Self {
        let reported = recording.metadata.get(recordings::OBJECTS);
        let strings = |field: &str| -> Vec<String> {
            reported
                .and_then(|objects| objects.get(field))
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_str)
                .filter(|text| !text.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let mut keys = strings("keys");
        keys.extend(recording.storage_key.clone());
        keys.extend(recording.thumbnail_key.clone());
        keys.extend(assets.iter().map(|asset| asset.storage_key.clone()));
        Self {
            keys,
            prefixes: strings("prefixes"),
        }
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.prefixes.is_empty()
    }
}

/// Whether `key` belongs to what the egress wrote under `prefix`: the prefix followed by `_`
/// (`stem_00001.ts`, `img_00001.jpeg`), `.` (`stem.json`, `stem.m3u8`) or `/`, so a prefix
/// `rec/a` never takes another recording's `rec/ab.mp4`.
fn owned_by(prefix: &str, key: &str) -> bool {
    key.strip_prefix(prefix)
        .and_then(|rest| rest.chars().next())
        .is_some_and(|next| matches!(next, '_' | '.' | '/'))
}

#[cfg(test)]
mod tests {
    use super::owned_by;

    #[test]
    fn a_prefix_owns_its_segments_and_manifest_not_its_neighbours() {
        for key in ["r/a_00001.ts", "r/a.json", "r/a.m3u8", "r/a/x.jpeg"] {
            assert!(owned_by("r/a", key), "{key}");
        }
        for key in ["r/ab.mp4", "r/a", "r/b_00001.ts", "r/a-live.m3u8"] {
            assert!(!owned_by("r/a", key), "{key}");
        }
    }
}
