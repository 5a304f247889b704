//! LiveKit events → rows. Each event's effects and its `webhook_events` row commit in one
//! transaction, so a redelivered or re-sent event changes nothing.

pub mod auto_record;
pub mod egress;
pub mod parse;
pub mod rooms;

use deadpool_postgres::{GenericClient, Pool};
use lapin::message::Delivery;
use lapin::Channel;
use roomtape_shared::config::AutoRecordSettings;
use roomtape_shared::events::event_id;
use roomtape_shared::events::proto::{EgressInfo, WebhookEvent};
use roomtape_shared::queue::topology::EVENTS_QUEUE;

use crate::consume::{Attempt, Handled, Handler};
use crate::error::HandleError;
use crate::metrics::ProcessorMetrics;
use crate::storage::objects::{Buckets, ObjectInfo};
use crate::store::assets::{self, NewAsset};
use crate::store::recordings::{self, EgressUpdate, Status, StoredFile};
use crate::store::{from_secs, webhook_events};
use egress::{EgressPlan, ReportedFile};

/// Handles `roomtape.events`.
#[derive(Debug)]
pub struct EventProcessor {
    pool: Pool,
    buckets: Buckets,
    auto_record: AutoRecordSettings,
    metrics: ProcessorMetrics,
}

/// A recording update and the assets to create if it applies.
#[derive(Debug)]
struct RecordingChange {
    update: EgressUpdate,
    assets: Vec<NewAsset>,
}

impl Handler for EventProcessor {
    fn queue(&self) -> &'static str {
        EVENTS_QUEUE
    }

    async fn handle(
        &self,
        delivery: &Delivery,
        attempt: Attempt,
        publisher: &Channel,
    ) -> Result<Handled, HandleError> {
        let message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str());
        self.process(&delivery.data, message_id, attempt, Some(publisher))
            .await
    }
}

impl EventProcessor {
    pub fn new(
        pool: Pool,
        buckets: Buckets,
        auto_record: AutoRecordSettings,
        metrics: ProcessorMetrics,
    ) -> Self {
        Self {
            pool,
            buckets,
            auto_record,
            metrics,
        }
    }

    /// Applies one event body; `message_id` is the AMQP property, used when the body has no id.
    /// Auto-record commands are published on `publisher` (none: auto-record is skipped).
    pub async fn process(
        &self,
        body: &[u8],
        message_id: Option<&str>,
        attempt: Attempt,
        publisher: Option<&Channel>,
    ) -> Result<Handled, HandleError> {
        let parsed = parse::parse(body).map_err(|e| HandleError::Poison(e.to_string()))?;
        let event = &parsed.event;
        let id = event_id(
            Some(event.id.as_str())
                .filter(|id| !id.is_empty())
                .or(message_id),
            body,
        );
        record_span_fields(&id, event);
        if !parsed.dropped.is_empty() {
            tracing::warn!(dropped = ?parsed.dropped, "ignored values this build does not know");
        }

        if webhook_events::seen(&self.pool.get().await?, &id).await? {
            return Ok(Handled::new(&event.event, "duplicate"));
        }
        let change = match (&event.egress_info, event.event.starts_with("egress_")) {
            (Some(info), true) => {
                let raw_info = parsed.raw.get("egressInfo");
                let room_sid = event.room.as_ref().map(|r| r.sid.as_str());
                self.recording_change(info, room_sid, raw_info, attempt)
                    .await?
            }
            _ => None,
        };

        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let created = from_secs(event.created_at);
        if !webhook_events::record(&tx, &id, &event.event, created, &parsed.raw).await? {
            tx.rollback().await?;
            return Ok(Handled::new(&event.event, "duplicate"));
        }
        match change {
            Some(change) => apply(&tx, &change).await?,
            None => rooms::apply(&tx, event).await?,
        }
        // Before the commit: if the commit fails, the redelivery asks again, and the command's
        // id makes that harmless.
        if let (Some(publisher), Some(room), "room_started") =
            (publisher, &event.room, event.event.as_str())
        {
            if auto_record::wanted(&self.auto_record, room) {
                auto_record::request(publisher, room)
                    .await
                    .map_err(|e| HandleError::Publish(e.to_string()))?;
                tracing::info!("auto-record requested");
            }
        }
        tx.commit().await?;
        Ok(Handled::new(&event.event, "applied"))
    }

