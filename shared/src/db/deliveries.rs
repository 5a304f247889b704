//! `notification_deliveries` (migration V18): each notification's delivery to each HTTP
//! endpoint that wants it (CONTRACTS §8), as the processors' workers try it and as people see it
//! (`GET /api/v1/notifications`, `roomtape notifications`). Times come from the caller's clock,
//! so a test can move a retry's due time and its signature's timestamp together.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::{Error, Row};

use super::prepared;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not tried yet, or waiting for its next retry.
    Pending,
    /// An attempt got a 2xx.
    Delivered,
    /// Every attempt of the schedule was refused: dead-lettered until replayed.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    fn from_column(raw: &str) -> Self {
        match raw {
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            _ => Self::Pending,
        }
    }
}

impl std::str::FromStr for DeliveryStatus {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "failed" => Ok(Self::Failed),
            other => Err(format!(
                "{other:?} is not one of pending, delivered, failed"
            )),
        }
    }
}

/// Adds one pending delivery per (notification, endpoint) pair, due `now`; a pair already there
/// is left alone.
pub async fn add(
    client: &impl GenericClient,
    outbox_ids: &[i64],
    endpoints: &[&str],
    now: DateTime<Utc>,
) -> Result<u64, Error> {
    prepared::execute(
        client,
        "INSERT INTO notification_deliveries (outbox_id, endpoint, next_attempt_at)
             SELECT outbox_id, endpoint, $3 FROM unnest($1::bigint[], $2::text[])
                 AS pair (outbox_id, endpoint)
             ON CONFLICT (outbox_id, endpoint) DO NOTHING",
        &[&outbox_ids, &endpoints, &now],
    )
    .await
}

/// A delivery a worker has claimed for one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub id: i64,
    /// This attempt's number, from 1.
    pub attempt: i32,
    /// The `webhook-id`: the notification's id, the same on every attempt.
    pub notification_id: String,
    pub kind: String,
    pub body: Value,
}

/// Claims up to `limit` of `endpoint`'s deliveries due at `now`, oldest due first: counts the
/// attempt and moves each out of reach until `lease_until` (past the attempt's timeout), so
/// another worker takes it only if this one never records an outcome.
pub async fn claim(
    client: &impl GenericClient,
    endpoint: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Claimed>, Error> {
    let rows = prepared::query(
        client,
        "WITH due AS (
                SELECT id FROM notification_deliveries
                    WHERE endpoint = $1 AND status = 'pending' AND next_attempt_at <= $2
                    ORDER BY next_attempt_at, id LIMIT $4
                    FOR UPDATE SKIP LOCKED)
            UPDATE notification_deliveries d
                SET attempts = d.attempts + 1, last_attempt_at = $2, next_attempt_at = $3
                FROM due, notification_outbox o
                WHERE d.id = due.id AND o.id = d.outbox_id
                RETURNING d.id, d.attempts, o.notification_id, o.type, o.body",
        &[&endpoint, &now, &lease_until, &limit],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|row| Claimed {
            id: row.get(0),
            attempt: row.get(1),
            notification_id: row.get(2),
            kind: row.get(3),
            body: row.get(4),
        })
        .collect())
}

/// What an attempt settled for its delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    Delivered {
        status: u16,
    },
    /// Tried again at `at`.
    Retry {
        status: Option<u16>,
        error: String,
        at: DateTime<Utc>,
    },
    /// The schedule is spent.
    Failed {
        status: Option<u16>,
        error: String,
    },
}

/// Records an attempt's outcome at `now`.
pub async fn settle(
    client: &impl GenericClient,
    id: i64,
    settled: &Settled,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let (status, code, error, next): (&str, Option<u16>, Option<&str>, Option<DateTime<Utc>>) =
        match settled {
            Settled::Delivered { status } => ("delivered", Some(*status), None, None),
            Settled::Retry { status, error, at } => ("pending", *status, Some(error), Some(*at)),
            Settled::Failed { status, error } => ("failed", *status, Some(error), None),
        };
    let code = code.map(i32::from);
    prepared::execute(
        client,
        "UPDATE notification_deliveries
             SET status = $2, last_status = $3, last_error = $4,
                 next_attempt_at = COALESCE($5, next_attempt_at),
                 finished_at = CASE WHEN $2 = 'pending' THEN NULL ELSE $6::timestamptz END
             WHERE id = $1",
        &[&id, &status, &code, &error, &next, &now],
    )
    .await
    .map(drop)
}

