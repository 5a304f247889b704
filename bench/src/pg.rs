//! The benchmark's own PostgreSQL connection (one, no pool) and what it reads back: how many
//! events are recorded, and what they changed.

use anyhow::Context;
use tokio_postgres::{Client, NoTls};

/// Connects to `url`; the connection is driven by a background task.
pub async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("roomtape-bench: PostgreSQL connection: {error}");
        }
    });
    Ok(client)
}

/// Rows in `webhook_events`.
pub async fn recorded(client: &Client) -> anyhow::Result<u64> {
    let row = client
        .query_one("SELECT count(*) FROM webhook_events", &[])
        .await?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or_default())
}

/// The time between the first and the last event's `processed_at` (each its transaction's
/// start), in seconds.
pub async fn processed_span_secs(client: &Client) -> anyhow::Result<f64> {
    let row = client
        .query_one(
            "SELECT COALESCE(EXTRACT(EPOCH FROM max(processed_at) - min(processed_at)), 0)::float8
             FROM webhook_events",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Sequential scans per table (PostgreSQL's statistics, a few hundred ms behind), busiest first.
pub async fn scans(client: &Client) -> anyhow::Result<String> {
    let rows = client
        .query(
            "SELECT relname, seq_scan, seq_tup_read, COALESCE(idx_scan, 0), n_tup_ins + n_tup_upd
             FROM pg_stat_user_tables WHERE relname <> 'refinery_schema_history'
             ORDER BY n_tup_ins + n_tup_upd DESC",
            &[],
        )
        .await?;
    let tables: Vec<String> = rows
        .iter()
        .map(|row| {
            format!(
                "{} {} seq ({} rows read) / {} index scans, {} writes",
                row.get::<_, String>(0),
                row.get::<_, i64>(1),
                row.get::<_, i64>(2),
                row.get::<_, i64>(3),
                row.get::<_, i64>(4),
            )
        })
        .collect();
    Ok(tables.join("; "))
}

/// What the events changed: recordings by status, assets, rooms, participants.
pub async fn summary(client: &Client) -> anyhow::Result<String> {
    let statuses = client
        .query(
            "SELECT status, count(*) FROM recordings GROUP BY status ORDER BY status",
            &[],
        )
        .await?;
    let statuses: Vec<String> = statuses
        .iter()
        .map(|row| format!("{} {}", row.get::<_, String>(0), row.get::<_, i64>(1)))
        .collect();
    let counts = client
        .query_one(
            "SELECT (SELECT count(*) FROM assets), (SELECT count(*) FROM rooms),
                    (SELECT count(*) FROM rooms WHERE status = 'finished'),
                    (SELECT count(*) FROM room_participants)",
            &[],
        )
        .await?;
    Ok(format!(
        "recordings: {}; assets {}; rooms {} ({} finished); participants {}",
        if statuses.is_empty() {
            "none".to_owned()
        } else {
            statuses.join(", ")
        },
        counts.get::<_, i64>(0),
        counts.get::<_, i64>(1),
        counts.get::<_, i64>(2),
        counts.get::<_, i64>(3),
    ))
}
