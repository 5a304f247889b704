//! Command-line arguments. Settings the ingestor also reads (`LIVEKIT_API_KEY`,
//! `LIVEKIT_API_SECRET`, `AMQP_URL`) default from the environment.

use anyhow::{bail, Context};

pub const USAGE: &str = "\
usage: roomtape-bench <ingestor|direct> [options]

  ingestor   POST signed webhooks (each a distinct event, signed on the fly) to the ingestor
  direct     publish the same messages straight to RabbitMQ with confirms (the baseline)

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
  --channels N      direct: confirm channels shared round-robin by the workers (default 1)
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ingestor,
    Direct,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ingestor => "ingestor",
            Self::Direct => "direct",
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
}

/// Parses the arguments after the program name; `Ok(None)` means help was asked for.
pub fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Option<Args>> {
    let mode = match args.next().as_deref() {
        Some("ingestor") => Mode::Ingestor,
        Some("direct") => Mode::Direct,
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
            _ => bail!("unknown option {flag}\n\n{USAGE}"),
        }
    }
    anyhow::ensure!(parsed.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(parsed.threads > 0, "--threads must be at least 1");
    anyhow::ensure!(parsed.channels > 0, "--channels must be at least 1");
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
    fn refuses_nonsense() {
        assert!(args("ingestor --concurrency 0").is_err());
        assert!(args("ingestor --rate fast").is_err());
        assert!(args("ingestor --bogus 1").is_err());
        assert!(args("sideways").is_err());
        assert!(args("--help").expect("help").is_none());
    }
}
