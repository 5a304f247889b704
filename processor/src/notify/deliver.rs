//! Delivery to apps' HTTP endpoints (CONTRACTS §8, `NOTIFY_*`): each endpoint has its own
//! worker in every processor, so a slow or dead endpoint holds up only its own deliveries;
//! the workers of all processors share the work through the database (`claim` skips what
//! another holds). A worker claims what is due, POSTs up to [`IN_FLIGHT`] at once, each signed
//! with the attempt's own timestamp, and records each outcome: 2xx delivered; anything else, a
//! redirect or `NOTIFY_TIMEOUT` retried after the next of `NOTIFY_RETRY_DELAYS`, and once
//! those are spent dead-lettered (`failed`) for `roomtape notifications replay`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use roomtape_shared::clock::Clock;
use roomtape_shared::db::deliveries::{self, Claimed, Settled};
use roomtape_shared::notify::{post, Attempt, Endpoint, Poster};
use roomtape_shared::shutdown::Shutdown;
use roomtape_shared::Chain;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::Endpoints;
use crate::metrics::ProcessorMetrics;

/// POSTs in flight per endpoint and processor.
pub const IN_FLIGHT: usize = 32;
/// How often a worker looks for due retries and for deliveries other processors' relays added.
pub const POLL: Duration = Duration::from_secs(1);
/// A claimed attempt is taken again by another worker only this long after its timeout, should
/// its worker never record the outcome (it died mid-attempt).
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// After a database error, before the next claim.
const PAUSE: Duration = Duration::from_secs(1);

/// Why a claim or an outcome could not be written; the delivery is tried again later.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error("database error")]
    Database(#[from] tokio_postgres::Error),
    #[error("no database connection")]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// Every endpoint's workers of this processor.
#[derive(Debug, Clone)]
pub struct Deliveries {
    pub pool: Pool,
    pub endpoints: Endpoints,
    pub poster: Poster,
    pub metrics: ProcessorMetrics,
    pub clock: Clock,
}

impl Deliveries {
    /// Delivers until `shutdown`; attempts in flight then finish (within `NOTIFY_TIMEOUT`) and
    /// their outcomes are recorded.
    pub async fn run(self, shutdown: Shutdown) {
        for endpoint in &self.endpoints.settings.endpoints {
            self.metrics.delivery_outcomes_at_zero(&endpoint.name);
        }
        let workers = self.endpoints.settings.endpoints.iter().map(|endpoint| {
            let worker = Worker {
                shared: Arc::new(self.clone()),
                endpoint: Arc::new(endpoint.clone()),
                wake: self.endpoints.waker(&endpoint.name),
            };
            let span = tracing::info_span!("notify", endpoint = %endpoint.name);
            worker.run(shutdown.clone()).instrument(span)
        });
        futures_util::future::join_all(workers).await;
    }
}

/// One endpoint's worker.
struct Worker {
    shared: Arc<Deliveries>,
    endpoint: Arc<Endpoint>,
    wake: Arc<Notify>,
}

impl Worker {
    async fn run(self, shutdown: Shutdown) {
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        let mut attempts = JoinSet::new();
        while !shutdown.is_cancelled() {
            let free = slots.available_permits();
            let claimed = match self.claim(free).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(error = %Chain(&error), "could not claim notification deliveries");
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep(PAUSE) => {}
                    }
                    continue;
                }
            };
            let full = free > 0 && claimed.len() == free;
            for delivery in claimed {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                let shared = self.shared.clone();
                let endpoint = self.endpoint.clone();
                attempts.spawn(async move {
                    shared.attempt(&endpoint, delivery).await;
                    drop(slot);
                });
            }
            if full {
                // More may be due: claim again once slots free.
                attempts.join_next().await;
            } else {
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                    Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
                }
            }
            // Whatever else finished meanwhile frees its slot too, for one bigger claim.
            while attempts.try_join_next().is_some() {}
        }
        while attempts.join_next().await.is_some() {}
    }

    /// Claims up to `free` due deliveries of this endpoint (none when `free` is 0).
    async fn claim(&self, free: usize) -> Result<Vec<Claimed>, DeliveryError> {
        if free == 0 {
            return Ok(Vec::new());
        }
        let shared = &self.shared;
        let now = shared.clock.now();
        let lease = shared.endpoints.settings.timeout + LEASE_MARGIN;
        let client = shared.pool.get().await?;
        let claimed = deliveries::claim(
            &client,
            &self.endpoint.name,
            now.into(),
            (now + lease).into(),
            free as i64,
        )
        .await?;
        Ok(claimed)
    }
}

impl Deliveries {
    /// One attempt of one delivery, and its outcome recorded.
    async fn attempt(&self, endpoint: &Endpoint, delivery: Claimed) {
        let span = tracing::info_span!(
            "delivery",
            notification_id = %delivery.notification_id,
            attempt = delivery.attempt
        );
        async {
            let body = match serde_json::to_vec(&delivery.body) {
                Ok(body) => body,
                Err(error) => {
                    // A JSON value always serialises; kept as a refusal rather than a panic.
                    tracing::error!(error = %error, "could not encode a notification");
                    return;
                }
            };
            let started = Instant::now();
            let timestamp = self.clock.now_unix();
            let attempt = post(
                &self.poster,
                &endpoint.url,
                &endpoint.secret,
                &delivery.notification_id,
                timestamp,
                body,
            )
            .await;
            let settled = self.settle(&attempt, delivery.attempt);
            self.metrics
                .delivery(&endpoint.name, outcome(&settled), started.elapsed());
            log(&delivery, &settled);
            if let Err(error) = self.record(delivery.id, &settled).await {
                // The lease runs out and the delivery is tried again: at least once.
                tracing::warn!(error = %Chain(&error), "could not record a delivery's outcome");
            }
        }
        .instrument(span)
        .await
    }

    /// What an attempt's result means for its delivery, by the schedule.
    fn settle(&self, attempt: &Attempt, number: i32) -> Settled {
        let status = attempt.status();
        let Some(error) = attempt.problem() else {
            return Settled::Delivered {
                status: status.unwrap_or_default(),
            };
        };
        let delays = &self.endpoints.settings.retry_delays;
        match usize::try_from(number - 1).ok().and_then(|i| delays.get(i)) {
            Some(delay) => Settled::Retry {
                status,
                error,
                at: at(self.clock, *delay),
            },
            None => Settled::Failed { status, error },
        }
    }

    async fn record(&self, id: i64, settled: &Settled) -> Result<(), DeliveryError> {
        let client = self.pool.get().await?;
        deliveries::settle(&client, id, settled, at(self.clock, Duration::ZERO)).await?;
        Ok(())
    }
}

/// The clock's now plus `after`.
fn at(clock: Clock, after: Duration) -> DateTime<Utc> {
    (clock.now() + after).into()
}

fn outcome(settled: &Settled) -> &'static str {
    match settled {
        Settled::Delivered { .. } => "delivered",
        Settled::Retry { .. } => "retried",
        Settled::Failed { .. } => "failed",
    }
}

fn log(delivery: &Claimed, settled: &Settled) {
    match settled {
        Settled::Delivered { .. } => tracing::debug!(kind = %delivery.kind, "delivered"),
        Settled::Retry { error, at, .. } => {
            tracing::info!(kind = %delivery.kind, %error, retry_at = %at, "not delivered; will retry")
        }
        Settled::Failed { error, .. } => tracing::warn!(
            kind = %delivery.kind,
            %error,
            "not delivered after the last retry; dead-lettered (roomtape notifications replay)"
        ),
    }
}
