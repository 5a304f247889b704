//! `GET /api/v1/notifications`: deliveries to apps' HTTP endpoints (CONTRACTS §8) and each
//! endpoint's health, for the console and for people asking why an app heard nothing. Static
//! tokens only: the records name endpoints and errors of the whole deployment.

use actix_web::{web, HttpResponse};
use chrono::Utc;
use deadpool_postgres::Pool;
use roomtape_shared::db::deliveries::{self, Delivery, DeliveryFilter, EndpointHealth};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::ReadAccess;
use crate::error::{ApiError, ErrorBody};
use crate::query;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationsQuery {
    /// `pending`, `delivered` or `failed` (dead-lettered); default all.
    pub status: Option<String>,
    /// One endpoint's (a name in `NOTIFY_ENDPOINTS`).
    pub endpoint: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Each endpoint with something pending or failed, and a page of deliveries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationsPage {
    pub endpoints: Vec<EndpointHealth>,
    pub items: Vec<Delivery>,
    pub next_cursor: Option<i64>,
}

/// Deliveries of notifications to HTTP endpoints.
#[utoipa::path(
    get,
    path = "/api/v1/notifications",
    tag = "notifications",
    params(NotificationsQuery),
    responses(
        (status = 200, body = NotificationsPage),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    _access: ReadAccess,
    pool: web::Data<Pool>,
    params: web::Query<NotificationsQuery>,
) -> Result<HttpResponse, ApiError> {
    let params = params.into_inner();
    let filter = DeliveryFilter {
        status: params
            .status
            .as_deref()
            .map(|s| s.parse().map_err(|e| ApiError::invalid("status", e)))
            .transpose()?,
        endpoint: params.endpoint,
        before: params.cursor.as_deref().map(query::cursor).transpose()?,
        limit: query::limit(params.limit.as_deref())?,
    };
    let client = pool.get().await?;
    let endpoints = deliveries::health(&client, Utc::now()).await?;
    let items = deliveries::list(&client, &filter).await?;
    let full = i64::try_from(items.len()).is_ok_and(|n| n == filter.limit);
    let next_cursor = items.last().filter(|_| full).map(|d| d.id);
    Ok(HttpResponse::Ok().json(NotificationsPage {
        endpoints,
        items,
        next_cursor,
    }))
}