/// One delivery as people see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub id: i64,
    /// The `webhook-id` the endpoint receives.
    pub notification_id: String,
    pub endpoint: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    /// The last answer's HTTP status; `null` when it got none (timeout, no connection).
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When the next attempt is due, while `pending`.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When an attempt got a 2xx.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When the schedule was spent (`failed`).
    pub dead_lettered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl Delivery {
    fn from_row(row: &Row) -> Self {
        let status = DeliveryStatus::from_column(row.get("status"));
        Self {
            id: row.get("id"),
            notification_id: row.get("notification_id"),
            endpoint: row.get("endpoint"),
            kind: row.get("type"),
            status,
            attempts: row.get("attempts"),
            last_status: row.get("last_status"),
            last_error: row.get("last_error"),
            last_attempt_at: row.get("last_attempt_at"),
            next_attempt_at: (status == DeliveryStatus::Pending)
                .then(|| row.get("next_attempt_at")),
            delivered_at: (status == DeliveryStatus::Delivered)
                .then(|| row.get("finished_at"))
                .flatten(),
            dead_lettered_at: (status == DeliveryStatus::Failed)
                .then(|| row.get("finished_at"))
                .flatten(),
            created_at: row.get("created_at"),
        }
    }
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    pub endpoint: Option<String>,
    /// Only those older than this id (the next page).
    pub before: Option<i64>,
    pub limit: i64,
}

/// Deliveries, newest first.
pub async fn list(
    client: &impl GenericClient,
    filter: &DeliveryFilter,
) -> Result<Vec<Delivery>, Error> {
    let status = filter.status.map(DeliveryStatus::as_str);
    let rows = prepared::query(
        client,
        "SELECT d.id, o.notification_id, d.endpoint, o.type, d.status, d.attempts,
                d.last_status, d.last_error, d.last_attempt_at, d.next_attempt_at,
                d.finished_at, d.created_at
             FROM notification_deliveries d JOIN notification_outbox o ON o.id = d.outbox_id
             WHERE ($1::text IS NULL OR d.status = $1)
               AND ($2::text IS NULL OR d.endpoint = $2)
               AND ($3::bigint IS NULL OR d.id < $3)
             ORDER BY d.id DESC LIMIT $4",
        &[&status, &filter.endpoint, &filter.before, &filter.limit],
    )
    .await?;
    Ok(rows.iter().map(Delivery::from_row).collect())
}

/// How one endpoint is doing, as the console and `roomtape notifications list` head it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct EndpointHealth {
    pub endpoint: String,
    pub pending: i64,
    /// Dead-lettered and not replayed (within the retention).
    pub failed: i64,
    /// Seconds the oldest pending delivery has waited since it was created (0 when none).
    pub oldest_pending_seconds: f64,
    /// The newest refused attempt's error, if any is pending or failed.
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
}

/// Every endpoint with deliveries pending or dead-lettered, by name (delivered ones are not
/// read: there may be millions, and only the two partial indexes are walked).
pub async fn health(
    client: &impl GenericClient,
    now: DateTime<Utc>,
) -> Result<Vec<EndpointHealth>, Error> {
    let rows = prepared::query(
        client,
        "SELECT endpoint,
                count(*) FILTER (WHERE status = 'pending'),
                count(*) FILTER (WHERE status = 'failed'),
                COALESCE(extract(epoch FROM $1 - min(created_at)
                    FILTER (WHERE status = 'pending')), 0)::float8,
                (array_agg(last_error ORDER BY last_attempt_at DESC)
                    FILTER (WHERE last_error IS NOT NULL))[1],
                max(last_attempt_at) FILTER (WHERE last_error IS NOT NULL)
             FROM notification_deliveries WHERE status IN ('pending', 'failed')
             GROUP BY endpoint ORDER BY endpoint",
        &[&now],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|row| EndpointHealth {
            endpoint: row.get(0),
            pending: row.get(1),
            failed: row.get(2),
            oldest_pending_seconds: row.get::<_, f64>(3).max(0.0),
            last_error: row.get(4),
            last_error_at: row.get(5),
        })
        .collect())
}

/// Puts dead-lettered deliveries back on a fresh schedule, due at once: all of them, one
/// endpoint's, or those with these ids. Returns how many. Due at `now` or, when earlier, when
/// the delivery failed: that time comes from a processor's clock, so a replay from a machine
/// whose clock runs ahead of the processors' is not held back by the difference.
pub async fn replay(
    client: &impl GenericClient,
    endpoint: Option<&str>,
    ids: &[i64],
    now: DateTime<Utc>,
) -> Result<u64, Error> {
    prepared::execute(
        client,
        "UPDATE notification_deliveries
             SET status = 'pending', attempts = 0, finished_at = NULL,
                 next_attempt_at = LEAST($3, COALESCE(finished_at, $3))
             WHERE status = 'failed'
               AND ($1::text IS NULL OR endpoint = $1)
               AND (cardinality($2::bigint[]) = 0 OR id = ANY($2))",
        &[&endpoint, &ids, &now],
    )
    .await
}
