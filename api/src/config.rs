//! `ApiSettings`: everything `roomtape-api` reads from the environment, validated at start-up.

use std::net::SocketAddr;
use std::time::Duration;

use roomtape_shared::config::{
    command_start_deadline, AmqpSettings, ApiKeys, ConfigError, DatabaseSettings, Env,
    FilepathTemplate, RetentionRules, StorageProfiles, TelemetrySettings,
};
use roomtape_shared::usage::Prices;
use secrecy::SecretString;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Lists, details and download links.
    Read,
    /// Everything.
    Write,
}

/// One entry of `API_TOKENS`; its `Debug` hides the token.
#[derive(Debug, Clone)]
pub struct ApiToken {
    pub name: String,
    pub token: SecretString,
    pub scope: Scope,
}

/// Whether and how LiveKit access tokens are accepted besides `API_TOKENS`.
#[derive(Debug, Clone)]
pub struct LiveKitTokens {
    /// The LiveKit key pairs that sign them (`LIVEKIT_API_KEY`/`_SECRET`, `LIVEKIT_KEYS`);
    /// `None`: none are accepted (`API_LIVEKIT_TOKENS=off`, or no key configured).
    pub keys: Option<ApiKeys>,
    /// `API_LIVEKIT_JOIN_READS` (default on): `roomJoin` reads its room's ready recordings.
    pub join_reads: bool,
}

impl LiveKitTokens {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        roomtape_shared::settings!(Self {
            keys: livekit_keys(env),
            join_reads: env.flag_or("API_LIVEKIT_JOIN_READS", true),
        })
    }
}

/// `API_LIVEKIT_TOKENS` unset: LiveKit tokens are accepted when a LiveKit key is configured
/// (the keys the deployment already has); `on`: a key is required; `off`: never.
fn livekit_keys(env: &Env) -> Result<Option<ApiKeys>, ConfigError> {
    const VAR: &str = "API_LIVEKIT_TOKENS";
    let any_key = ["LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LIVEKIT_KEYS"]
        .into_iter()
        .any(|var| env.get(var).is_some());
    match env.get(VAR) {
        None if !any_key => Ok(None),
        None => ApiKeys::from_env(env).map(Some),
        Some(_) => env
            .flag_or(VAR, true)
            .and_then(|on| on.then(|| ApiKeys::from_env(env)).transpose()),
    }
}

/// Everything `roomtape-api` needs.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// `API_BIND` (default `0.0.0.0:8081`).
    pub bind: SocketAddr,
    /// `API_TOKENS`: comma-separated `name:token:scope`, scope `read` or `write`.
    pub tokens: Vec<ApiToken>,
    /// LiveKit access tokens: `API_LIVEKIT_TOKENS`, `API_LIVEKIT_JOIN_READS` and the keys.
    pub livekit_tokens: LiveKitTokens,
    /// `API_CORS_ORIGINS`: comma-separated origins browsers may call from (default none).
    pub cors_origins: Vec<String>,
    /// `API_COMMAND_TIMEOUT` (default `30s`): how long a start or stop waits for its reply.
    pub command_timeout: Duration,
    /// `COMMAND_FILEPATH_TEMPLATE`, so a start is checked here as the processor will check it.
    pub filepath_template: FilepathTemplate,
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub storage: StorageProfiles,
    /// `USAGE_*`: the prices usage estimates its cost with.
    pub prices: Prices,
    /// `RECORDING_RETENTION`, which the console shows with what its next sweep deletes.
    pub retention: RetentionRules,
    pub telemetry: TelemetrySettings,
}

impl ApiSettings {
    /// Every missing or malformed setting is named in the one error.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        roomtape_shared::settings!(Self {
            bind: env.parse_or("API_BIND", SocketAddr::from(([0, 0, 0, 0], 8081))),
            tokens: env
                .required("API_TOKENS")
                .and_then(|raw| tokens(raw).map_err(|r| ConfigError::invalid("API_TOKENS", r))),
            livekit_tokens: LiveKitTokens::from_env(env),
            cors_origins: cors_origins(env.get("API_CORS_ORIGINS").unwrap_or_default())
                .map_err(|r| ConfigError::invalid("API_CORS_ORIGINS", r)),
            command_timeout: command_timeout(env),
            filepath_template: FilepathTemplate::from_env(env),
            database: DatabaseSettings::from_env(env),
            amqp: AmqpSettings::from_env(env),
            storage: StorageProfiles::from_env(env),
            prices: Prices::from_env(env),
            retention: RetentionRules::from_env(env),
            telemetry: TelemetrySettings::from_env(env),
        })
    }
}

