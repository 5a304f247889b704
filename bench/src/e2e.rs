//! End to end: signed webhooks to the ingestor on a fixed schedule (open loop), and for each,
//! the time from the ingestor's 200 to its row being visible in `webhook_events`.
//!
//! One poller asks PostgreSQL every `poll` which of the events sent and not yet seen have a
//! row (`event_id = ANY($1)`, primary-key lookups), and stamps those it finds with the instant
//! the query was sent: the row was not visible at the previous query and was at this one, so
//! each figure overstates the delay by less than one poll interval plus the query's own time.
//! A row seen before its 200 arrived counts as 0 (the processor can commit before the
//! ingestor's answer reaches the client); how many did is reported.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

use crate::cli::Args;
use crate::event::Source;
use crate::ingestor::Ingestor;
use crate::load::{self, Plan, Target};
use crate::mix::Mix;
use crate::objects::{self, Bucket};
use crate::processor::{metrics_now, S3_CONCURRENCY};
use crate::sign::Signer;
use crate::{pg, report};

/// What is known of one event.
#[derive(Debug, Clone, Copy)]
struct Entry {
    event: &'static str,
    sent: Instant,
    answered: Option<Instant>,
    seen: Option<Instant>,
}

/// Every event of the run, and those whose row is still awaited.
#[derive(Debug, Default)]
struct Tracker {
    entries: HashMap<String, Entry>,
    unseen: HashSet<String>,
}

type Shared = Arc<Mutex<Tracker>>;

fn lock(tracker: &Shared) -> MutexGuard<'_, Tracker> {
    // A panic elsewhere cannot leave the maps half-updated in a way that matters here.
    tracker
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The ingestor as a target, noting when each event was sent and answered.
#[derive(Debug)]
struct Tracked {
    ingestor: Ingestor<Mix>,
    mix: Mix,
    tracker: Shared,
}

impl Target for Tracked {
    async fn send(&self, n: u64) -> anyhow::Result<()> {
        let id = self.mix.id(n);
        {
            let mut tracker = lock(&self.tracker);
            let entry = Entry {
                event: self.mix.event_name(n),
                sent: Instant::now(),
                answered: None,
                seen: None,
            };
            tracker.entries.insert(id.clone(), entry);
            tracker.unseen.insert(id.clone());
        }
        let result = self.ingestor.send(n).await;
        let now = Instant::now();
        let mut tracker = lock(&self.tracker);
        match &result {
            Ok(()) => {
                if let Some(entry) = tracker.entries.get_mut(&id) {
                    entry.answered = Some(now);
                }
            }
            // Not awaited: it may never have been published.
            Err(_) => {
                tracker.unseen.remove(&id);
            }
        }
        result
    }
}

/// What the poller did.
#[derive(Debug, Default)]
struct Polls {
    count: u64,
    busy: Duration,
}

/// Polls until `done` is set and every answered event is seen, or `grace` after `done`.
async fn poll(
    client: tokio_postgres::Client,
    tracker: Shared,
    done: Arc<AtomicBool>,
    every: Duration,
    grace: Duration,
) -> anyhow::Result<Polls> {
    let statement = client
        .prepare("SELECT event_id FROM webhook_events WHERE event_id = ANY($1)")
        .await?;
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut polls = Polls::default();
    let mut done_at = None;
    loop {
        ticker.tick().await;
        let ids: Vec<String> = lock(&tracker).unseen.iter().cloned().collect();
        if done.load(Ordering::SeqCst) {
            let since = *done_at.get_or_insert_with(Instant::now);
            if ids.is_empty() || since.elapsed() > grace {
                return Ok(polls);
            }
        }
        if ids.is_empty() {
            continue;
        }
        let asked = Instant::now();
        let rows = client.query(&statement, &[&ids]).await?;
        polls.count += 1;
        polls.busy += asked.elapsed();
        let mut tracker = lock(&tracker);
        for row in rows {
            let id: String = row.get(0);
            tracker.unseen.remove(&id);
            if let Some(entry) = tracker.entries.get_mut(&id) {
                entry.seen = Some(asked);
            }
        }
    }
}

/// `put`: the files the `egress_ended` events of an e2e run report, in the bucket (LiveKit's
/// egress would have written them, elsewhere: not part of what e2e measures).
pub async fn put(args: &Args) -> anyhow::Result<()> {
    let profile = objects::profile_from_env()?;
    let mix = Mix::new(args.run_id.clone(), &profile);
    let bucket = Bucket::new(&profile);
    bucket.ensure().await?;
    let files = bucket
        .put_recordings(&mix, 0, args.requests, S3_CONCURRENCY)
        .await?;
    println!(
        "{}: put {files} recording files in bucket {}",
        args.label, profile.bucket
    );
    Ok(())
}

