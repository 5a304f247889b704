//! The safety net for lost webhooks: LiveKit drops webhooks that wait over 30 s or find 200
//! queued. Recordings that are not final and have not changed for a while are looked up with
//! `ListEgress`, and what LiveKit says is published to `livekit.events` as the webhook it would
//! have sent, so it is applied exactly as if it had arrived (HEAD, retries and all).

use std::time::Duration;

use deadpool_postgres::Pool;
use lapin::options::ConfirmSelectOptions;
use lapin::{BasicProperties, Channel};
use roomtape_shared::clock::Clock;
use roomtape_shared::config::AmqpSettings;
use roomtape_shared::db::{notifications, recordings};
use roomtape_shared::events::proto::{EgressInfo, EgressStatus, ListEgressRequest, WebhookEvent};
use roomtape_shared::events::routing_key;
use roomtape_shared::livekit::EgressClient;
use roomtape_shared::queue::topology::EVENTS_EXCHANGE;
use roomtape_shared::queue::{self, publish_confirmed, Outgoing, PublishError, CONFIRM_TIMEOUT};
use roomtape_shared::shutdown::Shutdown;
use roomtape_shared::Chain;

/// Recordings checked per round, least recently checked first.
const BATCH: i64 = 100;
/// How long connecting to the broker may take: a broker that accepts the connection and never
/// answers must not stall reconciliation for good (the next round tries again).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a reconciliation round stopped; the next round tries again.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("database error")]
    Database(#[from] tokio_postgres::Error),
    #[error("no database connection")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("broker error")]
    Broker(#[from] lapin::Error),
    #[error("the broker did not open a connection within {CONNECT_TIMEOUT:?}")]
    ConnectTimeout,
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("cannot encode the event")]
    Encode(#[from] serde_json::Error),
}

/// Runs a round every `every` until `shutdown`.
#[derive(Debug, Clone)]
pub struct Reconciler {
    pub pool: Pool,
    pub egress: EgressClient,
    pub amqp: AmqpSettings,
    pub every: Duration,
    /// Recordings unchanged (and not asked about) for this long are looked up.
    pub after: Duration,
    pub clock: Clock,
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
                Err(error) => tracing::warn!(error = %Chain(&error), "reconciliation round failed"),
            }
        }
    }

    /// One round; returns how many events it published.
    pub async fn round(&self) -> Result<usize, ReconcileError> {
        let now = self.clock.now_unix();
        let stale = {
            // Not held through the LiveKit calls.
            let client = self.pool.get().await?;
            recordings::take_stale(&client, now, self.after, BATCH).await?
        };
        if stale.is_empty() {
            return Ok(0);
        }
        let (connection, channel) = tokio::time::timeout(CONNECT_TIMEOUT, self.connect())
            .await
            .map_err(|_| ReconcileError::ConnectTimeout)??;
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
                        publish_as_webhook(&channel, as_webhook(info, now)).await?;
                        published += 1;
                    }
                }
                Err(error) if error.code() == Some("not_found") => {
                    self.forgotten(&egress_id).await;
                }
                Err(error) => {
                    tracing::warn!(%egress_id, error = %Chain(&error), "reconciliation could not look the egress up");
                }
            }
        }
        let _ = connection.close(200, "reconciled".into()).await;
        Ok(published)
    }

    async fn connect(&self) -> Result<(lapin::Connection, Channel), lapin::Error> {
        let connection = queue::connect(&self.amqp, "roomtape-processor-reconcile").await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok((connection, channel))
    }

    /// LiveKit no longer knows the egress: its final webhook is lost for good.
    async fn forgotten(&self, egress_id: &str) {
        let reason =
            format!("LiveKit no longer knows egress {egress_id} and its final webhook never came");
        tracing::warn!(%egress_id, "{reason}");
        let failed: Result<(), ReconcileError> = async {
            let mut client = self.pool.get().await?;
            let transaction = client.transaction().await?;
            if recordings::fail_forgotten(&transaction, egress_id, &reason).await? {
                let kind = notifications::Kind::RecordingFailed;
                notifications::recording_changed(&transaction, kind, egress_id).await?;
            }
            transaction.commit().await?;
            Ok(())
        }
        .await;
        if let Err(error) = failed {
            // Asked again after RECONCILE_AFTER.
            tracing::warn!(%egress_id, error = %Chain(&error), "could not mark the recording failed");
        }
    }
}

async fn publish_as_webhook(channel: &Channel, event: WebhookEvent) -> Result<(), ReconcileError> {
    let body = serde_json::to_vec(&event)?;
    let properties = BasicProperties::default()
        .with_message_id(event.id.as_str().into())
        .with_type(event.event.as_str().into())
        .with_timestamp(u64::try_from(event.created_at).unwrap_or_default())
        .with_content_type("application/json".into())
        .with_delivery_mode(2);
    let key = routing_key(&event.event);
    let message = Outgoing::to_exchange(EVENTS_EXCHANGE, &key, &body, properties);
    publish_confirmed(channel, message, CONFIRM_TIMEOUT).await?;
    Ok(())
}

/// The webhook LiveKit would have sent for `info`. The id is fixed by the egress and its
/// `updatedAt`, so every processor's reconciler publishes the same event and it applies once.
fn as_webhook(info: EgressInfo, now_unix: u64) -> WebhookEvent {
    let ended = matches!(
        EgressStatus::try_from(info.status),
        Ok(EgressStatus::EgressComplete
            | EgressStatus::EgressFailed
            | EgressStatus::EgressAborted
            | EgressStatus::EgressLimitReached)
    );
    WebhookEvent {
        event: if ended {
            "egress_ended"
        } else {
            "egress_updated"
        }
        .to_owned(),
        id: format!("RC_{}_{}", info.egress_id, info.updated_at),
        created_at: i64::try_from(now_unix).unwrap_or_default(),
        egress_info: Some(info),
        ..WebhookEvent::default()
    }
}
