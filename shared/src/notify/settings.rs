//! `NOTIFY_*` (CONTRACTS §8): the HTTP endpoints notifications are POSTed to, and how long and
//! how often each delivery is tried.

use std::time::Duration;

use crate::config::{ConfigError, Env, Problems};

use super::WebhookSecret;

/// Every endpoint and the delivery schedule.
#[derive(Debug, Clone, Default)]
pub struct NotifySettings {
    /// `NOTIFY_ENDPOINTS` (default none), each with its `NOTIFY_<N>_*`.
    pub endpoints: Vec<Endpoint>,
    /// `NOTIFY_TIMEOUT` (default `10s`): one attempt, connecting included.
    pub timeout: Duration,
    /// `NOTIFY_RETRY_DELAYS` (default `5s,1m,5m,30m,2h,6h`; `none`: no retry): the wait before
    /// each retry; a delivery refused once more after the last is dead-lettered (`failed`).
    pub retry_delays: Vec<Duration>,
}

/// One app endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Its name in `NOTIFY_ENDPOINTS`, as given; the metrics, the records and the CLI use it.
    pub name: String,
    /// `NOTIFY_<N>_URL`: http or https.
    pub url: url::Url,
    /// `NOTIFY_<N>_SECRET`: `whsec_…`.
    pub secret: WebhookSecret,
    /// `NOTIFY_<N>_EVENTS` (default `recording.*`): the types it is sent.
    pub events: Vec<glob::Pattern>,
}

impl Endpoint {
    /// Whether a notification of this type goes to this endpoint.
    pub fn wants(&self, kind: &str) -> bool {
        self.events.iter().any(|pattern| pattern.matches(kind))
    }

    /// The URL as it may be printed: a token in its query is redacted.
    pub fn shown_url(&self) -> String {
        crate::redact::redact(self.url.as_str()).into_owned()
    }
}

impl NotifySettings {
    pub const DEFAULT_RETRY_DELAYS: &'static str = "5s,1m,5m,30m,2h,6h";

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        crate::settings!(Self {
            endpoints: endpoints(env),
            timeout: env.positive_duration_or("NOTIFY_TIMEOUT", Duration::from_secs(10)),
            retry_delays: env.durations_or("NOTIFY_RETRY_DELAYS", Self::DEFAULT_RETRY_DELAYS),
        })
    }

    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }

    /// Attempts a delivery gets in all: the first and one per retry delay.
    pub fn attempts(&self) -> usize {
        1 + self.retry_delays.len()
    }
}

/// The endpoints `NOTIFY_ENDPOINTS` names, every problem of every one named at once.
fn endpoints(env: &Env) -> Result<Vec<Endpoint>, ConfigError> {
    let names: Vec<&str> = env
        .get("NOTIFY_ENDPOINTS")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    let mut problems = Problems::default();
    let mut endpoints = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if let Some(problem) = name_problem(name, &names[..i]) {
            problems.check::<()>(Err(ConfigError::invalid("NOTIFY_ENDPOINTS", problem)));
            continue;
        }
        if let Some(endpoint) = problems.check(endpoint(env, name)) {
            endpoints.push(endpoint);
        }
    }
    problems.finish().map(|()| endpoints)
}

/// Why `name` cannot name an endpoint, if it cannot: it becomes part of variable names.
fn name_problem(name: &str, earlier: &[&str]) -> Option<String> {
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Some(format!(
            "{name:?} is not a name of letters, digits and _ (it becomes NOTIFY_<NAME>_URL)"
        ));
    }
    earlier
        .iter()
        .any(|e| e.eq_ignore_ascii_case(name))
        .then(|| format!("{name:?} is listed twice"))
}

fn endpoint(env: &Env, name: &str) -> Result<Endpoint, ConfigError> {
    let var = |field: &str| format!("NOTIFY_{}_{field}", name.to_ascii_uppercase());
    let (url_var, secret_var, events_var) = (var("URL"), var("SECRET"), var("EVENTS"));
    crate::settings!(Endpoint {
        name: Ok(name.to_owned()),
        url: env
            .required(&url_var)
            .and_then(|raw| http_url(&url_var, raw)),
        secret: env.required(&secret_var).and_then(|raw| {
            raw.parse::<WebhookSecret>()
                .map_err(|e| ConfigError::invalid(&secret_var, e))
        }),
        events: env.patterns_or(&events_var, "recording.*"),
    })
}

