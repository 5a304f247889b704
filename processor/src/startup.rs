//! Builds the processor from its settings: database pool, broker connection, ops server.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use deadpool_postgres::Pool;
use futures_util::FutureExt;
use lapin::Connection;
use roomtape_shared::config::ProcessorSettings;
use roomtape_shared::http::{self as ops, OpsState, ReadinessCheck};
use roomtape_shared::queue::{self, topology};
use roomtape_shared::shutdown::Shutdown;
use roomtape_shared::{db, metrics};

/// How long the ops server gets to answer in-flight requests on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the processor could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database migrations failed: {0}")]
    Migrate(#[from] db::MigrateError),
    #[error("cannot build the database pool: {0}")]
    Pool(#[from] deadpool_postgres::BuildError),
    #[error("cannot set up the broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("cannot bind the ops listener: {0}")]
    Bind(#[from] std::io::Error),
}

/// A built, bound, not yet running processor.
pub struct Application {
    port: u16,
    server: Server,
    connection: Arc<Connection>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Migrates the database, declares the topology and binds the ops listener.
    pub async fn build(settings: ProcessorSettings) -> Result<Self, StartupError> {
        let applied = db::migrate(&settings.database).await?;
        tracing::info!(applied, "database schema is up to date");
        let pool = db::pool(&settings.database)?;
        let connection = Arc::new(queue::connect(&settings.amqp, "roomtape-processor").await?);
        let channel = connection.create_channel().await?;
        topology::declare(&channel, &settings.amqp.retry_delays).await?;

        let registry = metrics::registry();
        let ops_state = web::Data::new(OpsState {
            registry: Arc::new(registry),
            readiness: readiness(pool, connection.clone()),
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
            connection,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs until `shutdown`, then stops and closes the broker connection.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> std::io::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        shutdown.cancelled().await;
        handle.stop(true).await;
        let _ = self.connection.close(200, "shutting down".into()).await;
        server.await.map_err(std::io::Error::other)?
    }
}

/// Ready when the broker connection is up and the database answers.
fn readiness(pool: Pool, connection: Arc<Connection>) -> ReadinessCheck {
    Arc::new(move || {
        let pool = pool.clone();
        let broker_up = connection.status().connected();
        async move {
            if !broker_up {
                return Err("broker connection is down".to_owned());
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
