//! Command-line arguments. Settings the ingestor and the processor also read
//! (`LIVEKIT_API_KEY`, `LIVEKIT_API_SECRET`, `AMQP_URL`, `DATABASE_URL`, and `S3_*` for the
//! bucket) default from the environment.

use anyhow::{bail, Context};

pub const USAGE: &str = "\
usage: roomtape-bench <mode> [options]

  ingestor      POST signed webhooks (each a distinct event, signed on the fly) to the ingestor
  direct        publish the same messages straight to RabbitMQ with confirms (the baseline)
the processor (room sessions with a recording; the bucket is the S3_* profile's):
  fill          put the recordings in the bucket, then publish --requests events straight to
                livekit.events with confirms (run while no processor consumes)
  drain         poll the database until webhook_events has --requests rows; report the rate
  put           put the recordings an e2e run of --requests (same --run-id) reports in the
                bucket: run it first, so that what e2e measures is the load alone
  e2e           signed webhooks to the ingestor at --rate; report each one's delay from the
                200 to its row being visible in the database (the files: see put)
  storm         --requests joins through the ingestor for one room (or --participants rooms),
                then their leaves; report how long after the last 200 the count shows them
  clean-bucket  delete every object of the bucket, then the bucket
  sink          a notification endpoint: print its port, answer 204, and report how long after
                its transaction each recording.ready arrived; stops 5 s after the last
                (--timeout S: at most this long for the first)

options:
  --concurrency N   workers, each with one request in flight (default 64)
  --requests N      measured requests (default 50000)
  --rate R          open loop at R requests/s, latency counted from each request's due time;
                    without it, closed loop as fast as answers come
  --warmup N        unmeasured requests first (default 0)
  --threads N       client runtime threads (default: number of CPUs)
  --label TEXT      name of this run in the report (default: the mode)
  --run-id TEXT     event ids are EV_<run-id>_<n> (default: time and process id)
  --url URL         ingestor webhook URL (default http://127.0.0.1:8080/webhooks/livekit)
  --api-key KEY     default $LIVEKIT_API_KEY, else devkey
  --api-secret S    default $LIVEKIT_API_SECRET, else secret
  --amqp URL        direct: broker URL (default $AMQP_URL)
  --channels N      direct, fill: confirm channels shared round-robin by the workers (default 1)
  --participants R  fill, drain, storm: participant events over R rooms instead of room sessions
                    with recordings (fill: the first half joins, the second half their leaves)
  --database URL    drain, e2e: PostgreSQL (default $DATABASE_URL)
  --metrics URL     drain, e2e: the processor's /metrics, for its counts of HEADs and outcomes
  --poll-ms N       drain, e2e: database poll interval (default 250 for drain, 5 for e2e)
  --timeout S       drain: give up after S seconds; e2e: wait at most S seconds after the last
                    webhook for rows (default 300)
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ingestor,
    Direct,
    Fill,
    Drain,
    Put,
    E2e,
    Storm,
    CleanBucket,
    Sink,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ingestor => "ingestor",
            Self::Direct => "direct",
            Self::Fill => "fill",
            Self::Drain => "drain",
            Self::Put => "put",
            Self::E2e => "e2e",
            Self::Storm => "storm",
            Self::CleanBucket => "clean-bucket",
            Self::Sink => "sink",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Args {
    pub mode: Mode,
    pub concurrency: usize,
    pub requests: u64,
    pub rate: Option<f64>,
    pub warmup: u64,
    pub threads: usize,
    pub label: String,
    pub run_id: String,
    pub url: String,
    pub api_key: String,
    pub api_secret: String,
    pub amqp_url: Option<String>,
    pub channels: usize,
    /// Participant events over this many rooms, instead of room sessions with recordings.
    pub participants: Option<u64>,
    pub database_url: Option<String>,
    pub metrics_url: Option<String>,
    pub poll_ms: Option<u64>,
    pub timeout_secs: u64,
}

/// Parses the arguments after the program name; `Ok(None)` means help was asked for.
pub fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Option<Args>> {
    let mode = match args.next().as_deref() {
        Some("ingestor") => Mode::Ingestor,
        Some("direct") => Mode::Direct,
        Some("fill") => Mode::Fill,
        Some("drain") => Mode::Drain,
        Some("put") => Mode::Put,
        Some("e2e") => Mode::E2e,
        Some("storm") => Mode::Storm,
        Some("clean-bucket") => Mode::CleanBucket,
        Some("sink") => Mode::Sink,
        Some("-h" | "--help" | "help") | None => return Ok(None),
        Some(other) => bail!("unknown mode {other:?}\n\n{USAGE}"),
    };
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut parsed = Args {
        mode,
        concurrency: 64,
        requests: 50_000,
        rate: None,
        warmup: 0,
        threads: std::thread::available_parallelism().map_or(2, usize::from),
        label: mode.name().to_owned(),
        run_id: crate::event::default_run_id(),
        url: "http://127.0.0.1:8080/webhooks/livekit".to_owned(),
        api_key: env("LIVEKIT_API_KEY").unwrap_or_else(|| "devkey".to_owned()),
        api_secret: env("LIVEKIT_API_SECRET").unwrap_or_else(|| "secret".to_owned()),
        amqp_url: env("AMQP_URL"),
        channels: 1,
        participants: None,
        database_url: env("DATABASE_URL"),
        metrics_url: None,
        poll_ms: None,
        timeout_secs: 300,
    };
    while let Some(flag) = args.next() {
        if matches!(flag.as_str(), "-h" | "--help") {
            return Ok(None);
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--concurrency" => parsed.concurrency = number(&flag, &value)?,
            "--requests" => parsed.requests = number(&flag, &value)?,
            "--rate" => parsed.rate = Some(number(&flag, &value)?),
            "--warmup" => parsed.warmup = number(&flag, &value)?,
            "--threads" => parsed.threads = number(&flag, &value)?,
            "--label" => parsed.label = value,
            "--run-id" => parsed.run_id = value,
            "--url" => parsed.url = value,
            "--api-key" => parsed.api_key = value,
            "--api-secret" => parsed.api_secret = value,
            "--amqp" => parsed.amqp_url = Some(value),
            "--channels" => parsed.channels = number(&flag, &value)?,
            "--participants" => parsed.participants = Some(number(&flag, &value)?),
            "--database" => parsed.database_url = Some(value),
            "--metrics" => parsed.metrics_url = Some(value),
            "--poll-ms" => parsed.poll_ms = Some(number(&flag, &value)?),
            "--timeout" => parsed.timeout_secs = number(&flag, &value)?,
            _ => bail!("unknown option {flag}\n\n{USAGE}"),
        }
    }
    anyhow::ensure!(parsed.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(parsed.threads > 0, "--threads must be at least 1");
    anyhow::ensure!(parsed.channels > 0, "--channels must be at least 1");
    anyhow::ensure!(parsed.poll_ms != Some(0), "--poll-ms must be at least 1");
    anyhow::ensure!(
        parsed.participants != Some(0),
        "--participants must be at least 1"
    );
    if let Some(rate) = parsed.rate {
        anyhow::ensure!(rate.is_finite() && rate > 0.0, "--rate must be positive");
    }
    Ok(Some(parsed))
}

fn number<N: std::str::FromStr>(flag: &str, value: &str) -> anyhow::Result<N>
where
    N::Err: std::error::Error + Send + Sync + 'static,
{
    value
        .parse()
        .with_context(|| format!("{flag} {value:?} is not a valid number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> anyhow::Result<Option<Args>> {
        parse(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn reads_options() {
        let parsed = args("direct --concurrency 8 --requests 100 --rate 2000 --channels 2")
            .expect("parses")
            .expect("not help");
        assert_eq!(parsed.mode, Mode::Direct);
        assert_eq!(parsed.concurrency, 8);
        assert_eq!(parsed.requests, 100);
        assert_eq!(parsed.rate, Some(2000.0));
        assert_eq!(parsed.channels, 2);
        assert_eq!(parsed.label, "direct");
    }

    #[test]
    fn reads_processor_options() {
        let parsed = args("e2e --rate 500 --database postgres://x/db --poll-ms 10 --timeout 30")
            .expect("parses")
            .expect("not help");
        assert_eq!(parsed.mode, Mode::E2e);
        assert_eq!(parsed.database_url.as_deref(), Some("postgres://x/db"));
        assert_eq!(parsed.poll_ms, Some(10));
        assert_eq!(parsed.timeout_secs, 30);
        assert_eq!(parsed.label, "e2e");
    }

    #[test]
    fn refuses_nonsense() {
        assert!(args("ingestor --concurrency 0").is_err());
        assert!(args("ingestor --rate fast").is_err());
        assert!(args("ingestor --bogus 1").is_err());
        assert!(args("sideways").is_err());
        assert!(args("drain --poll-ms 0").is_err());
        assert!(args("--help").expect("help").is_none());
    }
}
