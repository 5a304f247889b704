//! The egress lifecycle, every outcome of an egress event in one place: what the event means
//! for its recording ([`plan`]), checking a finished egress's files in their bucket, and the
//! one write that applies it.
//!
//! ```text
//! egress_started/updated ──▶ plan ──────────────────────────────▶ write (status moves forward)
//! egress_ended, complete ──▶ plan ─▶ already final? ─▶ nothing
//!                                  ─▶ backup storage ─────────────▶ write ready (no asset)
//!                                  ─▶ images only ────────────────▶ write ready (no HEAD)
//!                                  ─▶ streams only ───────────────▶ write stopped, processed
//!                                  ─▶ no result ──────────────────▶ write failed
//!                                  ─▶ HEAD each file/playlist ─▶ empty ────▶ write failed
//!                                                             ─▶ all there ─▶ probe each ─▶
//!                                          unplayable (cut, no index, tracks or length wrong) ─▶
//!                                          write failed `unplayable: why`; plays ─▶ thumbnail
//!                                          (video only, never blocking) ─▶ ready + assets, the
//!                                          probe's report in `metadata.probe`
//!                                                             ─▶ missing / bucket error ─▶
//!                                       write stopped + why, retry later; after the last retry
//!                                       [`EgressLifecycle::given_up`]: missing → failed; the
//!                                       bucket not answering, not configured or not existing →
//!                                       stays stopped with why, dead-lettered for `dlq replay`
//! ```
//!
//! Only causes that stay true are final: the file absent after every retry, a zero-byte file,
//! a file that does not play ([`crate::probe`]), LiveKit's own failure. An outage of the bucket, the database, the broker or LiveKit never
//! writes `failed`.

pub mod plan;

use deadpool_postgres::{GenericClient, Pool};
use roomtape_shared::config::StorageProfile;
use roomtape_shared::db::assets::{self, NewAsset};
use roomtape_shared::db::notifications;
use roomtape_shared::db::recordings::{self, EgressUpdate, Status, StoredFile, StoredThumbnail};
use roomtape_shared::events::proto::EgressInfo;
use roomtape_shared::redact::redact;
use roomtape_shared::storage::{self, ObjectInfo, ObjectStore, StorageError};
use roomtape_shared::Chain;
use serde_json::Value;
use std::time::Instant;

use crate::db::webhook_events;
use crate::metrics::ProcessorMetrics;
use crate::probe::{self, Expected, MediaReport, ObjectSource, ProbeError};
use crate::thumbnail::{ThumbnailError, Thumbnails};
use plan::{EgressPlan, ReportedFile, Results, PLAYLIST_CONTENT_TYPE};

/// The key of the first file's [`MediaReport`] in the recording's `metadata`.
pub const PROBE: &str = "probe";
/// The key in the recording's `metadata` of why it has no thumbnail, when one was wanted.
pub const THUMBNAIL_ERROR: &str = "thumbnail_error";

/// Why a finished egress's files could not be confirmed in their bucket.
#[derive(Debug, thiserror::Error)]
pub enum FilesUnconfirmed {
    /// The egress wrote to a bucket no storage profile names: dead-lettered, to be replayed
    /// once the configuration is fixed.
    #[error("bucket {bucket:?} of egress {egress_id} is not a configured storage profile")]
    UnknownBucket { bucket: String, egress_id: String },
    /// Not there yet, the bucket could not answer (to a HEAD or to the probe's reads), or the
    /// bucket does not exist (a configuration fault, given up at once like an unknown bucket).
    #[error("recording file not confirmed")]
    Storage(#[from] StorageError),
}

/// Everything the lifecycle can fail with. The worker's error type takes it in (`From`); the
/// lifecycle knows nothing of the worker.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Files(#[from] FilesUnconfirmed),
    #[error("database error")]
    Database(#[from] tokio_postgres::Error),
    #[error("no database connection")]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// What an egress event does to its recording, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingChange {
    pub update: EgressUpdate,
    /// Created once the update applies (a recording that became ready).
    pub assets: Vec<NewAsset>,
}

impl RecordingChange {
    fn update(update: EgressUpdate) -> Self {
        Self {
            update,
            assets: Vec::new(),
        }
    }

