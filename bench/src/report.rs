//! Turns an [`Outcome`] into throughput and latency percentiles, printed for people and as one
//! `RESULT key=value …` line for scripts.

use crate::load::{Outcome, Plan};

/// Percentiles reported, as (label, fraction).
const PERCENTILES: [(&str, f64); 4] =
    [("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p999", 0.999)];

/// The nearest-rank percentile of sorted `latencies_us`, in milliseconds.
pub fn percentile_ms(latencies_us: &[u32], fraction: f64) -> f64 {
    if latencies_us.is_empty() {
        return f64::NAN;
    }
    let rank = (fraction * latencies_us.len() as f64).ceil() as usize;
    let index = rank.clamp(1, latencies_us.len()) - 1;
    f64::from(latencies_us[index]) / 1000.0
}

/// The largest of sorted `latencies_us`, in milliseconds.
pub fn max_ms(latencies_us: &[u32]) -> f64 {
    latencies_us
        .last()
        .map_or(f64::NAN, |us| f64::from(*us) / 1000.0)
}

/// `p50 1.00, p90 …, max …` (milliseconds) for people.
pub fn describe(latencies_us: &[u32]) -> String {
    let shown: Vec<String> = PERCENTILES
        .iter()
        .map(|(name, fraction)| format!("{name} {:.2}", percentile_ms(latencies_us, *fraction)))
        .collect();
    format!("{}, max {:.2}", shown.join(", "), max_ms(latencies_us))
}

/// `p50_ms=1.000 … max_ms=…` for a `RESULT` line.
pub fn fields(latencies_us: &[u32]) -> Vec<String> {
    let mut fields: Vec<String> = PERCENTILES
        .iter()
        .map(|(name, fraction)| format!("{name}_ms={:.3}", percentile_ms(latencies_us, *fraction)))
        .collect();
    fields.push(format!("max_ms={:.3}", max_ms(latencies_us)));
    fields
}

/// Prints `outcome` of `plan`, run in `mode` (`ingestor`/`direct`) under `label`.
pub fn print(label: &str, mode: &str, plan: &Plan, outcome: &Outcome) {
    let ok = outcome.latencies_us.len();
    let failed = outcome.failed();
    let secs = outcome.elapsed.as_secs_f64();
    let throughput = if secs > 0.0 { ok as f64 / secs } else { 0.0 };
    let loop_kind = match plan.rate {
        Some(rate) => format!("open loop at {rate} req/s"),
        None => "closed loop".to_owned(),
    };

    println!(
        "{label}: {mode}, {loop_kind}, concurrency {}, {} requests",
        plan.concurrency, plan.requests
    );
    println!("  ok {ok}, failed {failed}, {secs:.2} s, {throughput:.0} req/s");
    println!("  latency ms: {}", describe(&outcome.latencies_us));
    for (error, count) in outcome.errors.iter().take(5) {
        println!("  {count} × {error}");
    }

    let mut fields = vec![
        format!("label={label}"),
        format!("mode={mode}"),
        format!("concurrency={}", plan.concurrency),
        format!("rate={}", plan.rate.unwrap_or(0.0)),
        format!("requests={}", plan.requests),
        format!("ok={ok}"),
        format!("failed={failed}"),
        format!("elapsed_s={secs:.3}"),
        format!("throughput={throughput:.1}"),
    ];
    fields.extend(self::fields(&outcome.latencies_us));
    println!("RESULT {}", fields.join(" "));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let latencies: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile_ms(&latencies, 0.50), 50.0);
        assert_eq!(percentile_ms(&latencies, 0.99), 99.0);
        assert_eq!(percentile_ms(&latencies, 0.999), 100.0);
        assert!(percentile_ms(&[], 0.5).is_nan());
    }
}
