//! The relay of notifications (CONTRACTS §8): what the outbox (`notification_outbox`) holds is
//! published, after the transaction that wrote it committed, to `roomtape.notifications`,
//! persistent and confirmed, routing key = its type, `message_id` = its notification id; and
//! each HTTP endpoint that wants it gets a delivery (`notification_deliveries`), added in the
//! transaction that marks it relayed.
//!
//! A batch is taken with `FOR UPDATE SKIP LOCKED` (every processor runs a relay; each takes
//! rows the others do not hold), published (in order, the confirms awaited together), marked
//! relayed, and committed. A relay
//! that dies between a publish and the commit leaves its rows unrelayed: the next relay
//! publishes them again with the same `message_id` (at least once, with a stable id for
//! consumers to drop a repeat). The relay looks for new rows every [`POLL`]: one indexed query,
//! and a notification waits at most that long after its commit.

use std::time::Duration;

use deadpool_postgres::Pool;
use lapin::options::ConfirmSelectOptions;
use lapin::{BasicProperties, Channel};
use roomtape_shared::clock::Clock;
use roomtape_shared::config::AmqpSettings;
use roomtape_shared::db::deliveries;
use roomtape_shared::db::notifications::{self, Pending};
use roomtape_shared::queue::reconnect::{run_reconnecting, Backoff, Established};
use roomtape_shared::queue::topology::{self, NOTIFICATIONS_EXCHANGE};
use roomtape_shared::queue::{self, publish_confirmed, Outgoing, PublishError, CONFIRM_TIMEOUT};
use roomtape_shared::shutdown::Shutdown;
use roomtape_shared::Chain;

use super::Endpoints;
use crate::metrics::ProcessorMetrics;

/// How often an idle relay looks for notifications.
pub const POLL: Duration = Duration::from_millis(200);
/// Notifications taken (and locked) per transaction.
const BATCH: i64 = 100;
/// Between broker sessions.
const RECONNECT: Backoff = Backoff {
    min: Duration::from_millis(200),
    max: Duration::from_secs(10),
};

/// Why a relay session stopped; the next one starts after a pause.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database error")]
    Database(#[from] tokio_postgres::Error),
    #[error("no database connection")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("broker error")]
    Broker(#[from] lapin::Error),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("cannot encode the notification")]
    Encode(#[from] serde_json::Error),
}

/// Relays the outbox until shutdown.
#[derive(Debug, Clone)]
pub struct Relay {
    pub pool: Pool,
    pub amqp: AmqpSettings,
    pub metrics: ProcessorMetrics,
    pub endpoints: Endpoints,
    /// What time the deliveries it adds are due.
    pub clock: Clock,
}

impl Relay {
    /// Relays until `shutdown`; a batch in flight is finished (published and committed) first.
    pub async fn run(self, shutdown: Shutdown) {
        run_reconnecting(
            "the notification relay",
            RECONNECT,
            &shutdown,
            |established| self.session(established, &shutdown),
        )
        .await;
    }

    /// One broker connection: relays until `shutdown` (`Ok`) or a failure (`Err`).
    async fn session(&self, established: Established, shutdown: &Shutdown) -> Result<(), String> {
        let result: Result<(), RelayError> = async {
            let connection = queue::connect(&self.amqp, "roomtape-processor-notify").await?;
            let channel = connection.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            topology::declare_notifications(&channel).await?;
            established.mark();
            while !shutdown.is_cancelled() {
                // Not raced against shutdown: a batch taken is published and committed.
                let relayed = self.relay_batch(&channel).await?;
                if relayed < BATCH as usize {
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep(POLL) => {}
                    }
                }
            }
            let _ = connection.close(200, "shutting down".into()).await;
            Ok(())
        }
        .await;
        result.map_err(|error| Chain(&error).to_string())
    }

    /// Takes a batch, publishes it, adds its deliveries, marks it relayed and commits; returns
    /// its size. On a failure the transaction rolls back and the rows wait for the next session.
    pub async fn relay_batch(&self, channel: &Channel) -> Result<usize, RelayError> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let batch = notifications::take_unrelayed(&transaction, BATCH).await?;
        if batch.is_empty() {
            return Ok(0);
        }
        // All published before any confirm is awaited (in order: each future publishes when
        // first polled), so a batch costs one wait for the broker, not one per notification.
        futures_util::future::try_join_all(batch.iter().map(|n| publish(channel, n))).await?;
        let (outbox_ids, endpoints): (Vec<i64>, Vec<&str>) = batch
            .iter()
            .flat_map(|n| self.endpoints.wanting(&n.kind).map(move |e| (n.id, e)))
            .unzip();
        if !outbox_ids.is_empty() {
            let now = self.clock.now().into();
            deliveries::add(&transaction, &outbox_ids, &endpoints, now).await?;
        }
        let ids: Vec<i64> = batch.iter().map(|n| n.id).collect();
        notifications::mark_relayed(&transaction, &ids).await?;
        transaction.commit().await?;
        let woken: std::collections::BTreeSet<&str> = endpoints.into_iter().collect();
        for endpoint in woken {
            self.endpoints.wake(endpoint);
        }
        for notification in &batch {
            self.metrics.relayed(&notification.kind);
        }
        Ok(batch.len())
    }
}

/// Publishes one notification, persistent and confirmed. Not mandatory: a type no app has bound
/// a queue for is dropped by the broker, as a topic exchange does, and must not stop the relay.
async fn publish(channel: &Channel, notification: &Pending) -> Result<(), RelayError> {
    let body = serde_json::to_vec(&notification.body)?;
    let properties = BasicProperties::default()
        .with_message_id(notification.notification_id.as_str().into())
        .with_type(notification.kind.as_str().into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2);
    let message = Outgoing {
        mandatory: false,
        ..Outgoing::to_exchange(
            NOTIFICATIONS_EXCHANGE,
            &notification.kind,
            &body,
            properties,
        )
    };
    publish_confirmed(channel, message, CONFIRM_TIMEOUT).await?;
    Ok(())
}
