//! The safety net for lost webhooks: LiveKit drops webhooks that wait over 30 s or find 200
//! queued. Recordings that are not final and have not changed for a while are looked up with
//! `ListEgress`, and what LiveKit says is published to `livekit.events` as the webhook it would
//! have sent, so it is applied exactly as if it had arrived (HEAD, retries and all).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::Pool;
use lapin::options::ConfirmSelectOptions;
use lapin::{BasicProperties, Channel};
use roomtape_shared::config::AmqpSettings;
use roomtape_shared::events::proto::{EgressInfo, EgressStatus, ListEgressRequest, WebhookEvent};
use roomtape_shared::events::routing_key;
use roomtape_shared::queue::{self, topology::EVENTS_EXCHANGE};
use roomtape_shared::shutdown::Shutdown;

use crate::livekit::{EgressClient, EgressError};
use crate::publish::{self, PublishError};
use crate::store::recordings;

/// Recordings checked per round, least recently checked first.
const BATCH: i64 = 100;

/// Why a reconciliation round stopped; the next round tries again.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("database: {0}")]
    Database(String),
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("cannot encode the event: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Runs a round every `every` until `shutdown`.
#[derive(Debug, Clone)]
pub struct Reconciler {
    pub pool: Pool,
    pub egress: EgressClient,
    pub amqp: AmqpSettings,
    pub every: Duration,
    pub after: Duration,
}

impl Reconciler {
    pub async fn run(self, shutdown: Shutdown) {
        if self.every.is_zero() {
            return;
        }
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.every) => {}
            }
            let result = tokio::select! {
                () = shutdown.cancelled() => return,
                result = self.round() => result,
            };
            match result {
                Ok(0) => {}
                Ok(published) => {
                    tracing::info!(published, "reconciliation published what LiveKit reports")
                }
                Err(error) => tracing::warn!(%error, "reconciliation round failed"),
            }
        }
    }

    /// One round; returns how many events it published.
    pub async fn round(&self) -> Result<usize, ReconcileError> {
        let database = |e: &dyn std::fmt::Display| ReconcileError::Database(e.to_string());
        let client = self.pool.get().await.map_err(|e| database(&e))?;
        let stale = recordings::take_stale(&client, self.after.as_secs_f64(), BATCH)
            .await
            .map_err(|e| database(&e))?;
        // Not held through the LiveKit calls.
        drop(client);
        if stale.is_empty() {
            return Ok(0);
        }
        let connection = queue::connect(&self.amqp, "roomtape-processor-reconcile").await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let mut published = 0;
        for egress_id in stale {
            let request = ListEgressRequest {
                egress_id: egress_id.clone(),
                ..ListEgressRequest::default()
            };
            // One egress LiveKit cannot tell us about must not hold up the others.
            match self.egress.list(&request).await {
                Ok(items) => {
                    for info in items {
                        publish_as_webhook(&channel, info).await?;
                        published += 1;
                    }
                }
                Err(error) if error.code() == Some("not_found") => {
                    self.forgotten(&egress_id).await;
                }
                Err(error) => log_lookup_failure(&egress_id, &error),
            }
        }
        let _ = connection.close(200, "reconciled".into()).await;
        Ok(published)
    }
}

impl Reconciler {
    /// LiveKit no longer knows the egress: its final webhook is lost for good.
    async fn forgotten(&self, egress_id: &str) {
        let reason =
            format!("LiveKit no longer knows egress {egress_id} and its final webhook never came");
        tracing::warn!(%egress_id, "{reason}");
        let failed = match self.pool.get().await {
            Ok(client) => recordings::fail_forgotten(&client, egress_id, &reason)
                .await
                .map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        if let Err(error) = failed {
            // Asked again after RECONCILE_AFTER.
            tracing::warn!(%egress_id, %error, "could not mark the recording failed");
        }
    }
}

fn log_lookup_failure(egress_id: &str, error: &EgressError) {
    tracing::warn!(%egress_id, %error, "reconciliation could not look the egress up");
}

async fn publish_as_webhook(channel: &Channel, info: EgressInfo) -> Result<(), ReconcileError> {
    let event = as_webhook(info);
    let body = serde_json::to_vec(&event)?;
    let properties = BasicProperties::default()
        .with_message_id(event.id.as_str().into())
        .with_type(event.event.as_str().into())
        .with_timestamp(u64::try_from(event.created_at).unwrap_or_default())
        .with_content_type("application/json".into())
        .with_delivery_mode(2);
    let key = routing_key(&event.event);
    publish::confirmed(channel, EVENTS_EXCHANGE, &key, true, &body, properties).await?;
    Ok(())
}

/// The webhook LiveKit would have sent for `info`. The id is fixed by the egress and its
/// `updatedAt`, so every processor's reconciler publishes the same event and it applies once.
fn as_webhook(info: EgressInfo) -> WebhookEvent {
    let ended = matches!(
        EgressStatus::try_from(info.status),
        Ok(EgressStatus::EgressComplete
            | EgressStatus::EgressFailed
            | EgressStatus::EgressAborted
            | EgressStatus::EgressLimitReached)
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    WebhookEvent {
        event: if ended {
            "egress_ended"
        } else {
            "egress_updated"
        }
        .to_owned(),
        id: format!("RC_{}_{}", info.egress_id, info.updated_at),
        created_at: i64::try_from(now).unwrap_or_default(),
        egress_info: Some(info),
        ..WebhookEvent::default()
    }
}
