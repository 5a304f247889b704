//! Builds the processor from its settings: schema, database pool, buckets, the event consumer
//! and the ops server (`/healthz`, `/readyz`, `/metrics`).

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use deadpool_postgres::Pool;
use futures_util::FutureExt;
use roomtape_shared::config::ProcessorSettings;
use roomtape_shared::http::{self as ops, OpsState, ReadinessCheck};
use roomtape_shared::shutdown::Shutdown;
use roomtape_shared::{db, metrics};

use crate::consume::{self, ConsumerSettings};
use crate::events::EventProcessor;
use crate::metrics::ProcessorMetrics;
use crate::storage::objects::Buckets;

/// How long the ops server gets to answer in-flight requests on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the processor could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database migrations failed: {0}")]
    Migrate(#[from] db::MigrateError),
    #[error("cannot build the database pool: {0}")]
    Pool(#[from] deadpool_postgres::BuildError),
    #[error("cannot bind the ops listener: {0}")]
    Bind(#[from] std::io::Error),
}

/// A built, bound, not yet running processor.
pub struct Application {
    port: u16,
    server: Server,
    events: Arc<EventProcessor>,
    consumer: ConsumerSettings,
    metrics: ProcessorMetrics,
    consuming: Arc<AtomicBool>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Migrates the database and binds the ops listener. The broker is connected when running:
    /// `/readyz` tells when the processor is consuming.
    pub async fn build(settings: ProcessorSettings) -> Result<Self, StartupError> {
        let applied = db::migrate(&settings.database).await?;
        tracing::info!(applied, "database schema is up to date");
        let pool = db::pool(&settings.database)?;
        let mut registry = metrics::registry();
        let processor_metrics = ProcessorMetrics::register(&mut registry);
        let events = Arc::new(EventProcessor::new(
            pool.clone(),
            Buckets::new(&settings.storage),
            processor_metrics.clone(),
        ));
        let consuming = Arc::new(AtomicBool::new(false));
        let ops_state = web::Data::new(OpsState {
            registry: Arc::new(registry),
            readiness: readiness(pool, consuming.clone()),
        });
        let listener = TcpListener::bind(settings.bind)?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(ops_state.clone())
                .configure(ops::configure)
        })
        .listen(listener)?
        .workers(1)
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
        .run();
        Ok(Self {
            port,
            server,
            events,
            consumer: ConsumerSettings {
                amqp: settings.amqp,
                prefetch: settings.prefetch,
                concurrency: settings.concurrency,
            },
            metrics: processor_metrics,
            consuming,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Consumes until `shutdown`; then stops taking deliveries, finishes and acks what is in
    /// flight, closes the broker connection and the ops server.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> std::io::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        consume::run(
            self.events,
            self.consumer,
            self.metrics,
            self.consuming,
            shutdown,
        )
        .await;
        handle.stop(true).await;
        server.await.map_err(std::io::Error::other)?
    }
}

/// Ready when a consumer is attached and the database answers.
fn readiness(pool: Pool, consuming: Arc<AtomicBool>) -> ReadinessCheck {
    Arc::new(move || {
        let pool = pool.clone();
        let consuming = consuming.load(Ordering::SeqCst);
        async move {
            if !consuming {
                return Err("not consuming: broker unreachable".to_owned());
            }
            let client = pool.get().await.map_err(|e| format!("database: {e}"))?;
            client
                .simple_query("SELECT 1")
                .await
                .map_err(|e| format!("database: {e}"))?;
            Ok(())
        }
        .boxed()
    })
}
