//! Participant events for the join-storm benchmarks: [`Participants`] (joins, then the same
//! participants' leaves, spread over rooms), and `storm`, which posts a storm of joins through
//! the ingestor, then their leaves, and measures how long after the last 200 the room's
//! `participant_count` shows it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

use crate::cli::Args;
use crate::event::{now_unix, Message, Source};
use crate::ingestor::Ingestor;
use crate::load::{self, Plan};
use crate::sign::Signer;
use crate::{pg, report};

/// How often the storm polls the room's count.
const POLL: Duration = Duration::from_millis(10);

/// Message `n < joins` is participant `n` joining; message `n >= joins` is participant
/// `n - joins` leaving. Participant `p` is in room `p % rooms`, named `storm-<run>-<room>`.
#[derive(Debug, Clone)]
pub struct Participants {
    run: String,
    rooms: u64,
    joins: u64,
}

impl Participants {
    pub fn new(run: impl Into<String>, rooms: u64, joins: u64) -> Self {
        Self {
            run: run.into(),
            rooms: rooms.max(1),
            joins,
        }
    }

    /// The rooms' names share this prefix.
    pub fn room_prefix(&self) -> String {
        format!("storm-{}-", self.run)
    }
}

impl Source for Participants {
    fn id(&self, n: u64) -> String {
        format!("EV_{}_{n}", self.run)
    }

    fn message(&self, n: u64) -> Message {
        let (event, who) = match n < self.joins {
            true => ("participant_joined", n),
            false => ("participant_left", n - self.joins),
        };
        let room = who % self.rooms;
        let now = now_unix().to_string();
        let body = serde_json::json!({
            "event": event,
            "room": {"sid": format!("RM_{}_{room}", self.run),
                     "name": format!("{}{room}", self.room_prefix()), "creationTime": now},
            "participant": {"sid": format!("PA_{}_{who}", self.run),
                            "identity": format!("viewer-{who}"), "state": "ACTIVE",
                            "kind": "STANDARD", "joinedAt": now},
            "id": self.id(n),
            "createdAt": now,
        });
        Message {
            id: self.id(n),
            event,
            body: body.to_string().into_bytes(),
        }
    }
}

/// `storm`: `--requests` joins for `--participants` rooms (default one) at `--concurrency`,
/// then their leaves; after each wave, how long until the rooms' counts show all of it.
pub async fn storm(args: &Args) -> anyhow::Result<()> {
    let url = args
        .database_url
        .as_deref()
        .context("storm needs --database or DATABASE_URL")?;
    let client = pg::connect(url).await?;
    let viewers = args.requests;
    let source = Participants::new(args.run_id.clone(), args.participants.unwrap_or(1), viewers);
    let prefix = source.room_prefix();
    let signer = Signer::new(&args.api_key, &args.api_secret);
    let target = Arc::new(Ingestor::new(&args.url, args.concurrency, signer, source)?);
    for (wave, first, expected) in [("joins", 0, viewers), ("leaves", viewers, 0)] {
        let plan = Plan {
            concurrency: args.concurrency,
            requests: viewers,
            rate: None,
            first,
        };
        let outcome = load::run(target.clone(), plan).await?;
        let last_answer = Instant::now();
        let label = format!("{} {wave}", args.label);
        report::print(&label, "storm", &plan, &outcome);
        anyhow::ensure!(
            outcome.failed() == 0,
            "{} webhooks failed",
            outcome.failed()
        );
        let deadline = last_answer + Duration::from_secs(args.timeout_secs);
        let counted = loop {
            let count = viewers_now(&client, &prefix).await?;
            if count == expected {
                break last_answer.elapsed();
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{label}: the count is {count}, not {expected}, {} s after the last 200",
                args.timeout_secs
            );
            tokio::time::sleep(POLL).await;
        };
        println!(
            "  {label}: {viewers} accepted in {:.2} s; participant_count = {expected} {:.0} ms \
             after the last 200",
            outcome.elapsed.as_secs_f64(),
            counted.as_secs_f64() * 1000.0
        );
        println!(
            "RESULT label={label} mode=storm webhooks={viewers} accept_s={:.3} counted_ms={:.0}",
            outcome.elapsed.as_secs_f64(),
            counted.as_secs_f64() * 1000.0
        );
    }
    Ok(())
}

/// The sum of the storm rooms' counts.
async fn viewers_now(client: &tokio_postgres::Client, prefix: &str) -> anyhow::Result<u64> {
    let pattern = format!("{prefix}%");
    let row = client
        .query_one(
            "SELECT COALESCE(sum(participant_count), 0)::bigint FROM rooms WHERE room_name LIKE $1",
            &[&pattern],
        )
        .await?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or_default())
}