    /// Writes the recording, and if the update moved it forward its assets and the notification
    /// of the transition it made (in the caller's transaction). Status never moves backwards,
    /// so a late or repeated event changes nothing and reports nothing.
    pub async fn write(&self, client: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
        if let Some(applied) = recordings::apply(client, &self.update).await? {
            for asset in &self.assets {
                assets::upsert(client, &applied, asset).await?;
            }
            notifications::recording_moved(client, &applied).await?;
        }
        Ok(())
    }
}

/// What an egress event comes to.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// This event id was applied before.
    Duplicate,
    /// Nothing to write (no egress id, or the recording is already final); the event is still
    /// recorded as processed.
    Unchanged,
    Change(Box<RecordingChange>),
}

/// An egress event, as the lifecycle needs it.
#[derive(Debug, Clone, Copy)]
pub struct EgressEvent<'a> {
    pub event_id: &'a str,
    pub info: &'a EgressInfo,
    /// The room's sid from the event's `room`, when the egress does not carry one.
    pub room_sid: Option<&'a str>,
    /// `egressInfo` as JSON, searched for the S3 destination of the request.
    pub raw_info: Option<&'a Value>,
}

/// Turns egress events into recording changes.
#[derive(Debug, Clone)]
pub struct EgressLifecycle {
    pool: Pool,
    objects: ObjectStore,
    metrics: ProcessorMetrics,
    /// Whether finished files are probed before `ready` (`RECORDING_PROBE`).
    probe: bool,
    thumbnails: Thumbnails,
}

impl EgressLifecycle {
    pub fn new(
        pool: Pool,
        objects: ObjectStore,
        metrics: ProcessorMetrics,
        probe: bool,
        thumbnails: Thumbnails,
    ) -> Self {
        Self {
            pool,
            objects,
            metrics,
            probe,
            thumbnails,
        }
    }

    /// What `event` comes to. For a finished egress this HEADs its files, holding no database
    /// connection meanwhile.
    pub async fn verdict(&self, event: EgressEvent<'_>) -> Result<Verdict, LifecycleError> {
        let Some(plan) = self.plan(event) else {
            return Ok(Verdict::Unchanged);
        };
        if !plan.finished {
            return Ok(Verdict::Change(Box::new(RecordingChange::update(
                plan.update,
            ))));
        }
        let (seen, status) = {
            let client = self.pool.get().await?;
            webhook_events::seen_and_status(&client, event.event_id, &plan.update.egress_id).await?
        };
        if seen {
            return Ok(Verdict::Duplicate);
        }
        if status.is_some_and(Status::is_final) {
            // A re-sent egress_ended: the recording is settled; do not verify again.
            return Ok(Verdict::Unchanged);
        }
        if plan.backup_storage_used {
            let update = in_backup_storage(&plan);
            return Ok(Verdict::Change(Box::new(RecordingChange::update(update))));
        }
        let update = match plan.results {
            Results::Files => return self.verified_or_waiting(&plan).await,
            Results::Images => EgressUpdate {
                status: Status::Ready,
                metadata: self.with_profile(&plan),
                ..plan.update.clone()
            },
            Results::Streams => EgressUpdate {
                processed: true,
                ..plan.update.clone()
            },
            Results::Nothing => {
                plan::failed(&plan, "egress completed without any result".to_owned())
            }
        };
        Ok(Verdict::Change(Box::new(RecordingChange::update(update))))
    }

