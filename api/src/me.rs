//! `GET /api/v1/me`: who the token is and what it may do, so a page shows only what works.

use actix_web::HttpResponse;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{Caller, Kind};
use crate::error::ErrorBody;
use crate::grants::Capability;

/// The caller as the API sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// `static` (an `API_TOKENS` token) or `livekit` (a LiveKit access token).
    #[schema(value_type = String, example = "livekit")]
    pub kind: Kind,
    /// The static token's name, or the LiveKit token's `sub` (participant identity).
    pub identity: Option<String>,
    /// The room a LiveKit token's grant is for; `null`: every room (or a static token).
    pub room: Option<String>,
    /// What the token may do somewhere: `read`, `start`, `stop`, `delete`, `rooms`.
    pub can: Vec<Capability>,
}

/// The token's kind, identity, room and what it may do.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "meta",
    responses(
        (status = 200, body = Me),
        (status = 401, description = "Missing, unknown, bad or expired token", body = ErrorBody),
    ),
    security(("bearer" = []), ("livekit" = []))
)]
pub async fn me(caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(Me {
        kind: caller.kind,
        room: caller.permissions.room().map(str::to_owned),
        can: caller.permissions.can(),
        identity: caller.identity,
    })
}