    /// What an egress event changes; `None` when it changes no recording.
    async fn recording_change(
        &self,
        info: &EgressInfo,
        room_sid: Option<&str>,
        raw_info: Option<&serde_json::Value>,
        attempt: Attempt,
    ) -> Result<Option<RecordingChange>, HandleError> {
        if info.egress_id.is_empty() {
            // LiveKit reports failed auto-egress this way; there is no recording to update.
            tracing::error!(error = %info.error, "egress event without an egress id (failed auto-egress?)");
            return Ok(None);
        }
        let plan = egress::plan(info, room_sid, raw_info);
        if !plan.finished {
            return Ok(Some(RecordingChange {
                update: plan.update,
                assets: Vec::new(),
            }));
        }
        let client = self.pool.get().await?;
        if recordings::status(&client, &info.egress_id)
            .await?
            .is_some_and(Status::is_final)
        {
            // A re-sent egress_ended: the recording is settled; do not verify again.
            return Ok(None);
        }
        if plan.backup_storage_used {
            return Ok(Some(RecordingChange {
                update: in_backup_storage(&plan),
                assets: Vec::new(),
            }));
        }
        if plan.files.is_empty() {
            let reason = "egress completed without a file result".to_owned();
            return Ok(Some(RecordingChange {
                update: egress::failed(&plan, reason),
                assets: Vec::new(),
            }));
        }
        // Visible as `stopped` while its files are checked; the connection is not held
        // through the HEADs, which can take long on a remote bucket.
        recordings::apply(&client, &plan.update).await?;
        drop(client);
        self.verified(&plan, attempt).await.map(Some)
    }

    /// HEADs every file; the recording is ready, or failed once retries are used up.
    async fn verified(
        &self,
        plan: &EgressPlan,
        attempt: Attempt,
    ) -> Result<RecordingChange, HandleError> {
        let bucket = plan.bucket.as_deref();
        let profile = self
            .buckets
            .profile_for(bucket, plan.endpoint.as_deref())
            .ok_or_else(|| {
                HandleError::NotConfigured(format!(
                    "bucket {:?} of egress {} is not a configured storage profile",
                    bucket.unwrap_or_default(),
                    plan.update.egress_id
                ))
            })?;
        let mut checked = Vec::with_capacity(plan.files.len());
        for file in &plan.files {
            let (result, took) = self.buckets.head(profile, &file.key).await;
            self.metrics.head(took);
            match result {
                Ok(object) => checked.push((file, object)),
                Err(error) if attempt.is_last => {
                    let reason = format!("{error}; gave up after {} attempts", attempt.number);
                    return Ok(RecordingChange {
                        update: egress::failed(plan, reason),
                        assets: Vec::new(),
                    });
                }
                Err(error) => return Err(error.into()),
            }
        }
        if let Some((file, _)) = checked.iter().find(|(_, object)| object.size_bytes == 0) {
            let reason = format!(
                "recording file s3://{}/{} is empty (0 bytes)",
                profile.bucket, file.key
            );
            return Ok(RecordingChange {
                update: egress::failed(plan, reason),
                assets: Vec::new(),
            });
        }
        let assets = checked
            .iter()
            .map(|(file, object)| {
                new_asset(
                    plan,
                    &profile.bucket,
                    profile.object_url(&file.key).into(),
                    file,
                    object,
                )
            })
            .collect::<Vec<_>>();
        let Some((first, object)) = checked.first() else {
            let reason = "egress completed without a file result".to_owned();
            return Ok(RecordingChange {
                update: egress::failed(plan, reason),
                assets: Vec::new(),
            });
        };
        let update = EgressUpdate {
            status: Status::Ready,
            file: Some(StoredFile {
                provider: profile.provider.clone(),
                bucket: Some(profile.bucket.clone()),
                key: first.key.clone(),
                url: profile.object_url(&first.key).into(),
                size_bytes: object.size_bytes,
            }),
            metadata: serde_json::json!({"etag": object.etag}),
            ..plan.update.clone()
        };
        Ok(RecordingChange { update, assets })
    }
}

async fn apply(
    client: &impl GenericClient,
    change: &RecordingChange,
) -> Result<(), tokio_postgres::Error> {
    if let Some(applied) = recordings::apply(client, &change.update).await? {
        for asset in &change.assets {
            assets::upsert(client, &applied, asset).await?;
        }
    }
    Ok(())
}

fn new_asset(
    plan: &EgressPlan,
    bucket: &str,
    url: String,
    file: &ReportedFile,
    object: &ObjectInfo,
) -> NewAsset {
    NewAsset {
        egress_id: plan.update.egress_id.clone(),
        room_name: plan.update.room_name.clone(),
        bucket: bucket.to_owned(),
        key: file.key.clone(),
        playback_url: url,
        size_bytes: object.size_bytes,
        duration_seconds: file.duration_seconds.or(plan.update.duration_seconds),
        content_type: object.content_type.clone(),
    }
}

/// The files are in LiveKit's backup bucket: recorded as such, with the event's size and
/// location (an S3 API URL), and no asset since there is no public URL to play it from.
fn in_backup_storage(plan: &EgressPlan) -> EgressUpdate {
    let file = &plan.files.first();
    tracing::warn!("egress wrote to LiveKit's backup storage, not to our bucket");
    EgressUpdate {
        status: Status::Ready,
        file: file.map(|f| StoredFile {
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

fn record_span_fields(id: &str, event: &WebhookEvent) {
    let span = tracing::Span::current();
    span.record("event_id", id);
    span.record("event", event.event.as_str());
    if let Some(info) = &event.egress_info {
        span.record("egress_id", info.egress_id.as_str());
    }
    let room = event
        .room
        .as_ref()
        .map(|r| r.name.as_str())
        .or(event.egress_info.as_ref().map(|e| e.room_name.as_str()));
    if let Some(room) = room {
        span.record("room", room);
    }
}