    /// HEADs the files; while they cannot be confirmed the recording is visible as `stopped`,
    /// with the cause in `error`, and the event is retried. While it waits in the retry (then
    /// the dead-letter) queue the recording is `awaiting_replay`: reconciliation publishing
    /// another copy would only run the whole schedule again and dead-letter it too.
    async fn verified_or_waiting(&self, plan: &EgressPlan) -> Result<Verdict, LifecycleError> {
        match self.verified(plan).await {
            Ok(change) => Ok(Verdict::Change(Box::new(change))),
            Err(error @ LifecycleError::Files(FilesUnconfirmed::Storage(_))) => {
                let why = format!("waiting for the recording's files: {}", Chain(&error));
                self.wait(plan, &why, true).await?;
                Err(error)
            }
            Err(error) => Err(error),
        }
    }

    /// What an egress event whose retries are used up (or that can never work as it is)
    /// leaves behind. A file still absent fails the recording for good (`Some`: recorded as
    /// processed). A bucket that did not answer, that no profile names, or that does not exist
    /// leaves it `stopped` with the cause in `error` and the event goes to the dead-letter
    /// queue (`None`), from which `roomtape dlq replay` completes it. Reconciliation leaves it
    /// alone meanwhile (`awaiting_replay`): one copy of the event waits, not one per round.
    pub async fn given_up(
        &self,
        event: EgressEvent<'_>,
        error: &FilesUnconfirmed,
        attempts: u32,
    ) -> Result<Option<RecordingChange>, LifecycleError> {
        let Some(plan) = self.plan(event).filter(|plan| plan.finished) else {
            return Ok(None);
        };
        let why = format!("{}; gave up after {attempts} attempts", Chain(error));
        let why = match error {
            FilesUnconfirmed::Storage(StorageError::NotFound { .. }) => {
                return Ok(Some(RecordingChange::update(plan::failed(&plan, why))));
            }
            FilesUnconfirmed::Storage(StorageError::NoSuchBucket { .. }) => {
                format!("{}; then `roomtape dlq replay`", Chain(error))
            }
            FilesUnconfirmed::Storage(_) => {
                format!("{why}; once the bucket answers, `roomtape dlq replay` completes it")
            }
            FilesUnconfirmed::UnknownBucket { .. } => format!(
                "{}; configure a storage profile for it, then `roomtape dlq replay`",
                Chain(error)
            ),
        };
        self.wait(&plan, &why, true).await?;
        Ok(None)
    }

    /// Writes the recording as `stopped` (the egress ended) with why it waits.
    async fn wait(
        &self,
        plan: &EgressPlan,
        why: &str,
        awaiting_replay: bool,
    ) -> Result<(), LifecycleError> {
        let client = self.pool.get().await?;
        recordings::apply(&client, &plan.update).await?;
        recordings::note_waiting(&client, &plan.update.egress_id, why, awaiting_replay).await?;
        Ok(())
    }

    fn plan(&self, event: EgressEvent<'_>) -> Option<EgressPlan> {
        if event.info.egress_id.is_empty() {
            // LiveKit reports failed auto-egress this way; there is no recording to update.
            tracing::error!(error = %redact(&event.info.error), "egress event without an egress id (failed auto-egress?)");
            return None;
        }
        Some(plan::plan(event.info, event.room_sid, event.raw_info))
    }

    /// The plan's metadata with the profile its bucket is in, when one is configured (images
    /// are not HEADed; delete finds them through it).
    fn with_profile(&self, plan: &EgressPlan) -> Value {
        let mut metadata = plan.update.metadata.clone();
        let profile = self
            .objects
            .profile_for(plan.bucket.as_deref(), plan.endpoint.as_deref());
        if let (Some(map), Some(profile)) = (metadata.as_object_mut(), profile) {
            map.insert(
                recordings::STORAGE_PROFILE.into(),
                profile.name.clone().into(),
            );
        }
        metadata
    }

