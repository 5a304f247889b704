//! `GET /api/v1/openapi.json`: the OpenAPI 3 document, generated from the handlers' annotations.

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use roomtape_shared::db::assets::Asset;
use roomtape_shared::db::recordings::{Kind, Recording, Status};

use crate::control::{ControlAnswer, StartRequest};
use crate::db::Room;
use crate::error::{ErrorBody, ErrorDetail};
use crate::grants::Capability;
use crate::livekit_egress::{EgressFunctionAnswer, EgressFunctionRequest};
use crate::me::Me;
use crate::notifications::NotificationsPage;
use crate::recordings::{DownloadLink, Page, RecordingDetails, RoomRecording};
use crate::usage::{Estimate, RetentionAnswer, Rule, UsageAnswer};
use roomtape_shared::db::deliveries::{Delivery, DeliveryStatus, EndpointHealth};
use roomtape_shared::usage::UsageGroup;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "roomtape API",
        description = "Recordings and rooms of a LiveKit deployment. Bearer tokens of two kinds: \
            the static tokens of `API_TOKENS`, `read` (lists, details, download links) or `write` \
            (everything); and LiveKit access tokens minted by the app with a configured LiveKit \
            key pair, whose `video` grant decides: `roomRecord` starts, stops and reads (only \
            `room`'s when set), `roomAdmin` with `room` reads and deletes that room's recordings, \
            `roomJoin` with `room` reads that room's ready recordings, `roomList` lists rooms. \
            Anything else is 403 `forbidden`, naming the grant needed. `GET /api/v1/me` says \
            what a token may do."
    ),
    paths(
        crate::recordings::room_recordings,
        crate::recordings::list,
        crate::recordings::details,
        crate::recordings::download,
        crate::recordings::playlist,
        crate::recordings::delete,
        crate::control::start,
        crate::control::stop,
        crate::livekit_egress::start,
        crate::rooms::list,
        crate::notifications::list,
        crate::me::me,
        crate::usage::usage,
        crate::usage::retention,
        document,
        healthz,
        readyz,
        metrics,
    ),
    components(schemas(
        RoomRecording,
        Recording,
        Status,
        Kind,
        UsageAnswer,
        UsageGroup,
        Estimate,
        RetentionAnswer,
        Rule,
        RecordingDetails,
        Asset,
        DownloadLink,
        Page,
        Room,
        ErrorBody,
        ErrorDetail,
        StartRequest,
        ControlAnswer,
        EgressFunctionRequest,
        EgressFunctionAnswer,
        NotificationsPage,
        Delivery,
        DeliveryStatus,
        EndpointHealth,
        Me,
        Capability
    )),
    modifiers(&BearerAuth)
)]
#[derive(Debug)]
pub struct ApiDoc;

#[derive(Debug)]
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A static token of API_TOKENS (scope read or write)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "livekit",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A LiveKit access token (HS256, iss = a configured LiveKit API key); \
                         its video grant decides what it may do",
                    ))
                    .build(),
            ),
        );
    }
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3 document")))]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

// The operational routes are served by `roomtape_shared::http`; these describe them.

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up")))]
#[allow(dead_code)]
fn healthz() {}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready"), (status = 503, description = "Not ready, and why")))]
#[allow(dead_code)]
fn readyz() {}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "The Prometheus text format")))]
#[allow(dead_code)]
fn metrics() {}
