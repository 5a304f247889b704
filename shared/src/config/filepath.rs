//! `COMMAND_FILEPATH_TEMPLATE`, and the rule every object key roomtape writes or links keeps.

use super::{ConfigError, Env};

/// `COMMAND_FILEPATH_TEMPLATE`'s default.
const DEFAULT_TEMPLATE: &str = "recordings/{room_name}/{time}";

/// `COMMAND_FILEPATH_TEMPLATE`: the object key a start's recording gets when it names none, and
/// the fixed prefix (up to its first `{`) any `filepath` a command names must keep, so a
/// publisher cannot write anywhere in the configured buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilepathTemplate {
    template: String,
}

impl Default for FilepathTemplate {
    fn default() -> Self {
        Self {
            template: DEFAULT_TEMPLATE.to_owned(),
        }
    }
}

impl FilepathTemplate {
    /// Read the same way by the processor, which renders it, and the API, which checks a start
    /// against it before sending it.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        const VAR: &str = "COMMAND_FILEPATH_TEMPLATE";
        Self::new(env.get(VAR).unwrap_or(DEFAULT_TEMPLATE))
            .map_err(|reason| ConfigError::invalid(VAR, reason))
    }

    /// A template with no leading `/` and no `.` or `..` segment.
    pub fn new(template: &str) -> Result<Self, String> {
        let template = template.trim();
        if template.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if let Some(problem) = key_problem(template) {
            return Err(problem.to_owned());
        }
        Ok(Self {
            template: template.to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.template
    }

    /// The part every command's `filepath` must start with.
    pub fn prefix(&self) -> &str {
        self.template
            .find('{')
            .map_or(self.template.as_str(), |at| &self.template[..at])
    }
}

/// Why `key` cannot be an object key that a URL names: URLs resolve `.` and `..` segments
/// away, and a leading `/` is not part of S3 keys. Commands refuse such keys; storage links none.
pub fn key_problem(key: &str) -> Option<&'static str> {
    if key.starts_with('/') {
        return Some("must not start with /");
    }
    key.split('/')
        .any(|segment| segment == "." || segment == "..")
        .then_some("must not have . or .. segments")
}
