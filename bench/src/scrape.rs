//! Reads the processor's `/metrics` (Prometheus text) for what the database cannot tell: how
//! messages ended, how many HEADs and probes were made and how long they and the handling took.

use anyhow::Context;

/// Totals from one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessorMetrics {
    /// `roomtape_messages_total` of `roomtape.events`, by outcome.
    pub outcomes: Vec<(String, f64)>,
    pub heads: f64,
    pub head_seconds: f64,
    pub probes: f64,
    pub probe_seconds: f64,
    pub handled: f64,
    pub handle_seconds: f64,
}

impl ProcessorMetrics {
    /// What happened between `before` and `self`.
    pub fn since(&self, before: &Self) -> Self {
        let outcomes = self
            .outcomes
            .iter()
            .map(|(outcome, n)| {
                let earlier = before
                    .outcomes
                    .iter()
                    .find(|(o, _)| o == outcome)
                    .map_or(0.0, |(_, n)| *n);
                (outcome.clone(), n - earlier)
            })
            .filter(|(_, n)| *n > 0.0)
            .collect();
        Self {
            outcomes,
            heads: self.heads - before.heads,
            head_seconds: self.head_seconds - before.head_seconds,
            probes: self.probes - before.probes,
            probe_seconds: self.probe_seconds - before.probe_seconds,
            handled: self.handled - before.handled,
            handle_seconds: self.handle_seconds - before.handle_seconds,
        }
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        let outcomes: Vec<String> = self
            .outcomes
            .iter()
            .map(|(outcome, n)| format!("{outcome} {n:.0}"))
            .collect();
        let mean_ms = |secs: f64, count: f64| {
            if count > 0.0 {
                secs / count * 1000.0
            } else {
                f64::NAN
            }
        };
        format!(
            "messages: {}; handling mean {:.2} ms; HEADs {:.0}, mean {:.2} ms; probes {:.0}, mean {:.2} ms",
            if outcomes.is_empty() {
                "none".to_owned()
            } else {
                outcomes.join(", ")
            },
            mean_ms(self.handle_seconds, self.handled),
            self.heads,
            mean_ms(self.head_seconds, self.heads),
            self.probes,
            mean_ms(self.probe_seconds, self.probes),
        )
    }
}

/// Scrapes `url` (the processor's `/metrics`).
pub async fn scrape(url: &str) -> anyhow::Result<ProcessorMetrics> {
    let text = reqwest::get(url)
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("GET {url}"))?
        .text()
        .await?;
    Ok(parse(&text))
}

fn parse(text: &str) -> ProcessorMetrics {
    let mut metrics = ProcessorMetrics::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let events_queue = labels.contains(r#"queue="roomtape.events""#);
        match name {
            "roomtape_messages_total" if events_queue => {
                let outcome = label(labels, "outcome").unwrap_or("?").to_owned();
                match metrics.outcomes.iter_mut().find(|(o, _)| *o == outcome) {
                    Some((_, n)) => *n += value,
                    None => metrics.outcomes.push((outcome, value)),
                }
            }
            "roomtape_head_seconds_count" => metrics.heads += value,
            "roomtape_head_seconds_sum" => metrics.head_seconds += value,
            "roomtape_probe_seconds_count" => metrics.probes += value,
            "roomtape_probe_seconds_sum" => metrics.probe_seconds += value,
            "roomtape_handle_seconds_count" if events_queue => metrics.handled += value,
            "roomtape_handle_seconds_sum" if events_queue => metrics.handle_seconds += value,
            _ => {}
        }
    }
    metrics
}

/// The value of `name` in `a="x",b="y"}`.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = &labels[start..];
    rest.find('"').map(|end| &rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_processor_series() {
        let text = "# HELP x\n\
            roomtape_messages_total{queue=\"roomtape.events\",event=\"room_started\",outcome=\"applied\"} 7\n\
            roomtape_messages_total{queue=\"roomtape.events\",event=\"egress_ended\",outcome=\"applied\"} 3\n\
            roomtape_messages_total{queue=\"roomtape.commands\",event=\"start\",outcome=\"applied\"} 5\n\
            roomtape_head_seconds_sum 0.03\n\
            roomtape_head_seconds_count 3\n\
            roomtape_handle_seconds_sum{queue=\"roomtape.events\"} 0.5\n\
            roomtape_handle_seconds_count{queue=\"roomtape.events\"} 10\n";
        let metrics = parse(text);
        assert_eq!(metrics.outcomes, vec![("applied".to_owned(), 10.0)]);
        assert_eq!(metrics.heads, 3.0);
        assert_eq!(metrics.handled, 10.0);
        let line = metrics.since(&ProcessorMetrics::default()).describe();
        assert!(
            line.contains("applied 10") && line.contains("HEADs 3, mean 10.00 ms"),
            "{line}"
        );
    }
}
