//! Builds the ingestor from its settings: the publisher pool, the verifier, admission and the
//! HTTP server.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App};
use futures_util::FutureExt;
use roomtape_shared::http::{self as ops, HttpService, OpsState, ServerOptions};
use roomtape_shared::metrics;
use roomtape_shared::shutdown::Shutdown;

use crate::admission::Admission;
use crate::config::IngestorSettings;
use crate::dedupe::RecentIds;
use crate::metrics::IngestorMetrics;
use crate::queue::publish::Publisher;
use crate::webhook::handler::{self, UnauthenticatedLog, WebhookState};
use crate::webhook::verify::Verifier;
use roomtape_shared::clock::Clock;

/// At 2,000 events/s, two minutes of event ids: about 25 MiB (fingerprint, time, order).
const DEDUPE_CAPACITY: usize = 250_000;
/// At most one log line per this, per kind of unauthenticated refusal (401, 415).
const UNAUTHENTICATED_LOG_EVERY: Duration = Duration::from_secs(10);
/// How long in-flight requests get to finish on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// A built, bound, not yet running ingestor.
#[derive(Debug)]
pub struct Application {
    http: HttpService,
    publisher: Arc<Publisher>,
}

impl Application {
    /// Binds `settings.bind` (port 0 picks a free port) and wires everything up. The broker is
    /// connected in the background: the ingestor starts, and `/readyz` says when it can publish.
    pub fn build(settings: IngestorSettings, clock: Clock) -> std::io::Result<Self> {
        let mut registry = metrics::registry();
        let ingestor_metrics = IngestorMetrics::register(&mut registry);
        let workers = settings.workers;
        let publisher = Arc::new(Publisher::new(
            settings.amqp.clone(),
            settings.confirm_timeout,
            settings.publish_linger,
            settings.publish_channels,
            workers,
            ingestor_metrics.clone(),
        ));

        let webhook = web::Data::new(WebhookState {
            verifier: Verifier::new(&settings.keys, clock),
            publisher: publisher.clone(),
            recent: RecentIds::new(settings.dedupe_window, DEDUPE_CAPACITY),
            admission: Admission::new(settings.max_in_flight, ingestor_metrics.clone()),
            metrics: ingestor_metrics,
            max_body_bytes: settings.max_body_bytes,
            body_timeout: settings.body_timeout,
            unauthenticated_log: UnauthenticatedLog::new(UNAUTHENTICATED_LOG_EVERY),
        });
        let readiness_publisher = publisher.clone();
        let ops_state = web::Data::new(OpsState {
            registry: Arc::new(registry),
            readiness: Arc::new(move || {
                let unready = readiness_publisher.unready_reason();
                async move { unready.map_or(Ok(()), |reason| Err(reason.to_owned())) }.boxed()
            }),
        });

        let options = ServerOptions {
            bind: settings.bind,
            workers: Some(workers),
            shutdown_grace: SHUTDOWN_GRACE,
        };
        let worker_publisher = publisher.clone();
        let http = HttpService::bind(options, move || {
            // Runs once on each worker's thread: its broker connection lives there too.
            worker_publisher.attach_worker();
            App::new()
                .app_data(webhook.clone())
                .app_data(ops_state.clone())
                .route("/webhooks/livekit", web::post().to(handler::receive))
                // The path the Django deployment gave LiveKit.
                .route("/api/webhooks/livekit/", web::post().to(handler::receive))
                .route("/api/webhooks/livekit", web::post().to(handler::receive))
                .configure(ops::configure)
        })?;
        Ok(Self { http, publisher })
    }

    pub fn port(&self) -> u16 {
        self.http.port()
    }

    /// Serves until `shutdown`, then stops taking requests and lets in-flight ones (and their
    /// publishes) finish; each worker's broker connection ends with it. The broker's alarms are
    /// watched until the last request is answered.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> std::io::Result<()> {
        let watch_stops = shutdown.child_token();
        let alarm = tokio::spawn({
            let (publisher, stop) = (self.publisher, watch_stops.clone());
            async move { publisher.watch_alarm(stop).await }
        });
        let served = self.http.serve_until(shutdown.cancelled()).await;
        watch_stops.cancel();
        let _ = alarm.await;
        served
    }
}
