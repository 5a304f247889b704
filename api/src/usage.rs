//! `GET /api/v1/usage` (CONTRACTS §7) and `GET /api/v1/retention`: what was recorded, by whom,
//! for how long and at what estimated cost; and the retention rules with what their next sweep
//! deletes. Static tokens read all of it, a LiveKit `roomAdmin` token its room's.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use roomtape_shared::clock::Clock;
use roomtape_shared::config::RetentionRules;
use roomtape_shared::db::recordings::Recording;
use roomtape_shared::library::Library;
use roomtape_shared::usage::{self, GroupBy, Prices, UsageGroup};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::query;

/// How far back usage looks when `from` is not given.
const DEFAULT_RANGE: chrono::Duration = chrono::Duration::days(30);

/// What costs are estimated with and what is kept how long: `USAGE_*` and
/// `RECORDING_RETENTION`.
#[derive(Debug, Clone)]
pub struct Costs {
    pub prices: Prices,
    pub retention: RetentionRules,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Start of the range: an RFC 3339 time, a date (`2026-01-01`, midnight UTC) or an age such
    /// as `30d` (default: 30 days before `to`).
    pub from: Option<String>,
    /// End of the range, excluded (default: now).
    pub to: Option<String>,
    /// `room` (default), `user`, `stream`, `kind`, `day` or `month`.
    pub group_by: Option<String>,
    /// Only this room's recordings.
    pub room: Option<String>,
}

/// How the estimate was made: it is not a bill.
#[derive(Debug, Serialize, ToSchema)]
pub struct Estimate {
    pub currency: String,
    pub note: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageAnswer {
    pub groups: Vec<UsageGroup>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub group_by: String,
    /// `null` when no price is configured (every `estimated_cost` is then `null`).
    pub estimate: Option<Estimate>,
}

/// Usage per group over a time range.
#[utoipa::path(
    get,
    path = "/api/v1/usage",
    tag = "usage",
    params(UsageQuery),
    responses(
        (status = 200, body = UsageAnswer),
        (status = 400, description = "A query value is invalid; the message names it", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`forbidden`: a LiveKit token without roomAdmin for a room", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []), ("livekit" = []))
)]
pub async fn usage(
    caller: Caller,
    library: web::Data<Library>,
    costs: web::Data<Costs>,
    clock: web::Data<Clock>,
    params: web::Query<UsageQuery>,
) -> Result<HttpResponse, ApiError> {
    let room = caller.permissions.usage_of(params.room.as_deref())?;
    let now = DateTime::<Utc>::from(clock.now());
    let to = match params.to.as_deref() {
        Some(text) => query::instant("to", text, now)?,
        None => now,
    };
    let from = match params.from.as_deref() {
        Some(text) => query::instant("from", text, now)?,
        None => to - DEFAULT_RANGE,
    };
    if from >= to {
        return Err(ApiError::invalid("from", "must be before to"));
    }
    if to - from > usage::MAX_RANGE {
        return Err(ApiError::invalid(
            "from",
            "the range may be at most 5 years (366 × 5 days)",
        ));
    }
    let group_by: GroupBy = params
        .group_by
        .as_deref()
        .unwrap_or("room")
        .parse()
        .map_err(|e| ApiError::invalid("group_by", e))?;
    let records = library.usage(from, to, room.as_deref()).await?;
    let prices = &costs.prices;
    Ok(HttpResponse::Ok().json(UsageAnswer {
        groups: usage::summarize(&records, from, to, group_by, prices),
        from,
        to,
        group_by: group_by.as_str().to_owned(),
        estimate: prices.any().then(|| Estimate {
            currency: prices.currency.clone(),
            note: usage::ESTIMATE_NOTE.to_owned(),
        }),
    }))
}

/// One retention rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rule {
    /// A room-name pattern (`*`, `?`).
    pub pattern: String,
    /// How long a finished recording of a matching room is kept.
    pub keep: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionAnswer {
    /// `RECORDING_RETENTION`, first match wins; empty: nothing is deleted by itself.
    pub rules: Vec<Rule>,
    /// What the next sweep deletes, as of now, oldest first.
    pub due: Vec<Recording>,
    /// Their files' bytes.
    pub bytes: i64,
}

/// The retention rules and what their next sweep deletes.
#[utoipa::path(
    get,
    path = "/api/v1/retention",
    tag = "usage",
    responses(
        (status = 200, body = RetentionAnswer),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`forbidden`: a LiveKit token without roomAdmin for a room", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []), ("livekit" = []))
)]
pub async fn retention(
    caller: Caller,
    library: web::Data<Library>,
    costs: web::Data<Costs>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, ApiError> {
    let room = caller.permissions.usage_of(None)?;
    let now = DateTime::<Utc>::from(clock.now());
    let due: Vec<Recording> = library
        .due(&costs.retention, now)
        .await?
        .into_iter()
        .filter(|r| room.as_ref().is_none_or(|room| &r.room_name == room))
        .collect();
    // A one-room caller sees the rule that keeps its room, not the other rooms' patterns.
    let rules = match &room {
        Some(room) => costs.retention.rule_for(room).into_iter().collect(),
        None => costs.retention.describe(),
    };
    let rules = rules
        .into_iter()
        .map(|(pattern, keep)| Rule {
            pattern,
            keep: humantime::format_duration(keep).to_string(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(RetentionAnswer {
        bytes: due.iter().filter_map(|r| r.file_size_bytes).sum(),
        rules,
        due,
    }))
}