    /// HEADs every file, then probes each: the recording is ready with one asset per file, or
    /// failed if a file is empty or does not play. A file that cannot be confirmed or read is
    /// an error, retried later.
    async fn verified(&self, plan: &EgressPlan) -> Result<RecordingChange, LifecycleError> {
        let bucket = plan.bucket.as_deref();
        let profile = self
            .objects
            .profile_for(bucket, plan.endpoint.as_deref())
            .ok_or_else(|| FilesUnconfirmed::UnknownBucket {
                bucket: bucket.unwrap_or_default().to_owned(),
                egress_id: plan.update.egress_id.clone(),
            })?;
        let mut checked = Vec::with_capacity(plan.files.len());
        let mut first_bytes = Vec::with_capacity(plan.files.len());
        for file in &plan.files {
            let started = Instant::now();
            let (result, start) = self.confirmed(profile, file).await;
            self.metrics.head(started.elapsed());
            checked.push((file, result.map_err(FilesUnconfirmed::from)?));
            first_bytes.push(start);
        }
        if let Some((file, _)) = checked.iter().find(|(_, object)| object.size_bytes == 0) {
            let reason = format!(
                "recording file s3://{}/{} is empty (0 bytes)",
                profile.bucket, file.key
            );
            return Ok(RecordingChange::update(plan::failed(plan, reason)));
        }
        let mut reports = Vec::new();
        let probing = checked.iter().zip(first_bytes).filter(|_| self.probe);
        for ((file, object), start) in probing {
            match self.probed(plan, profile, file, object, start).await {
                Ok(report) => reports.push(report),
                Err(ProbeError::Unplayable(why)) => {
                    let reason =
                        format!("unplayable: {why} (s3://{}/{})", profile.bucket, file.key);
                    return Ok(RecordingChange::update(plan::failed(plan, reason)));
                }
                Err(ProbeError::Storage(error)) => {
                    return Err(FilesUnconfirmed::Storage(error).into())
                }
            }
        }
        let thumbnail = match checked.first() {
            Some((file, _)) => {
                let report = reports.first();
                self.thumbnails.of(plan, profile, file, report).await
            }
            None => Ok(None),
        };
        Ok(ready(plan, profile, &checked, reports.first(), thumbnail))
    }

    /// Whether `file` is there, and how big: a HEAD, or when it is to be probed its first
    /// [`probe::source::WINDOW`] bytes in a ranged GET, which says as much (one request, not
    /// two). A GET's 404 does not say whether the key or the bucket is missing: the HEAD does.
    async fn confirmed(
        &self,
        profile: &StorageProfile,
        file: &ReportedFile,
    ) -> (Result<ObjectInfo, StorageError>, Option<Vec<u8>>) {
        if !self.probe || file.playlist {
            return (self.objects.head(profile, &file.key).await.0, None);
        }
        let window = probe::source::WINDOW;
        match self.objects.get_range(profile, &file.key, 0, window).await {
            Ok(read) => (Ok(read.object), Some(read.bytes)),
            Err(StorageError::NotFound { .. }) => {
                (self.objects.head(profile, &file.key).await.0, None)
            }
            Err(error) => (Err(error), None),
        }
    }

    /// Opens `file` as a player would (from `start`, its first bytes, when they were read) and
    /// checks it is the recording asked for.
    async fn probed(
        &self,
        plan: &EgressPlan,
        profile: &StorageProfile,
        file: &ReportedFile,
        object: &ObjectInfo,
        start: Option<Vec<u8>>,
    ) -> Result<MediaReport, ProbeError> {
        let started = Instant::now();
        let size = u64::try_from(object.size_bytes).unwrap_or_default();
        let report = match file.playlist {
            true => probe::hls::probe(&self.objects, profile, &file.key).await,
            false => {
                let mut source = ObjectSource::new(&self.objects, profile, &file.key, size);
                if let Some(start) = start {
                    source = source.with_start(start);
                }
                probe::probe_file(&mut source).await
            }
        };
        self.metrics.probe(started.elapsed());
        let report = report?;
        let expected = Expected {
            video: plan.tracks.video,
            audio: plan.tracks.audio,
            duration_seconds: file.duration_seconds,
        };
        expected.check(&report).map_err(ProbeError::Unplayable)?;
        Ok(report)
    }
}