fn http_url(var: &str, raw: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(raw).map_err(|e| ConfigError::invalid(var, e))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(ConfigError::invalid(
            var,
            format!("must be an http or https URL, not {other}:"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn no_endpoints_by_default_and_the_contracts_schedule() {
        let settings = NotifySettings::from_env(&Env::from_pairs::<&str, &str>([])).expect("ok");
        assert!(settings.endpoints.is_empty());
        assert_eq!(settings.timeout, Duration::from_secs(10));
        let minutes = |m: u64| Duration::from_secs(60 * m);
        assert_eq!(
            settings.retry_delays,
            [
                Duration::from_secs(5),
                minutes(1),
                minutes(5),
                minutes(30),
                minutes(120),
                minutes(360)
            ]
        );
        assert_eq!(settings.attempts(), 7);
    }

    #[test]
    fn each_endpoint_reads_its_url_secret_and_events() {
        let env = Env::from_pairs([
            ("NOTIFY_ENDPOINTS", "app, billing"),
            ("NOTIFY_APP_URL", "https://app.example/hooks/roomtape"),
            ("NOTIFY_APP_SECRET", SECRET),
            ("NOTIFY_BILLING_URL", "http://billing:9000/in"),
            ("NOTIFY_BILLING_SECRET", SECRET),
            ("NOTIFY_BILLING_EVENTS", "recording.ready, room.*"),
            ("NOTIFY_RETRY_DELAYS", "1s, 2s"),
        ]);
        let settings = NotifySettings::from_env(&env).expect("valid");
        let with_token = Env::from_pairs([
            ("NOTIFY_ENDPOINTS", "app"),
            (
                "NOTIFY_APP_URL",
                "https://app.example/hooks?token=s3cr3t-value",
            ),
            ("NOTIFY_APP_SECRET", SECRET),
        ]);
        let shown = NotifySettings::from_env(&with_token)
            .expect("valid")
            .endpoints[0]
            .shown_url();
        assert!(
            shown.starts_with("https://app.example/hooks?token="),
            "{shown}"
        );
        assert!(
            !shown.contains("s3cr3t-value"),
            "a token in the URL is not printed: {shown}"
        );
        let once = Env::from_pairs([("NOTIFY_RETRY_DELAYS", "none")]);
        assert_eq!(
            NotifySettings::from_env(&once).expect("valid").attempts(),
            1
        );
        let app = settings.endpoint("app").expect("app");
        assert!(app.wants("recording.failed") && !app.wants("room.finished"));
        let billing = settings.endpoint("billing").expect("billing");
        assert!(billing.wants("room.finished") && !billing.wants("recording.started"));
        assert_eq!(settings.attempts(), 3);
    }

    #[test]
    fn every_problem_of_every_endpoint_is_named_at_once() {
        let env = Env::from_pairs([
            ("NOTIFY_ENDPOINTS", "app,bad-name,App,hooks"),
            ("NOTIFY_APP_URL", "ftp://app.example/"),
            ("NOTIFY_APP_SECRET", "hunter2"),
            ("NOTIFY_HOOKS_SECRET", SECRET),
            ("NOTIFY_TIMEOUT", "0s"),
            ("NOTIFY_RETRY_DELAYS", "5s,soon"),
        ]);
        let error = NotifySettings::from_env(&env)
            .expect_err("invalid")
            .to_string();
        for expected in [
            "NOTIFY_HOOKS_URL is required but not set",
            "NOTIFY_ENDPOINTS is invalid: \"bad-name\" is not a name of letters, digits and _",
            "NOTIFY_ENDPOINTS is invalid: \"App\" is listed twice",
            "NOTIFY_APP_URL is invalid: must be an http or https URL, not ftp:",
            "NOTIFY_APP_SECRET is invalid: must start with whsec_",
            "NOTIFY_TIMEOUT is invalid: must be longer than 0s",
            "NOTIFY_RETRY_DELAYS is invalid:",
        ] {
            assert!(error.contains(expected), "{expected:?} not in {error}");
        }
        assert!(
            !error.contains("hunter2"),
            "the secret is not echoed: {error}"
        );
    }
}
