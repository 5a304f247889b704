//! Recordings, rooms, the notification outbox and the endpoints' deliveries as the database has them, for dashboards and alerts: every processor
//! refreshes these gauges on an interval, so they agree across processors (query them with
//! `max`).

use std::time::Duration;

use deadpool_postgres::Pool;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use roomtape_shared::clock::Clock;
use roomtape_shared::db::recordings::Status;
use roomtape_shared::db::{deliveries, notifications, prepared};
use roomtape_shared::metrics::registered;
use roomtape_shared::shutdown::Shutdown;
use roomtape_shared::Chain;

/// How often the gauges are read from the database.
pub const REFRESH_EVERY: Duration = Duration::from_secs(30);

type StatusLabel = Vec<(&'static str, &'static str)>;

#[derive(Debug, Clone)]
pub struct StoreGauges {
    recordings: Family<StatusLabel, Gauge>,
    stuck: Family<StatusLabel, Gauge>,
    rooms_live: Gauge,
    room_participants: Gauge,
    outbox_depth: Gauge,
    outbox_oldest: Gauge<f64, std::sync::atomic::AtomicU64>,
    deliveries: Family<Vec<(&'static str, String)>, Gauge>,
    delivery_oldest: Family<Vec<(&'static str, String)>, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// The configured endpoints (`NOTIFY_ENDPOINTS`): each reads 0 when nothing of it waits.
    endpoints: Vec<String>,
}

impl StoreGauges {
    pub fn register(registry: &mut Registry, endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            recordings: registered(
                registry,
                "recordings",
                "Recordings by status, as stored",
                Family::default(),
            ),
            stuck: registered(
                registry,
                "recordings_stuck",
                "Recordings not final and unchanged for longer than PROCESSOR_STUCK_AFTER, by status",
                Family::default(),
            ),
            rooms_live: registered(
                registry,
                "rooms_live",
                "Rooms whose status is active",
                Gauge::default(),
            ),
            room_participants: registered(
                registry,
                "room_participants",
                "Participants counted in active rooms",
                Gauge::default(),
            ),
            outbox_depth: registered(
                registry,
                "notification_outbox_depth",
                "Notifications written and not relayed yet",
                Gauge::default(),
            ),
            outbox_oldest: registered(
                registry,
                "notification_outbox_oldest_seconds",
                "How long the oldest notification not relayed yet has waited",
                Gauge::default(),
            ),
            deliveries: registered(
                registry,
                "notification_deliveries_stored",
                "Deliveries to HTTP endpoints pending or dead-lettered (failed, not replayed), by endpoint and status",
                Family::default(),
            ),
            delivery_oldest: registered(
                registry,
                "notification_delivery_oldest_pending_seconds",
                "How long the oldest delivery not yet made has waited, by endpoint",
                Family::default(),
            ),
        }
    }

    /// Refreshes now and then every [`REFRESH_EVERY`] until `shutdown`.
    pub async fn run(self, pool: Pool, stuck_after: Duration, shutdown: Shutdown) {
        loop {
            if let Err(error) = self.refresh(&pool, stuck_after).await {
                tracing::warn!(error = %Chain(&*error), "could not refresh the recording and room gauges");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(REFRESH_EVERY) => {}
            }
        }
    }

    async fn refresh(
        &self,
        pool: &Pool,
        stuck_after: Duration,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let client = pool.get().await?;
        let rows = prepared::query(
            &client,
            "SELECT status, count(*),
                    count(*) FILTER (WHERE recording_status_rank(status) < 4 AND NOT is_processed
                                     AND updated_at < now() - make_interval(secs => $1))
                 FROM recordings GROUP BY status",
            &[&stuck_after.as_secs_f64()],
        )
        .await?;
        for status in Status::ALL {
            let row = rows.iter().find(|row| row.get::<_, Status>(0) == status);
            let (all, stuck) = row.map_or((0, 0), |row| (row.get(1), row.get(2)));
            let label = vec![("status", status.as_str())];
            self.recordings.get_or_create(&label).set(all);
            if !status.is_final() {
                self.stuck.get_or_create(&label).set(stuck);
            }
        }
        let rooms = prepared::query_one(
            &client,
            "SELECT count(*), COALESCE(sum(participant_count), 0)::bigint
                 FROM rooms WHERE status = 'active'",
            &[],
        )
        .await?;
        self.rooms_live.set(rooms.get(0));
        self.room_participants.set(rooms.get(1));
        let (depth, oldest) = notifications::backlog(&client).await?;
        self.outbox_depth.set(depth);
        self.outbox_oldest.set(oldest);
        // A configured endpoint with nothing pending or failed reads 0; one no longer configured
        // shows only while deliveries of it remain.
        let health = deliveries::health(&client, Clock::System.now().into()).await?;
        self.deliveries.clear();
        self.delivery_oldest.clear();
        let configured = self.endpoints.iter().map(|name| (name.clone(), 0, 0, 0.0));
        let stored = health
            .into_iter()
            .map(|h| (h.endpoint, h.pending, h.failed, h.oldest_pending_seconds));
        for (endpoint, pending, failed, oldest) in configured.chain(stored) {
            let label = |status: &str| {
                vec![
                    ("endpoint", endpoint.clone()),
                    ("status", status.to_owned()),
                ]
            };
            self.deliveries
                .get_or_create(&label("pending"))
                .set(pending);
            self.deliveries.get_or_create(&label("failed")).set(failed);
            self.delivery_oldest
                .get_or_create(&vec![("endpoint", endpoint.clone())])
                .set(oldest);
        }
        Ok(())
    }
}
