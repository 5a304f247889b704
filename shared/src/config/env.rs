//! The variables a process sees: its environment over an optional `.env` file.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

/// A start-up configuration problem; the message names the variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("configuration: {0} is required but not set")]
    Missing(String),
    #[error("configuration: {var} is invalid: {reason}")]
    Invalid { var: String, reason: String },
    /// Every problem of a process's settings, so they are fixed in one go.
    #[error("configuration: {}", several(.0))]
    Several(Vec<ConfigError>),
}

/// `DATABASE_URL and AMQP_URL are required but not set; PROCESSOR_PREFETCH is invalid: …`
fn several(problems: &[ConfigError]) -> String {
    let missing: Vec<&str> = problems
        .iter()
        .filter_map(|p| match p {
            ConfigError::Missing(var) => Some(var.as_str()),
            _ => None,
        })
        .collect();
    let mut parts = Vec::new();
    match missing.as_slice() {
        [] => {}
        [one] => parts.push(format!("{one} is required but not set")),
        [rest @ .., last] => parts.push(format!(
            "{} and {last} are required but not set",
            rest.join(", ")
        )),
    }
    parts.extend(problems.iter().filter_map(|p| match p {
        ConfigError::Invalid { var, reason } => Some(format!("{var} is invalid: {reason}")),
        _ => None,
    }));
    parts.join("; ")
}

/// Gathers the problems of several settings, so start-up names them all at once instead of
/// one per run.
#[derive(Debug, Default)]
pub struct Problems(Vec<ConfigError>);

impl Problems {
    /// The value, or `None` with its problem noted.
    pub fn check<T>(&mut self, result: Result<T, ConfigError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(ConfigError::Several(problems)) if !problems.is_empty() => {
                self.0.extend(problems);
                None
            }
            Err(problem) => {
                self.0.push(problem);
                None
            }
        }
    }

    /// `Ok` if nothing was noted; the one problem, or all of them.
    pub fn finish(mut self) -> Result<(), ConfigError> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(self.0.remove(0)),
            _ => Err(ConfigError::Several(self.0)),
        }
    }
}

impl ConfigError {
    pub fn invalid(var: &str, reason: impl std::fmt::Display) -> Self {
        Self::Invalid {
            var: var.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// Builds a settings struct from reads that may each fail, and names every problem in one
/// error of one line, so an operator fixes them in one go. Each field is named once, beside how
/// it is read; a read may use the fields above it, as `Option`s (`None` where they failed).
/// (The same example runs as a unit test in `config/tests.rs`: the crates run no doc tests.)
///
/// ```
/// # use roomtape_shared::config::{ConfigError, Env};
/// struct Settings { port: u16, workers: usize }
/// fn from_env(env: &Env) -> Result<Settings, ConfigError> {
///     roomtape_shared::settings!(Settings {
///         port: env.parse_or("PORT", 8080),
///         workers: env.count_or("WORKERS", 4),
///     })
/// }
/// let error = from_env(&Env::from_pairs([("PORT", "x"), ("WORKERS", "0")])).err();
/// assert_eq!(
///     error.map(|e| e.to_string()).as_deref(),
///     Some("configuration: PORT is invalid: invalid digit found in string; WORKERS is invalid: must be at least 1")
/// );
/// ```
#[macro_export]
macro_rules! settings {
    ($settings:ident { $($field:ident: $read:expr),+ $(,)? }) => {{
        let mut problems = $crate::config::Problems::default();
        $( let $field = problems.check($read); )+
        problems.finish().map(|()| $settings {
            // `finish` is `Ok` only when no read failed: every field is `Some`.
            $( $field: $field.expect("a failed read notes its problem"), )+
        })
    }};
}

/// A snapshot of the variables to configure from. Tests build one from a map instead of
/// mutating the process environment, so they can run in parallel.
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

// Values can be secrets: never print them.
impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("vars", &self.vars.len())
            .finish()
    }
}

impl Env {
    /// The process environment layered over `.env` in the working directory, if there is one.
    pub fn from_process() -> Self {
        let mut vars: HashMap<String, String> = dotenvy::dotenv_iter()
            .map(|iter| iter.filter_map(Result::ok).collect())
            .unwrap_or_default();
        vars.extend(std::env::vars());
        Self { vars }
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `name`, treating an empty value as unset (as `.env` templates leave them).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The first of `names` that is set, with the name it was found under.
    pub fn first_of<'a>(&'a self, names: &[&'a str]) -> Option<(&'a str, &'a str)> {
        names
            .iter()
            .find_map(|name| self.get(name).map(|value| (*name, value)))
    }

    pub fn required(&self, name: &str) -> Result<&str, ConfigError> {
        self.get(name)
            .ok_or_else(|| ConfigError::Missing(name.to_owned()))
    }

    /// Parses `name` if set, else returns `default`.
    pub fn parse_or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            Some(raw) => raw.parse().map_err(|e| ConfigError::invalid(name, e)),
            None => Ok(default),
        }
    }