/// `e2e`: the load with the poller beside it (the files are put first: [`put`]).
pub async fn run(args: &Args) -> anyhow::Result<()> {
    let rate = args.rate.context("e2e needs --rate")?;
    let url = args
        .database_url
        .as_deref()
        .context("e2e needs --database or DATABASE_URL")?;
    let client = pg::connect(url).await?;
    let profile = objects::profile_from_env()?;
    let mix = Mix::new(args.run_id.clone(), &profile);

    let before = metrics_now(args).await?;
    let tracker = Shared::default();
    let done = Arc::new(AtomicBool::new(false));
    let every = Duration::from_millis(args.poll_ms.unwrap_or(5));
    let grace = Duration::from_secs(args.timeout_secs);
    let poller = tokio::spawn(poll(client, tracker.clone(), done.clone(), every, grace));

    let signer = Signer::new(&args.api_key, &args.api_secret);
    let target = Arc::new(Tracked {
        ingestor: Ingestor::new(&args.url, args.concurrency, signer, mix.clone())?,
        mix,
        tracker: tracker.clone(),
    });
    let plan = Plan {
        concurrency: args.concurrency,
        requests: args.requests,
        rate: Some(rate),
        first: 0,
    };
    let outcome = load::run(target, plan).await;
    done.store(true, Ordering::SeqCst);
    let outcome = outcome?;
    let polls = poller.await.context("the poller panicked")??;
    report::print(
        &format!("{}-webhooks", args.label),
        "ingestor",
        &plan,
        &outcome,
    );

    let after = metrics_now(args).await?;
    let Delays {
        after_answer,
        after_send,
        before_answer,
        by_event,
    } = delays(&lock(&tracker));
    let answered = outcome.latencies_us.len();
    let missing = answered - after_answer.len();
    let mean_poll_ms = if polls.count > 0 {
        polls.busy.as_secs_f64() * 1000.0 / polls.count as f64
    } else {
        f64::NAN
    };
    println!(
        "{}: {} webhooks at {rate}/s, {answered} answered 200, {} rows visible, {missing} never \
         seen within {} s of the end",
        args.label,
        args.requests,
        after_answer.len(),
        args.timeout_secs
    );
    println!(
        "  polled every {} ms: {} polls, {mean_poll_ms:.2} ms each on average; {before_answer} \
         rows were visible before their 200 arrived (counted as 0)",
        every.as_millis(),
        polls.count
    );
    println!(
        "  200 -> row visible, ms: {}",
        report::describe(&after_answer)
    );
    println!(
        "  sent -> row visible, ms: {}",
        report::describe(&after_send)
    );
    for (event, sorted) in &by_event {
        println!(
            "    {event}: p50 {:.2}, p99 {:.2} ms ({} events)",
            report::percentile_ms(sorted, 0.5),
            report::percentile_ms(sorted, 0.99),
            sorted.len()
        );
    }
    if let (Some(before), Some(after)) = (before, after) {
        println!("  processor {}", after.since(&before).describe());
    }
    println!(
        "RESULT label={} mode=e2e rate={rate} requests={} answered={answered} visible={} \
         missing={missing} before_answer={before_answer} {} sent_p99_ms={:.3}",
        args.label,
        args.requests,
        after_answer.len(),
        report::fields(&after_answer).join(" "),
        report::percentile_ms(&after_send, 0.99),
    );
    anyhow::ensure!(
        outcome.failed() == 0 && missing == 0,
        "{} webhooks failed, {missing} rows never seen",
        outcome.failed()
    );
    Ok(())
}

/// Each seen event's delay from its 200 and from its sending, in microseconds, sorted.
#[derive(Debug, Default)]
struct Delays {
    after_answer: Vec<u32>,
    after_send: Vec<u32>,
    /// Rows seen before their 200 arrived.
    before_answer: u64,
    /// `after_answer` by event name.
    by_event: BTreeMap<&'static str, Vec<u32>>,
}

fn delays(tracker: &Tracker) -> Delays {
    let mut delays = Delays::default();
    for entry in tracker.entries.values() {
        let (Some(answered), Some(seen)) = (entry.answered, entry.seen) else {
            continue;
        };
        if seen < answered {
            delays.before_answer += 1;
        }
        let delay = micros(seen.saturating_duration_since(answered));
        delays.after_answer.push(delay);
        delays.by_event.entry(entry.event).or_default().push(delay);
        delays
            .after_send
            .push(micros(seen.saturating_duration_since(entry.sent)));
    }
    delays.after_answer.sort_unstable();
    delays.after_send.sort_unstable();
    for sorted in delays.by_event.values_mut() {
        sorted.sort_unstable();
    }
    delays
}

fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
}