/// `API_COMMAND_TIMEOUT`, which must leave the processor its whole start deadline: a start
/// that times out here is then one that will never be carried out.
fn command_timeout(env: &Env) -> Result<Duration, ConfigError> {
    const VAR: &str = "API_COMMAND_TIMEOUT";
    let timeout = env.duration_or(VAR, Duration::from_secs(30))?;
    let deadline = command_start_deadline(env)?;
    if timeout <= deadline {
        return Err(ConfigError::invalid(
            VAR,
            format!(
                "{} must be longer than COMMAND_START_DEADLINE ({})",
                humantime::format_duration(timeout),
                humantime::format_duration(deadline)
            ),
        ));
    }
    Ok(timeout)
}

/// `name:token:scope,…`; a bad entry is named by its position and name, never by its token.
fn tokens(raw: &str) -> Result<Vec<ApiToken>, String> {
    let mut tokens: Vec<ApiToken> = Vec::new();
    let mut bad = Vec::new();
    for (index, entry) in raw.split(',').map(str::trim).enumerate() {
        let position = index + 1;
        let parts: Vec<&str> = entry.split(':').collect();
        let [name, token, scope] = parts.as_slice() else {
            bad.push(format!("entry {position} is not name:token:scope"));
            continue;
        };
        let (name, token) = (name.trim(), token.trim());
        if name.is_empty() || token.is_empty() {
            bad.push(format!("entry {position} has an empty name or token"));
            continue;
        }
        let scope = match scope.trim() {
            "read" => Scope::Read,
            "write" => Scope::Write,
            other => {
                bad.push(format!(
                    "entry {position} ({name}) has scope {other:?}, expected read or write"
                ));
                continue;
            }
        };
        if tokens.iter().any(|t| t.name == name) {
            bad.push(format!("entry {position} repeats the name {name}"));
            continue;
        }
        use secrecy::ExposeSecret;
        if tokens.iter().any(|t| t.token.expose_secret() == token) {
            bad.push(format!(
                "entry {position} ({name}) repeats another entry's token"
            ));
            continue;
        }
        tokens.push(ApiToken {
            name: name.to_owned(),
            token: token.into(),
            scope,
        });
    }
    if bad.is_empty() {
        Ok(tokens)
    } else {
        Err(bad.join(", "))
    }
}