    /// A count that must be at least 1: `name` if set, else `default`.
    pub fn count_or(&self, name: &str, default: usize) -> Result<usize, ConfigError> {
        match self.parse_or(name, default)? {
            0 => Err(ConfigError::invalid(name, "must be at least 1")),
            count => Ok(count),
        }
    }

    /// A duration written as people write them (`250ms`, `30s`, `2m`, `7d`), else `default`.
    pub fn duration_or(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.get(name) {
            Some(raw) => humantime::parse_duration(raw).map_err(|e| ConfigError::invalid(name, e)),
            None => Ok(default),
        }
    }

    /// Comma-separated durations (`5s,1m,2h`), `none` for an empty list, else those of
    /// `default` (an empty value counts as unset, as everywhere).
    pub fn durations_or(&self, name: &str, default: &str) -> Result<Vec<Duration>, ConfigError> {
        let raw = self.get(name).unwrap_or(default);
        if raw.eq_ignore_ascii_case("none") {
            return Ok(Vec::new());
        }
        raw.split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| humantime::parse_duration(d).map_err(|e| ConfigError::invalid(name, e)))
            .collect()
    }

    /// Like [`Env::duration_or`], for waits that cannot be zero.
    pub fn positive_duration_or(
        &self,
        name: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match self.duration_or(name, default)? {
            Duration::ZERO => Err(ConfigError::invalid(name, "must be longer than 0s")),
            duration => Ok(duration),
        }
    }

    /// A duration given as whole milliseconds, for variables whose name ends in `_MS`.
    pub fn millis_or(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        self.whole_units_or(name, default, Duration::from_millis)
    }

    /// A duration given as whole seconds, for variables whose name ends in `_SECS`.
    pub fn seconds_or(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        self.whole_units_or(name, default, Duration::from_secs)
    }

    fn whole_units_or(
        &self,
        name: &str,
        default: Duration,
        unit: fn(u64) -> Duration,
    ) -> Result<Duration, ConfigError> {
        self.get(name).map_or(Ok(default), |raw| {
            raw.parse()
                .map(unit)
                .map_err(|e| ConfigError::invalid(name, e))
        })
    }

    /// Comma-separated glob patterns (`*` and `?` wildcards), else those of `default`.
    pub fn patterns_or(
        &self,
        name: &str,
        default: &str,
    ) -> Result<Vec<glob::Pattern>, ConfigError> {
        self.get(name)
            .unwrap_or(default)
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| glob::Pattern::new(p).map_err(|e| ConfigError::invalid(name, e)))
            .collect()
    }

    /// A boolean in any of the spellings people write in `.env` files.
    pub fn flag_or(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(other) => Err(ConfigError::invalid(
                name,
                format!("expected true or false, got {other:?}"),
            )),
        }
    }

    /// Names of all variables starting with `prefix`, for profile discovery.
    pub fn names_with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> {
        self.vars
            .keys()
            .map(String::as_str)
            .filter(move |k| k.starts_with(prefix))
    }
}
