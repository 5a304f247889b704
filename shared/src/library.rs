//! The recording library: what operators and the HTTP API do to recordings. List them, show
//! one with its files and the events applied to it, make a download link, delete one (objects
//! first, then rows, so no row ever points at nothing it claims), sweep old ones. The
//! `roomtape recordings` commands and `roomtape-api` both use this.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use url::Url;

use crate::config::StorageProfile;
use crate::db::assets::{self, Asset};
use crate::db::recordings::{self, AppliedEvent, Filter, Recording};
use crate::storage::{ObjectStore, StorageError};

/// `storage_provider` of a file LiveKit wrote to its own backup bucket.
const BACKUP_PROVIDER: &str = "livekit-backup";

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("no recording has egress id {0}")]
    NotFound(String),
    #[error("recording {egress_id} is {status}, not finished: stop it first")]
    NotFinal { egress_id: String, status: String },
    #[error("recording {0} has no file")]
    NoFile(String),
    #[error(
        "the file of {0} is in LiveKit's backup storage, which roomtape cannot reach: remove it there"
    )]
    InBackupStorage(String),
    #[error(
        "the file of {egress_id} is in bucket {bucket:?}, which no storage profile names: configure one (STORAGE_<NAME>_*) and try again"
    )]
    UnknownBucket { egress_id: String, bucket: String },
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
    store: ObjectStore,
}

impl Library {
    pub fn new(pool: Pool, store: ObjectStore) -> Self {
        Self { pool, store }
    }

    pub async fn list(&self, filter: &Filter) -> Result<Vec<Recording>, LibraryError> {
        let client = self.pool.get().await?;
        Ok(recordings::list(&client, filter).await?)
    }

    pub async fn details(&self, egress_id: &str) -> Result<Details, LibraryError> {
        let client = self.pool.get().await?;
        let recording = recordings::find(&client, egress_id)
            .await?
            .ok_or_else(|| LibraryError::NotFound(egress_id.to_owned()))?;
        Ok(Details {
            assets: assets::of_recording(&client, egress_id).await?,
            events: recordings::events(&client, egress_id).await?,
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
        Ok(self.store.presigned_get(profile, key, expires).await?)
    }

    /// Deletes the recording's objects, then its rows. A recording that is not final is refused
    /// unless `force`; so is one whose file roomtape cannot reach.
    pub async fn delete(&self, egress_id: &str, force: bool) -> Result<Deleted, LibraryError> {
        let recording = self.find(egress_id).await?;
        if !recording.is_final() && !force {
            return Err(LibraryError::NotFinal {
                egress_id: recording.egress_id,
                status: recording.status,
            });
        }
        let mut deleted = Deleted::default();
        if let Some((profile, key)) = self.file_of(&recording)? {
            let client = self.pool.get().await?;
            let mut keys: Vec<String> = assets::of_recording(&client, egress_id)
                .await?
                .into_iter()
                .map(|asset| asset.storage_key)
                .collect();
            drop(client);
            if !keys.iter().any(|k| k == key) {
                keys.push(key.to_owned());
            }
            for key in &keys {
                self.store.delete(profile, key).await?;
                deleted.objects += 1;
            }
            deleted.bytes = recording.file_size_bytes.unwrap_or_default();
        }
        let client = self.pool.get().await?;
        recordings::delete(&client, egress_id).await?;
        Ok(deleted)
    }

    /// Final recordings that ended before `cutoff`, oldest first: what a sweep deletes.
    pub async fn finished_before(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<Vec<Recording>, LibraryError> {
        let client = self.pool.get().await?;
        Ok(recordings::final_before(&client, cutoff).await?)
    }

    async fn find(&self, egress_id: &str) -> Result<Recording, LibraryError> {
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
        if recording.storage_provider.as_deref() == Some(BACKUP_PROVIDER) {
            return Err(LibraryError::InBackupStorage(recording.egress_id.clone()));
        }
        let bucket = recording.storage_bucket.clone().unwrap_or_default();
        let profile = self
            .store
            .profile_for(Some(&bucket), None)
            .filter(|_| !bucket.is_empty())
            .ok_or_else(|| LibraryError::UnknownBucket {
                egress_id: recording.egress_id.clone(),
                bucket,
            })?;
        Ok(Some((profile, key)))
    }
}
