//! Builds the processor from its settings: schema, database pool, buckets, LiveKit client, the
//! two consumers (events, commands), the reconciler, the pruner, the notification relay, the
//! endpoints' delivery workers and the ops server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App};
use deadpool_postgres::Pool;
use futures_util::FutureExt;
use roomtape_shared::http::{self as ops, HttpService, OpsState, ReadinessCheck, ServerOptions};
use roomtape_shared::shutdown::Shutdown;
use roomtape_shared::{db, metrics};

use roomtape_shared::clock::Clock;
use roomtape_shared::library::Library;
use roomtape_shared::livekit::EgressClient;
use roomtape_shared::notify::Poster;
use roomtape_shared::storage::ObjectStore;

use crate::commands::CommandProcessor;
use crate::config::ProcessorSettings;
use crate::egress::EgressLifecycle;
use crate::events::EventProcessor;
use crate::gauges::StoreGauges;
use crate::metrics::ProcessorMetrics;
use crate::notify::{Deliveries, Endpoints, Relay};
use crate::reconcile::Reconciler;
use crate::recording_retention::RecordingSweeper;
use crate::retention::Pruner;
use crate::thumbnail::Thumbnails;
use crate::worker::{self, ConsumerSettings};

/// How long the ops server gets to answer in-flight requests on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the processor could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database migrations failed")]
    Migrate(#[from] db::MigrateError),
    #[error("cannot build the database pool")]
    Pool(#[from] deadpool_postgres::BuildError),
    #[error("cannot bind the ops listener")]
    Bind(#[from] std::io::Error),
    #[error("cannot build the LiveKit client")]
    LiveKitClient(#[from] roomtape_shared::livekit::ClientError),
    #[error(transparent)]
    NotifyClient(#[from] roomtape_shared::notify::PosterError),
}

/// Whether each consumer is attached right now, for `/readyz`.
#[derive(Debug, Clone, Default)]
struct Consuming {
    events: Arc<AtomicBool>,
    commands: Arc<AtomicBool>,
}

/// A built, bound, not yet running processor.
#[derive(Debug)]
pub struct Application {
    http: HttpService,
    events: Arc<EventProcessor>,
    commands: Arc<CommandProcessor>,
    reconciler: Reconciler,
    pruner: Pruner,
    sweeper: RecordingSweeper,
    relay: Relay,
    deliveries: Deliveries,
    /// Read from the database on an interval, with their pool and `PROCESSOR_STUCK_AFTER`.
    gauges: (StoreGauges, Pool, Duration),
    consumer: ConsumerSettings,
    metrics: ProcessorMetrics,
    consuming: Consuming,
}

impl Application {
    /// Migrates the database and binds the ops listener. The broker is connected when running:
    /// `/readyz` tells when the processor is consuming.
    /// `clock` tells the reconciler what time it is.
    pub async fn build(settings: ProcessorSettings, clock: Clock) -> Result<Self, StartupError> {
        let applied = db::migrate(&settings.database).await?;
        tracing::info!(applied, "database schema is up to date");
        let pool = db::pool(&settings.database)?;
        let mut registry = metrics::registry();
        let processor_metrics = ProcessorMetrics::register(&mut registry);
        let gauges = (
            StoreGauges::register(
                &mut registry,
                settings
                    .notify
                    .endpoints
                    .iter()
                    .map(|e| e.name.clone())
                    .collect(),
            ),
            pool.clone(),
            settings.stuck_after,
        );
        let egress = EgressClient::new(settings.livekit.clone())?;
        let objects = ObjectStore::new(&settings.storage);
        let sweeper = RecordingSweeper {
            pool: pool.clone(),
            library: Library::new(pool.clone(), objects.clone()),
            rules: settings.recording_retention.clone(),
            every: settings.recording_retention_interval,
            clock,
            metrics: processor_metrics.clone(),
        };
        let thumbnails = Thumbnails::new(objects.clone(), settings.thumbnails.clone());
        let lifecycle = EgressLifecycle::new(
            pool.clone(),
            objects,
            processor_metrics.clone(),
            settings.probe,
            thumbnails.clone(),
        );
        let events = Arc::new(EventProcessor::new(
            pool.clone(),
            lifecycle,
            settings.auto_record.clone(),
            settings.concurrency,
        ));
        let commands = Arc::new(
            CommandProcessor::new(
                pool.clone(),
                egress.clone(),
                settings.storage.clone(),
                settings.filepath_template.clone(),
                settings.reply_queues.clone(),
                settings.command_start_deadline,
                clock,
            )
            .with_thumbnails(thumbnails),
        );
        let reconciler = Reconciler {
            pool: pool.clone(),
            egress,
            amqp: settings.amqp.clone(),
            every: settings.reconcile_interval,
            after: settings.reconcile_after,
            clock,
        };
        let pruner = Pruner {
            pool: pool.clone(),
            retention: settings.webhook_events_retention,
            clock,
        };
        let endpoints = Endpoints::new(settings.notify.clone());
        let relay = Relay {
            pool: pool.clone(),
            amqp: settings.amqp.clone(),
            metrics: processor_metrics.clone(),
            endpoints: endpoints.clone(),
            clock,
        };
        let deliveries = Deliveries {
            pool: pool.clone(),
            endpoints,
            poster: Poster::new(settings.notify.timeout)?,
            metrics: processor_metrics.clone(),
            clock,
        };
        let consuming = Consuming::default();
        let ops_state = web::Data::new(OpsState {
            registry: Arc::new(registry),
            readiness: readiness(pool, consuming.clone()),
        });
        let options = ServerOptions {
            bind: settings.bind,
            workers: Some(1),
            shutdown_grace: SHUTDOWN_GRACE,
        };
        let http = HttpService::bind(options, move || {
            App::new()
                .app_data(ops_state.clone())
                .configure(ops::configure)
        })?;
        Ok(Self {
            http,
            events,
            commands,
            reconciler,
            pruner,
            sweeper,
            relay,
            deliveries,
            gauges,
            consumer: ConsumerSettings {
                amqp: settings.amqp,
                prefetch: settings.prefetch,
                concurrency: settings.concurrency,
                batch_wait: settings.batch_wait,
            },
            metrics: processor_metrics,
            consuming,
        })
    }

    pub fn port(&self) -> u16 {
        self.http.port()
    }

    /// Consumes until `shutdown`; then stops taking deliveries, finishes and acks what is in
    /// flight, closes the broker connections and the ops server.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> std::io::Result<()> {
        let events = worker::run(
            self.events,
            self.consumer.clone(),
            self.metrics.clone(),
            self.consuming.events,
            shutdown.clone(),
        );
        let commands = worker::run(
            self.commands,
            self.consumer,
            self.metrics,
            self.consuming.commands,
            shutdown.clone(),
        );
        let (gauges, pool, stuck_after) = self.gauges;
        let work = async {
            tokio::join!(
                events,
                commands,
                self.reconciler.run(shutdown.clone()),
                self.pruner.run(shutdown.clone()),
                self.sweeper.run(shutdown.clone()),
                self.relay.run(shutdown.clone()),
                self.deliveries.run(shutdown.clone()),
                gauges.run(pool, stuck_after, shutdown)
            );
        };
        // The ops port answers until the work is done, so `/readyz` tells the drain.
        self.http.serve_until(work).await
    }
}

/// Ready when both consumers are attached and the database answers.
fn readiness(pool: Pool, consuming: Consuming) -> ReadinessCheck {
    Arc::new(move || {
        let pool = pool.clone();
        let attached =
            consuming.events.load(Ordering::SeqCst) && consuming.commands.load(Ordering::SeqCst);
        async move {
            if !attached {
                return Err("not consuming: broker unreachable".to_owned());
            }
            roomtape_shared::db::answers(&pool).await
        }
        .boxed()
    })
}
