//! `roomtape notifications`: the deliveries to apps' HTTP endpoints (CONTRACTS §8) — list them
//! (with each endpoint's health), replay dead-lettered ones, and send an endpoint a signed test.

use chrono::Utc;
use roomtape_shared::clock::Clock;
use roomtape_shared::config::{DatabaseSettings, Env};
use roomtape_shared::db;
use roomtape_shared::db::deliveries::{self, Delivery, DeliveryFilter, DeliveryStatus};
use roomtape_shared::notify::{post, Attempt, Endpoint, NotifySettings, Poster};
use serde_json::json;

use crate::error::{CliError, EXIT_OK, EXIT_REFUSED};
use crate::output::{confirm, Output};

#[derive(Debug, clap::Subcommand)]
pub enum NotificationsCommand {
    /// Each endpoint's health, then its deliveries, newest first.
    List {
        /// Only this status: pending, delivered, failed (dead-lettered).
        #[arg(long)]
        status: Option<DeliveryStatus>,
        /// Only this endpoint (a name in NOTIFY_ENDPOINTS).
        #[arg(long)]
        endpoint: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Put dead-lettered deliveries back on a fresh retry schedule, due now.
    Replay {
        /// Only this endpoint's.
        #[arg(long)]
        endpoint: Option<String>,
        /// Only these deliveries (ids from `list`); without, every failed one (of the endpoint).
        ids: Vec<i64>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// POST a signed `notification.test` to an endpoint now and say what it answered.
    Test {
        /// A name in NOTIFY_ENDPOINTS.
        endpoint: String,
    },
}

pub async fn run(
    command: &NotificationsCommand,
    env: &Env,
    out: &mut Output<'_>,
) -> Result<u8, CliError> {
    match command {
        NotificationsCommand::List {
            status,
            endpoint,
            limit,
        } => {
            let client = database(env).await?;
            let filter = DeliveryFilter {
                status: *status,
                endpoint: endpoint.clone(),
                before: None,
                limit: *limit,
            };
            let health = deliveries::health(&client, Utc::now())
                .await
                .map_err(unavailable)?;
            let list = deliveries::list(&client, &filter)
                .await
                .map_err(unavailable)?;
            print_list(out, &health, &list);
            Ok(EXIT_OK)
        }
        NotificationsCommand::Replay { endpoint, ids, yes } => {
            let scope = match (endpoint, ids.is_empty()) {
                (_, false) => format!("{} delivery(ies)", ids.len()),
                (Some(endpoint), true) => format!("every failed delivery to {endpoint}"),
                (None, true) => "every failed delivery".to_owned(),
            };
            confirm(&format!("replay {scope}?"), *yes)?;
            let client = database(env).await?;
            let replayed = deliveries::replay(&client, endpoint.as_deref(), ids, Utc::now())
                .await
                .map_err(unavailable)?;
            if out.json {
                out.json_value(&json!({ "replayed": replayed }));
            } else {
                out.line(format!(
                    "replayed {replayed} delivery(ies): the processors send them now"
                ));
            }
            Ok(if replayed == 0 && !ids.is_empty() {
                EXIT_REFUSED
            } else {
                EXIT_OK
            })
        }
        NotificationsCommand::Test { endpoint } => test(env, endpoint, out).await,
    }
}

/// Sends `endpoint` a signed test notification, as the processors sign deliveries.
async fn test(env: &Env, name: &str, out: &mut Output<'_>) -> Result<u8, CliError> {
    let settings = NotifySettings::from_env(env)?;
    let endpoint = settings
        .endpoint(name)
        .ok_or_else(|| CliError::NoEndpoint(name.to_owned()))?;
    let attempt = send_test(&settings, endpoint).await?;
    let delivered = matches!(attempt, Attempt::Delivered { .. });
    if out.json {
        out.json_value(&json!({
            "endpoint": name,
            "delivered": delivered,
            "status": attempt.status(),
            "error": attempt.problem(),
        }));
    } else {
        let detail = attempt
            .problem()
            .unwrap_or_else(|| format!("answered {}", attempt.status().unwrap_or_default()));
        out.check(
            delivered,
            &format!("{name} ({})", endpoint.shown_url()),
            detail,
        );
    }
    Ok(if delivered { EXIT_OK } else { EXIT_REFUSED })
}

/// POSTs a `notification.test` to `endpoint`, signed with its secret; `doctor` uses it too.
pub async fn send_test(
    settings: &NotifySettings,
    endpoint: &Endpoint,
) -> Result<Attempt, CliError> {
    let poster = Poster::new(settings.timeout).map_err(|e| CliError::Unavailable(Box::new(e)))?;
    let now = Utc::now();
    let id = format!("notification.test:{}", now.timestamp_millis());
    let body = json!({
        "type": "notification.test",
        "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": {"endpoint": endpoint.name, "message": "a test from roomtape notifications test"},
    });
    let body = serde_json::to_vec(&body)?;
    Ok(post(
        &poster,
        &endpoint.url,
        &endpoint.secret,
        &id,
        Clock::System.now_unix(),
        body,
    )
    .await)
}

async fn database(env: &Env) -> Result<deadpool_postgres::Object, CliError> {
    let pool = db::pool(&DatabaseSettings::from_env(env)?)?;
    pool.get().await.map_err(unavailable)
}

fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> CliError {
    CliError::DatabaseUnavailable(Box::new(error))
}

fn print_list(out: &mut Output<'_>, health: &[deliveries::EndpointHealth], list: &[Delivery]) {
    if out.json {
        out.json_value(&json!({ "endpoints": health, "items": list }));
        return;
    }
    if health.is_empty() {
        out.line("every endpoint is up to date: nothing pending or failed");
    } else {
        let rows = health
            .iter()
            .map(|h| {
                vec![
                    h.endpoint.clone(),
                    h.pending.to_string(),
                    h.failed.to_string(),
                    format!("{:.0}s", h.oldest_pending_seconds),
                    h.last_error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        out.table(
            &["ENDPOINT", "PENDING", "FAILED", "OLDEST", "LAST ERROR"],
            rows,
        );
    }
    out.line("");
    if list.is_empty() {
        out.line("no deliveries match");
        return;
    }
    let rows = list
        .iter()
        .map(|d| {
            vec![
                d.id.to_string(),
                d.endpoint.clone(),
                d.kind.clone(),
                d.notification_id.clone(),
                d.status.as_str().to_owned(),
                d.attempts.to_string(),
                d.last_status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into()),
                d.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.table(
        &[
            "ID",
            "ENDPOINT",
            "TYPE",
            "WEBHOOK-ID",
            "STATUS",
            "ATTEMPTS",
            "LAST",
            "ERROR",
        ],
        rows,
    );
}
