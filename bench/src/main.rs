//! `roomtape-bench`: load for the ingestor and the direct-publish baseline it is measured
//! against, and the processor's throughput and end-to-end delay. See
//! `scripts/bench-ingestor.sh` and `scripts/bench-processor.sh` for the whole benchmarks and
//! `docs/benchmarks.md` for their figures.

mod cli;
mod direct;
mod e2e;
mod event;
mod ingestor;
mod load;
mod mix;
mod objects;
mod pg;
mod processor;
mod report;
mod scrape;
mod sign;
mod sink;
mod storm;

use std::sync::Arc;

use anyhow::Context;

use cli::{Args, Mode};
use load::{Plan, Target};

fn main() -> std::process::ExitCode {
    match start() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("roomtape-bench: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn start() -> anyhow::Result<()> {
    let Some(args) = cli::parse(std::env::args().skip(1))? else {
        print!("{}", cli::USAGE);
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let events = event::Events::new(args.run_id.clone());
    match args.mode {
        Mode::Ingestor => {
            let signer = sign::Signer::new(&args.api_key, &args.api_secret);
            let target = ingestor::Ingestor::new(&args.url, args.concurrency, signer, events)?;
            measure(Arc::new(target), &args).await
        }
        Mode::Direct => {
            let url = args
                .amqp_url
                .as_deref()
                .context("direct needs --amqp or AMQP_URL")?;
            let target =
                Arc::new(direct::Direct::connect(url, args.channels, events, &args.api_key).await?);
            let measured = measure(target.clone(), &args).await;
            target.close().await?;
            measured
        }
        Mode::Fill => processor::fill(&args).await,
        Mode::Drain => processor::drain(&args).await,
        Mode::Put => e2e::put(&args).await,
        Mode::E2e => e2e::run(&args).await,
        Mode::Storm => storm::storm(&args).await,
        Mode::Sink => sink::run(&args).await,
        Mode::CleanBucket => {
            let profile = objects::profile_from_env()?;
            let removed = objects::Bucket::new(&profile)
                .remove(processor::S3_CONCURRENCY)
                .await?;
            println!(
                "removed bucket {} and its {removed} objects",
                profile.bucket
            );
            Ok(())
        }
    }
}

/// Warms up (unmeasured), then runs and reports the measured plan. Fails if any request did.
async fn measure<T: Target>(target: Arc<T>, args: &Args) -> anyhow::Result<()> {
    if args.warmup > 0 {
        let warmup = Plan {
            concurrency: args.concurrency,
            requests: args.warmup,
            rate: None,
            first: 0,
        };
        let outcome = load::run(target.clone(), warmup).await?;
        println!(
            "{}: warm-up of {} requests, {} failed",
            args.label,
            args.warmup,
            outcome.failed()
        );
    }
    let plan = Plan {
        concurrency: args.concurrency,
        requests: args.requests,
        rate: args.rate,
        first: args.warmup,
    };
    let outcome = load::run(target, plan).await?;
    report::print(&args.label, args.mode.name(), &plan, &outcome);
    anyhow::ensure!(
        outcome.failed() == 0,
        "{} of {} requests failed",
        outcome.failed(),
        plan.requests
    );
    Ok(())
}
