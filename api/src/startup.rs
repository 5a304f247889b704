//! Builds the API from its settings: the database pool, the recording library, the broker
//! client for start and stop, the tokens, CORS, metrics and the HTTP server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_cors::Cors;
use actix_web::dev::Service as _;
use actix_web::http::header;
use actix_web::{web, App};
use futures_util::FutureExt;
use roomtape_shared::clock::Clock;
use roomtape_shared::db;
use roomtape_shared::http::{self as ops, HttpService, OpsState, ServerOptions};
use roomtape_shared::library::Library;
use roomtape_shared::metrics;
use roomtape_shared::queue::commands::CommandClient;
use roomtape_shared::shutdown::Shutdown;
use roomtape_shared::storage::ObjectStore;

use crate::auth::Authenticator;
use crate::config::ApiSettings;
use crate::console::Console;
use crate::control::{self, Control};
use crate::error::ApiError;
use crate::livekit_egress;
use crate::metrics::ApiMetrics;
use crate::usage::{self, Costs};
use crate::{me, notifications, openapi, recordings, rooms};

/// How long in-flight requests get to finish on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How long browsers may cache a preflight answer.
const CORS_MAX_AGE_SECS: usize = 3600;

/// A built, bound, not yet running API.
#[derive(Debug)]
pub struct Application {
    http: HttpService,
}

fn cors(origins: &[String]) -> Cors {
    origins
        .iter()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
        .allowed_methods(["GET", "POST", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::ACCEPT,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("idempotency-key"),
        ])
        .max_age(CORS_MAX_AGE_SECS)
        // Other origins get no CORS headers (browsers then refuse); non-browser clients that
        // send an Origin anyway are still answered.
        .block_on_origin_mismatch(false)
}

impl Application {
    /// Binds `settings.bind` (port 0 picks a free port) and wires everything up. The database
    /// is connected on first use: the API starts, and `/readyz` says when it can answer.
    /// `clock` is what LiveKit access tokens' `exp`/`nbf` are checked against.
    pub fn build(settings: ApiSettings, clock: Clock) -> std::io::Result<Self> {
        let mut registry = metrics::registry();
        let api_metrics = ApiMetrics::register(&mut registry);
        let pool = db::pool(&settings.database).map_err(std::io::Error::other)?;
        let library = web::Data::new(Library::new(
            pool.clone(),
            ObjectStore::new(&settings.storage),
        ));
        if settings.livekit_tokens.keys.is_none() {
            tracing::info!("LiveKit access tokens are not accepted (API_LIVEKIT_TOKENS=off, or no LiveKit key configured)");
        }
        let authenticator = web::Data::new(Authenticator::new(
            &settings.tokens,
            &settings.livekit_tokens,
            clock,
        ));
        let control = web::Data::new(Control {
            commands: CommandClient::new(settings.amqp.clone(), "roomtape-api"),
            storage: settings.storage.clone(),
            filepath_template: settings.filepath_template.clone(),
            timeout: settings.command_timeout,
        });
        let readiness_pool = pool.clone();
        let ops_state = web::Data::new(OpsState {
            registry: Arc::new(registry),
            readiness: Arc::new(move || {
                let pool = readiness_pool.clone();
                async move { db::answers(&pool).await }.boxed()
            }),
        });
        let pool = web::Data::new(pool);
        let clock = web::Data::new(clock);
        let console = web::Data::new(Console::new(&settings.storage));
        let costs = web::Data::new(Costs {
            prices: settings.prices.clone(),
            retention: settings.retention.clone(),
        });
        let origins = settings.cors_origins.clone();

        let options = ServerOptions {
            bind: settings.bind,
            workers: None,
            shutdown_grace: SHUTDOWN_GRACE,
        };
        let http = HttpService::bind(options, move || {
            let api_metrics = api_metrics.clone();
            App::new()
                .wrap_fn(move |request, service| {
                    let started = Instant::now();
                    let api_metrics = api_metrics.clone();
                    let answer = service.call(request);
                    async move {
                        let response = answer.await?;
                        let request = response.request();
                        api_metrics.observe(
                            request.method(),
                            request.match_pattern().as_deref(),
                            response.status().as_u16(),
                            started.elapsed(),
                        );
                        Ok(response)
                    }
                })
                .wrap(cors(&origins))
                .app_data(
                    web::QueryConfig::default()
                        .error_handler(|error, _| ApiError::invalid("query", error).into()),
                )
                .app_data(
                    web::PathConfig::default()
                        .error_handler(|error, _| ApiError::invalid("path", error).into()),
                )
                .app_data(library.clone())
                .app_data(pool.clone())
                .app_data(authenticator.clone())
                .app_data(control.clone())
                .app_data(clock.clone())
                .app_data(ops_state.clone())
                .app_data(console.clone())
                .app_data(costs.clone())
                .service(
                    web::scope("/api/v1")
                        .route(
                            "/rooms/{room}/recordings/",
                            web::get().to(recordings::room_recordings),
                        )
                        .route("/recordings", web::get().to(recordings::list))
                        .route(
                            "/recordings/{egress_id}",
                            web::get().to(recordings::details),
                        )
                        .route(
                            "/recordings/{egress_id}",
                            web::delete().to(recordings::delete),
                        )
                        .route(
                            "/recordings/{egress_id}/download",
                            web::get().to(recordings::download),
                        )
                        .route(
                            "/recordings/{egress_id}/playlist.m3u8",
                            web::get().to(recordings::playlist),
                        )
                        .route(
                            "/rooms/{room}/start-recording/",
                            web::post().to(control::start),
                        )
                        .route(
                            "/rooms/{room}/stop-recording/",
                            web::post().to(control::stop),
                        )
                        .route("/rooms", web::get().to(rooms::list))
                        .route("/notifications", web::get().to(notifications::list))
                        .route("/me", web::get().to(me::me))
                        .route("/usage", web::get().to(usage::usage))
                        .route("/retention", web::get().to(usage::retention))
                        .route("/openapi.json", web::get().to(openapi::document)),
                )
                .route(
                    "/functions/v1/livekit-egress",
                    web::post().to(livekit_egress::start),
                )
                .configure(ops::configure)
                .configure(crate::console::configure)
        })?;
        Ok(Self { http })
    }

    pub fn port(&self) -> u16 {
        self.http.port()
    }

    /// Serves until `shutdown`, then stops taking requests and lets in-flight ones finish.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> std::io::Result<()> {
        self.http.serve_until(shutdown.cancelled()).await
    }
}
