//! `/api/v1/rooms`: LiveKit rooms with their viewer counts.

use actix_web::{web, HttpResponse};
use deadpool_postgres::Pool;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::db::{self, Room};
use crate::error::{ApiError, ErrorBody};
use crate::grants::Action;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoomsQuery {
    /// `active` or `finished` (default: both).
    pub status: Option<String>,
}

/// Rooms, most recently started first.
#[utoipa::path(
    get,
    path = "/api/v1/rooms",
    tag = "rooms",
    params(RoomsQuery),
    responses(
        (status = 200, body = [Room]),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`forbidden`: a LiveKit token without the grant, which the message names", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []), ("livekit" = []))
)]
pub async fn list(
    caller: Caller,
    pool: web::Data<Pool>,
    params: web::Query<RoomsQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.check(Action::ListRooms)?;
    let status = params.status.as_deref();
    if let Some(other) = status.filter(|s| !matches!(*s, "active" | "finished")) {
        return Err(ApiError::invalid(
            "status",
            format!("{other:?} is not active or finished"),
        ));
    }
    let client = pool.get().await?;
    let rooms = db::rooms(&client, status).await?;
    Ok(HttpResponse::Ok().json(rooms))
}
