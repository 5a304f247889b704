//! LiveKit API keys (several at once for rotation) and the server URL.

use secrecy::SecretString;
use url::Url;

use super::{ConfigError, Env};

/// API key → secret pairs. Webhooks are verified with the secret of the key in their `iss`.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    pairs: Vec<(String, SecretString)>,
}

impl ApiKeys {
    /// From `LIVEKIT_KEYS` (`key1: secret1, key2: secret2`, the livekit-server format) and/or
    /// `LIVEKIT_API_KEY` + `LIVEKIT_API_SECRET`; at least one pair is required.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let mut pairs = match env.get("LIVEKIT_KEYS") {
            Some(raw) => parse_keys(raw).map_err(|r| ConfigError::invalid("LIVEKIT_KEYS", r))?,
            None => Vec::new(),
        };
        match (env.get("LIVEKIT_API_KEY"), env.get("LIVEKIT_API_SECRET")) {
            // First, so that it is the pair outgoing requests are signed with.
            (Some(key), Some(secret)) => {
                pairs.retain(|(k, _)| k != key);
                pairs.insert(0, (key.to_owned(), secret.into()));
            }
            (Some(_), None) => return Err(ConfigError::Missing("LIVEKIT_API_SECRET".into())),
            (None, Some(_)) => return Err(ConfigError::Missing("LIVEKIT_API_KEY".into())),
            (None, None) if pairs.is_empty() => {
                return Err(ConfigError::Missing("LIVEKIT_API_KEY".into()))
            }
            (None, None) => {}
        }
        Ok(Self { pairs })
    }

    pub fn new(pairs: impl IntoIterator<Item = (String, SecretString)>) -> Self {
        Self {
            pairs: pairs.into_iter().collect(),
        }
    }

    pub fn secret_for(&self, key: &str) -> Option<&SecretString> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, s)| s)
    }

    /// The pair outgoing API requests are signed with: `LIVEKIT_API_KEY` if set, else the
    /// first of `LIVEKIT_KEYS`.
    pub fn signing_pair(&self) -> Option<(&str, &SecretString)> {
        self.pairs.first().map(|(k, s)| (k.as_str(), s))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(k, _)| k.as_str())
    }
}

fn parse_keys(raw: &str) -> Result<Vec<(String, SecretString)>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (key, secret) = entry
                .split_once(':')
                .ok_or_else(|| "expected `key: secret` pairs separated by commas".to_owned())?;
            let (key, secret) = (key.trim(), secret.trim());
            if key.is_empty() || secret.is_empty() {
                return Err("a key or secret is empty".to_owned());
            }
            Ok((key.to_owned(), SecretString::from(secret)))
        })
        .collect()
}

/// Where the processor reaches LiveKit's server API, and with which keys.
#[derive(Debug, Clone)]
pub struct LiveKitSettings {
    /// `LIVEKIT_URL` (alias `LIVEKIT_HOST`); `ws(s)://` is turned into `http(s)://`.
    pub url: Url,
    pub keys: ApiKeys,
}

impl LiveKitSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        crate::settings!(Self {
            url: env
                .first_of(&["LIVEKIT_URL", "LIVEKIT_HOST"])
                .ok_or_else(|| ConfigError::Missing("LIVEKIT_URL".into()))
                .and_then(|(var, raw)| http_url(var, raw)),
            keys: ApiKeys::from_env(env),
        })
    }
}

/// LiveKit URLs are often given as `wss://…` (the client URL); the server API is the same host
/// over HTTP(S).
fn http_url(var: &str, raw: &str) -> Result<Url, ConfigError> {
    let mut url = Url::parse(raw).map_err(|e| ConfigError::invalid(var, e))?;
    let scheme = match url.scheme() {
        "ws" | "http" => "http",
        "wss" | "https" => "https",
        other => {
            return Err(ConfigError::invalid(
                var,
                format!("unsupported scheme {other:?}"),
            ))
        }
    };
    url.set_scheme(scheme)
        .map_err(|()| ConfigError::invalid(var, "cannot use an http scheme"))?;
    Ok(url)
}
