//! `/healthz`, `/readyz` and `/metrics`, served by every long-running binary (CONTRACTS §2).

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use futures_util::future::BoxFuture;
use prometheus_client::registry::Registry;
use serde_json::json;

/// Answers whether the process can do its work right now; `Err` says why not.
pub type ReadinessCheck = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// What the operational endpoints read.
#[derive(Clone)]
pub struct OpsState {
    pub registry: Arc<Registry>,
    pub readiness: ReadinessCheck,
}

impl std::fmt::Debug for OpsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsState").finish_non_exhaustive()
    }
}

/// Adds the three routes; the caller's app must hold `web::Data<OpsState>`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(state: web::Data<OpsState>) -> HttpResponse {
    match (state.readiness)().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready"})),
        Err(reason) => HttpResponse::ServiceUnavailable()
            .json(json!({"status": "not_ready", "reason": reason})),
    }
}

async fn metrics(state: web::Data<OpsState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::render(&state.registry))
}
