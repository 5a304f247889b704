//! The egress lifecycle, every outcome of an egress event in one place: what the event means
//! for its recording ([`plan`]), checking a finished egress's files in their bucket, and the
//! one write that applies it.
//!
//! ```text
//! egress_started/updated ──▶ plan ──────────────────────────────▶ write (status moves forward)
//! egress_ended, complete ──▶ plan ─▶ already final? ─▶ nothing
//!                                  ─▶ backup storage ─────────────▶ write ready (no asset)
//!                                  ─▶ no file ───────────────────▶ write failed
//!                                  ─▶ HEAD each file ─▶ empty ────▶ write failed
//!                                                    ─▶ all there ─▶ write ready + assets
//!                                                    ─▶ missing / bucket error ─▶ write
//!                                                       stopped, retry later; after the last
//!                                                       retry `failed_for_good` writes failed
//! ```

pub mod plan;

use deadpool_postgres::{GenericClient, Pool};
use roomtape_shared::config::StorageProfile;
use roomtape_shared::db::assets::{self, NewAsset};
use roomtape_shared::db::recordings::{self, EgressUpdate, Status, StoredFile};
use roomtape_shared::events::proto::EgressInfo;
use roomtape_shared::storage::{self, ObjectInfo, ObjectStore, StorageError};
use serde_json::Value;

use crate::error::HandleError;
use crate::metrics::ProcessorMetrics;
use crate::store::webhook_events;
use plan::{EgressPlan, ReportedFile};

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

    /// Writes the recording, and its assets if the update moved it forward. Status never moves
    /// backwards, so a late or repeated event changes nothing.
    pub async fn write(&self, client: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
        if let Some(applied) = recordings::apply(client, &self.update).await? {
            for asset in &self.assets {
                assets::upsert(client, &applied, asset).await?;
            }
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
}

impl EgressLifecycle {
    pub fn new(pool: Pool, objects: ObjectStore, metrics: ProcessorMetrics) -> Self {
        Self {
            pool,
            objects,
            metrics,
        }
    }

    /// What `event` comes to. For a finished egress this HEADs its files, holding no database
    /// connection meanwhile.
    pub async fn verdict(&self, event: EgressEvent<'_>) -> Result<Verdict, HandleError> {
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
        if plan.files.is_empty() {
            let reason = "egress completed without a file result".to_owned();
            let update = plan::failed(&plan, reason);
            return Ok(Verdict::Change(Box::new(RecordingChange::update(update))));
        }
        match self.verified(&plan).await {
            Err(HandleError::Storage(error)) => {
                // Visible as `stopped` while its files are waited for.
                RecordingChange::update(plan.update)
                    .write(&self.pool.get().await?)
                    .await?;
                Err(error.into())
            }
            verified => verified.map(|change| Verdict::Change(Box::new(change))),
        }
    }

    /// The recording failed for good because its files could not be confirmed (`error`, after
    /// the last retry).
    pub fn failed_for_good(
        &self,
        event: EgressEvent<'_>,
        error: &StorageError,
        attempts: u32,
    ) -> Option<RecordingChange> {
        let plan = self.plan(event)?;
        let reason = format!(
            "{}; gave up after {attempts} attempts",
            roomtape_shared::Chain(error)
        );
        Some(RecordingChange::update(plan::failed(&plan, reason)))
    }

    fn plan(&self, event: EgressEvent<'_>) -> Option<EgressPlan> {
        if event.info.egress_id.is_empty() {
            // LiveKit reports failed auto-egress this way; there is no recording to update.
            tracing::error!(error = %event.info.error, "egress event without an egress id (failed auto-egress?)");
            return None;
        }
        Some(plan::plan(event.info, event.room_sid, event.raw_info))
    }

    /// HEADs every file: the recording is ready with one asset per file, or failed if a file
    /// is empty. A file that cannot be confirmed is an error, retried later.
    async fn verified(&self, plan: &EgressPlan) -> Result<RecordingChange, HandleError> {
        let bucket = plan.bucket.as_deref();
        let profile = self
            .objects
            .profile_for(bucket, plan.endpoint.as_deref())
            .ok_or_else(|| HandleError::UnknownBucket {
                bucket: bucket.unwrap_or_default().to_owned(),
                egress_id: plan.update.egress_id.clone(),
            })?;
        let mut checked = Vec::with_capacity(plan.files.len());
        for file in &plan.files {
            let (result, took) = self.objects.head(profile, &file.key).await;
            self.metrics.head(took);
            checked.push((file, result?));
        }
        if let Some((file, _)) = checked.iter().find(|(_, object)| object.size_bytes == 0) {
            let reason = format!(
                "recording file s3://{}/{} is empty (0 bytes)",
                profile.bucket, file.key
            );
            return Ok(RecordingChange::update(plan::failed(plan, reason)));
        }
        Ok(ready(plan, profile, &checked))
    }
}

/// The recording once every file is confirmed: its first file on the row, one asset each.
fn ready(
    plan: &EgressPlan,
    profile: &StorageProfile,
    checked: &[(&ReportedFile, ObjectInfo)],
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
        url: storage::public_url(profile, &file.key).into(),
        size_bytes: object.size_bytes,
    });
    let etag = checked.first().map(|(_, object)| object.etag.clone());
    RecordingChange {
        update: EgressUpdate {
            status: Status::Ready,
            file,
            metadata: serde_json::json!({"etag": etag.flatten()}),
            ..plan.update.clone()
        },
        assets,
    }
}

fn new_asset(
    plan: &EgressPlan,
    profile: &StorageProfile,
    file: &ReportedFile,
    object: &ObjectInfo,
) -> NewAsset {
    NewAsset {
        egress_id: plan.update.egress_id.clone(),
        room_name: plan.update.room_name.clone(),
        bucket: profile.bucket.clone(),
        key: file.key.clone(),
        playback_url: storage::public_url(profile, &file.key).into(),
        size_bytes: object.size_bytes,
        duration_seconds: file.duration_seconds.or(plan.update.duration_seconds),
        content_type: object.content_type.clone(),
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
            url: f.location.clone(),
            size_bytes: f.size_bytes,
        }),
        metadata: serde_json::json!({"backup_storage_used": true}),
        ..plan.update.clone()
    }
}