/// Comma-separated `scheme://host[:port]` origins, each as browsers send it.
fn cors_origins(raw: &str) -> Result<Vec<String>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|origin| {
            let url = url::Url::parse(origin).map_err(|e| format!("{origin:?}: {e}"))?;
            let plain = matches!(url.scheme(), "http" | "https")
                && url.host().is_some()
                && url.path() == "/"
                && url.query().is_none()
                && url.username().is_empty();
            if !plain || origin.ends_with('/') {
                return Err(format!(
                    "{origin:?} is not an origin such as https://example.com"
                ));
            }
            Ok(url.origin().ascii_serialization())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        let mut all = vec![
            (
                "DATABASE_URL",
                "postgres://roomtape@127.0.0.1:5432/roomtape",
            ),
            ("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            ("S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("S3_BUCKET", "recordings"),
            ("S3_ACCESS_KEY_ID", "key"),
            ("S3_SECRET_ACCESS_KEY", "secret"),
        ];
        all.extend_from_slice(pairs);
        Env::from_pairs(all)
    }

    #[test]
    fn tokens_are_parsed_strictly_and_bad_entries_named_without_their_token() {
        let parsed = tokens("ci:abc:read, ops:def:write").expect("valid");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[1].name, "ops");
        assert_eq!(parsed[1].scope, Scope::Write);
        let error = tokens("ci:abc:read,broken,web:s3cret:admin,ci:xyz:read,x:abc:write")
            .expect_err("invalid");
        assert!(error.contains("entry 2 is not name:token:scope"), "{error}");
        assert!(
            error.contains("entry 3 (web) has scope \"admin\""),
            "{error}"
        );
        assert!(error.contains("entry 4 repeats the name ci"), "{error}");
        assert!(
            error.contains("entry 5 (x) repeats another entry's token"),
            "{error}"
        );
        assert!(!error.contains("s3cret"), "{error}");
        assert!(tokens("a::read").is_err());
        assert!(tokens("").is_err());
    }

    #[test]
    fn every_problem_is_named_in_one_line() {
        let error = ApiSettings::from_env(&Env::from_pairs([
            ("API_BIND", "nowhere"),
            ("API_CORS_ORIGINS", "https://ok.example,not an origin"),
            ("API_COMMAND_TIMEOUT", "soon"),
        ]))
        .expect_err("invalid")
        .to_string();
        for var in [
            "API_TOKENS",
            "DATABASE_URL",
            "AMQP_URL",
            "API_BIND",
            "API_CORS_ORIGINS",
            "API_COMMAND_TIMEOUT",
        ] {
            assert!(error.contains(var), "{var} in {error}");
        }
        assert!(!error.contains('\n'), "{error}");
    }

    #[test]
    fn livekit_tokens_follow_the_keys_unless_turned_off() {
        let keys = [
            ("API_TOKENS", "ci:abc:read"),
            ("LIVEKIT_API_KEY", "APIkey"),
            ("LIVEKIT_API_SECRET", "secret"),
        ];
        let on = ApiSettings::from_env(&env(&keys)).expect("valid");
        assert!(on.livekit_tokens.keys.is_some());
        assert!(on.livekit_tokens.join_reads);
        let none = ApiSettings::from_env(&env(&[("API_TOKENS", "ci:abc:read")])).expect("valid");
        assert!(
            none.livekit_tokens.keys.is_none(),
            "no key, no LiveKit tokens"
        );
        let mut off = keys.to_vec();
        off.extend([
            ("API_LIVEKIT_TOKENS", "off"),
            ("API_LIVEKIT_JOIN_READS", "off"),
        ]);
        let off = ApiSettings::from_env(&env(&off)).expect("valid");
        assert!(off.livekit_tokens.keys.is_none());
        assert!(!off.livekit_tokens.join_reads);

        for (pairs, named) in [
            (
                vec![("API_TOKENS", "ci:abc:read"), ("API_LIVEKIT_TOKENS", "on")],
                "LIVEKIT_API_KEY",
            ),
            (
                vec![("API_TOKENS", "ci:abc:read"), ("LIVEKIT_API_KEY", "APIkey")],
                "LIVEKIT_API_SECRET",
            ),
            (
                vec![
                    ("API_TOKENS", "ci:abc:read"),
                    ("API_LIVEKIT_TOKENS", "maybe"),
                ],
                "API_LIVEKIT_TOKENS",
            ),
            (
                vec![
                    ("API_TOKENS", "ci:abc:read"),
                    ("API_LIVEKIT_JOIN_READS", "sure"),
                ],
                "API_LIVEKIT_JOIN_READS",
            ),
        ] {
            let error = ApiSettings::from_env(&env(&pairs))
                .expect_err(named)
                .to_string();
            assert!(error.contains(named), "{named} in {error}");
        }
    }

    #[test]
    fn defaults_and_origins() {
        let settings = ApiSettings::from_env(&env(&[
            ("API_TOKENS", "ci:abc:read"),
            (
                "API_CORS_ORIGINS",
                "https://app.example.com, http://localhost:3000",
            ),
        ]))
        .expect("valid");
        assert_eq!(settings.bind.port(), 8081);
        assert_eq!(settings.command_timeout, Duration::from_secs(30));
        assert_eq!(
            settings.cors_origins,
            ["https://app.example.com", "http://localhost:3000"]
        );
        assert!(!format!("{settings:?}").contains("abc"));
        let none = ApiSettings::from_env(&env(&[("API_TOKENS", "ci:abc:read")])).expect("valid");
        assert!(none.cors_origins.is_empty());
        assert!(cors_origins("https://a.example/path").is_err());
    }
}
