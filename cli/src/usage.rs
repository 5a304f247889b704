//! `roomtape usage`: what was recorded over a time range, per room, user, stream, kind, day or
//! month: recordings, minutes, bytes written and still stored, deletions, and the estimated
//! cost at the `USAGE_*` prices. The same figures as `GET /api/v1/usage`.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use roomtape_shared::config::Env;
use roomtape_shared::usage::{self, GroupBy, Prices};
use serde_json::json;

use crate::error::{CliError, EXIT_OK};
use crate::output::Output;
use crate::recordings::{library, size};

#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    /// room, user, stream, kind, day or month.
    #[arg(long, default_value = "room")]
    pub group_by: GroupBy,
    /// Start of the range, a date (2026-01-01, midnight UTC); default 30 days before --to.
    #[arg(long, value_parser = parse_day)]
    pub from: Option<DateTime<Utc>>,
    /// End of the range, excluded, a date; default now.
    #[arg(long, value_parser = parse_day)]
    pub to: Option<DateTime<Utc>>,
    /// Only this room.
    #[arg(long)]
    pub room: Option<String>,
}

fn parse_day(text: &str) -> Result<DateTime<Utc>, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|day| day.and_time(NaiveTime::MIN).and_utc())
        .map_err(|e| format!("{text:?} is not a date like 2026-01-31: {e}"))
}

pub async fn run(args: &UsageArgs, env: &Env, out: &mut Output<'_>) -> Result<u8, CliError> {
    let prices = Prices::from_env(env)?;
    let to = args.to.unwrap_or_else(Utc::now);
    let from = args.from.unwrap_or(to - chrono::Duration::days(30));
    if from >= to || to - from > usage::MAX_RANGE {
        return Err(CliError::EmptyRange);
    }
    let records = library(env)?.usage(from, to, args.room.as_deref()).await?;
    let groups = usage::summarize(&records, from, to, args.group_by, &prices);
    if out.json {
        out.json_value(&json!({"groups": groups, "from": from, "to": to,
                               "group_by": args.group_by.as_str(),
                               "currency": prices.any().then_some(&prices.currency)}));
        return Ok(EXIT_OK);
    }
    let rows = groups
        .iter()
        .map(|g| {
            vec![
                g.key.clone().unwrap_or_else(|| "(none)".to_owned()),
                g.recordings.to_string(),
                format!("{:.1}", g.minutes),
                size(Some(g.bytes_written)),
                size(Some(g.bytes_stored)),
                g.deleted.to_string(),
                format!("{:.3}", g.gb_months),
                g.estimated_cost
                    .map(|cost| format!("{cost:.2}"))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let cost = format!("~cost ({})", prices.currency);
    out.table(
        &[
            args.group_by.as_str(),
            "recordings",
            "minutes",
            "written",
            "stored",
            "deleted",
            "GB-months",
            &cost,
        ],
        rows,
    );
    out.line(format!(
        "{} to {}; {}",
        from.format("%Y-%m-%d %H:%M"),
        to.format("%Y-%m-%d %H:%M UTC"),
        match prices.any() {
            true => usage::ESTIMATE_NOTE,
            false => "no prices set (USAGE_PRICE_PER_EGRESS_MINUTE, USAGE_PRICE_PER_GB_MONTH): no cost estimate",
        }
    ));
    Ok(EXIT_OK)
}