/// The recording once every file is confirmed: its first file on the row, one asset each, and
/// its thumbnail (or why it has none).
fn ready(
    plan: &EgressPlan,
    profile: &StorageProfile,
    checked: &[(&ReportedFile, ObjectInfo)],
    probed: Option<&MediaReport>,
    thumbnail: Result<Option<StoredThumbnail>, ThumbnailError>,
) -> RecordingChange {
    let assets = checked
        .iter()
        .map(|(file, object)| new_asset(plan, profile, file, object))
        .collect();
    // `verified` only gets here with at least one file.
    let file = checked.first().map(|(file, object)| StoredFile {
        provider: profile.provider.clone(),
        bucket: Some(profile.bucket.clone()),
        key: file.key.clone(),
        url: public_url(profile, file),
        size_bytes: recording_size(file, object),
    });
    let mut metadata = plan.update.metadata.clone();
    if let (Some(map), Some((_, object))) = (metadata.as_object_mut(), checked.first()) {
        map.insert("etag".into(), object.etag.clone().into());
        map.insert(
            recordings::STORAGE_PROFILE.into(),
            profile.name.clone().into(),
        );
        if let Some(report) = probed.and_then(|r| serde_json::to_value(r).ok()) {
            map.insert(PROBE.into(), report);
        }
    }
    let thumbnail = thumbnail.unwrap_or_else(|error| {
        let why = Chain(&error).to_string();
        tracing::warn!(error = %why, "the recording is ready without a thumbnail");
        if let Some(map) = metadata.as_object_mut() {
            map.insert(THUMBNAIL_ERROR.into(), why.into());
        }
        None
    });
    RecordingChange {
        update: EgressUpdate {
            status: Status::Ready,
            file,
            thumbnail,
            metadata,
            ..plan.update.clone()
        },
        assets,
    }
}

/// A file's public URL; a key with `.`/`..` segments (from an egress started elsewhere) gets
/// none rather than a link to another object.
fn public_url(profile: &StorageProfile, file: &ReportedFile) -> Option<String> {
    let url = storage::public_url(profile, &file.key);
    if url.is_none() {
        tracing::warn!(key = %file.key, "the recording's key has . or .. segments: no public URL");
    }
    url.map(String::from)
}

/// A playlist stands for all its segments: LiveKit's total, not the playlist's own bytes.
fn recording_size(file: &ReportedFile, object: &ObjectInfo) -> i64 {
    match file.playlist {
        true => file.size_bytes.max(object.size_bytes),
        false => object.size_bytes,
    }
}

fn new_asset(
    plan: &EgressPlan,
    profile: &StorageProfile,
    file: &ReportedFile,
    object: &ObjectInfo,
) -> NewAsset {
    let content_type = match file.playlist {
        true => Some(PLAYLIST_CONTENT_TYPE.to_owned()),
        false => object.content_type.clone(),
    };
    NewAsset {
        egress_id: plan.update.egress_id.clone(),
        room_name: plan.update.room_name.clone(),
        bucket: profile.bucket.clone(),
        key: file.key.clone(),
        playback_url: public_url(profile, file),
        size_bytes: recording_size(file, object),
        duration_seconds: file.duration_seconds.or(plan.update.duration_seconds),
        content_type,
    }
}

/// The files are in LiveKit's backup bucket: recorded as such, with the event's size and
/// location (an S3 API URL), and no asset since there is no public URL to play it from.
fn in_backup_storage(plan: &EgressPlan) -> EgressUpdate {
    tracing::warn!("egress wrote to LiveKit's backup storage, not to our bucket");
    EgressUpdate {
        status: Status::Ready,
        file: plan.files.first().map(|f| StoredFile {
            provider: "livekit-backup".into(),
            bucket: None,
            key: f.key.clone(),
            url: Some(redact(&f.location).into_owned()),
            size_bytes: f.size_bytes,
        }),
        metadata: serde_json::json!({"backup_storage_used": true}),
        ..plan.update.clone()
    }
}
