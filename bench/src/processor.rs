//! The processor's throughput from a pre-filled queue, in two steps run while the processor is
//! stopped and then started:
//!
//! - `fill`: puts the recording files in the bucket, then publishes the run's events straight
//!   to `livekit.events` with confirms (as the ingestor would), closed loop;
//! - `drain`: polls `webhook_events` until it holds the expected number of rows (`count(*)`,
//!   a sequential scan, hence every 250 ms rather than more often), and reports
//!   the rate from the first row visible to the last, the rate the rows' `processed_at` give,
//!   what the events changed, and the processor's own counters.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

use crate::cli::Args;
use crate::direct::Direct;
use crate::event::Source;
use crate::load::{self, Plan};
use crate::mix::Mix;
use crate::objects::{self, Bucket};
use crate::scrape::{self, ProcessorMetrics};
use crate::storm::Participants;
use crate::{pg, report};

/// PUTs in flight while filling the bucket.
pub const S3_CONCURRENCY: usize = 16;
/// Width of the slices the drain's progress is shown in.
const SLICE: Duration = Duration::from_secs(5);

/// `fill`: the bucket, then the queue; or, with `--participants`, participant events only.
pub async fn fill(args: &Args) -> anyhow::Result<()> {
    if let Some(rooms) = args.participants {
        let joins = args.requests / 2;
        return publish(args, Participants::new(args.run_id.clone(), rooms, joins)).await;
    }
    let profile = objects::profile_from_env()?;
    let mix = Mix::new(args.run_id.clone(), &profile);
    let bucket = Bucket::new(&profile);
    bucket.ensure().await?;
    let started = Instant::now();
    let files = bucket
        .put_recordings(&mix, 0, args.requests, S3_CONCURRENCY)
        .await?;
    println!(
        "{}: put {files} recording files ({} bytes each) in bucket {} in {:.2} s",
        args.label,
        crate::mix::RECORDING.len(),
        profile.bucket,
        started.elapsed().as_secs_f64()
    );
    publish(args, mix).await
}

/// Publishes `--requests` messages of `source` straight to `livekit.events`, confirmed.
async fn publish<S: Source>(args: &Args, source: S) -> anyhow::Result<()> {
    let url = args
        .amqp_url
        .as_deref()
        .context("fill needs --amqp or AMQP_URL")?;
    let target = Arc::new(Direct::connect(url, args.channels, source, &args.api_key).await?);
    let plan = Plan {
        concurrency: args.concurrency,
        requests: args.requests,
        rate: None,
        first: 0,
    };
    let outcome = load::run(target.clone(), plan).await?;
    target.close().await?;
    report::print(&args.label, "fill", &plan, &outcome);
    anyhow::ensure!(
        outcome.failed() == 0,
        "{} publishes failed",
        outcome.failed()
    );
    Ok(())
}

/// `drain`: waits for `args.requests` rows and reports how fast they came.
pub async fn drain(args: &Args) -> anyhow::Result<()> {
    let url = args
        .database_url
        .as_deref()
        .context("drain needs --database or DATABASE_URL")?;
    let client = pg::connect(url).await?;
    let poll = Duration::from_millis(args.poll_ms.unwrap_or(250));
    let deadline = Duration::from_secs(args.timeout_secs);
    let expected = args.requests;
    let start = Instant::now();
    let mut samples: Vec<(Duration, u64)> = Vec::new();
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let finished = loop {
        ticker.tick().await;
        let count = pg::recorded(&client).await?;
        let at = start.elapsed();
        if count > 0 || !samples.is_empty() {
            samples.push((at, count));
        }
        if count >= expected {
            break at;
        }
        anyhow::ensure!(
            at < deadline,
            "only {count} of {expected} events recorded after {} s",
            args.timeout_secs
        );
    };
    let Some(&(first_at, first_count)) = samples.first() else {
        anyhow::bail!("no samples");
    };
    let window = (finished - first_at).as_secs_f64();
    let throughput = if window > 0.0 {
        (expected - first_count) as f64 / window
    } else {
        f64::NAN
    };
    let span = pg::processed_span_secs(&client).await?;
    let db_throughput = if span > 0.0 {
        (expected - 1) as f64 / span
    } else {
        f64::NAN
    };
    let heads = match args.participants {
        Some(_) => 0,
        None => {
            Mix::new(args.run_id.clone(), &objects::profile_from_env()?).ended_count(0..expected)
        }
    };

    println!(
        "{}: {expected} events in the queue, {heads} of them egress_ended",
        args.label
    );
    println!(
        "  first row visible after {:.2} s (processor start-up), all {expected} after {:.2} s",
        first_at.as_secs_f64(),
        finished.as_secs_f64()
    );
    println!(
        "  throughput {throughput:.0} events/s (first row to last, polled every {} ms); \
         {db_throughput:.0} events/s by processed_at",
        poll.as_millis()
    );
    println!(
        "  events/s per {} s: {}",
        SLICE.as_secs(),
        slices(&samples).join(", ")
    );
    println!("  {}", pg::summary(&client).await?);
    println!("  tables: {}", pg::scans(&client).await?);
    let metrics = metrics_now(args).await?;
    if let Some(metrics) = &metrics {
        println!("  processor {}", metrics.describe());
    }
    println!(
        "RESULT label={} mode=drain events={expected} first_row_s={:.3} elapsed_s={:.3} \
         throughput={throughput:.1} db_throughput={db_throughput:.1} egress_ended={heads} heads={:.0}",
        args.label,
        first_at.as_secs_f64(),
        finished.as_secs_f64(),
        metrics.as_ref().map_or(f64::NAN, |m| m.heads),
    );
    Ok(())
}

/// Rows per second in each [`SLICE`] from the first row on.
fn slices(samples: &[(Duration, u64)]) -> Vec<String> {
    let Some(&(origin, mut last_count)) = samples.first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut slice_start = (origin, last_count);
    for &(at, count) in samples {
        if at - slice_start.0 >= SLICE {
            let secs = (at - slice_start.0).as_secs_f64();
            out.push(format!("{:.0}", (count - slice_start.1) as f64 / secs));
            slice_start = (at, count);
        }
        last_count = count;
    }
    let (at, _) = samples[samples.len() - 1];
    let secs = (at - slice_start.0).as_secs_f64();
    if secs > 0.0 {
        out.push(format!(
            "{:.0} (last {secs:.1} s)",
            (last_count - slice_start.1) as f64 / secs
        ));
    }
    out
}

/// The processor's counters now, if a `/metrics` URL was given.
pub async fn metrics_now(args: &Args) -> anyhow::Result<Option<ProcessorMetrics>> {
    match &args.metrics_url {
        Some(url) => Ok(Some(scrape::scrape(url).await?)),
        None => Ok(None),
    }
}
