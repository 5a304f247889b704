//! One signed POST to an endpoint, and what came of it.

use std::time::Duration;

use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::redirect::Policy;

use super::{sign, WebhookSecret, ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// How much of a refusing endpoint's answer is kept to show an operator.
const ANSWER_EXCERPT: usize = 200;

/// The HTTP client deliveries go through: no redirects followed (a 3xx is an answer that is not
/// 2xx, retried like any other), each request bounded by `NOTIFY_TIMEOUT`.
#[derive(Debug, Clone)]
pub struct Poster {
    client: reqwest::Client,
}

/// The HTTP client could not be built (its TLS set-up failed).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client for notifications")]
pub struct PosterError(#[source] reqwest::Error);

impl Poster {
    pub fn new(timeout: Duration) -> Result<Self, PosterError> {
        let client = reqwest::Client::builder()
            .redirect(Policy::none())
            .timeout(timeout)
            .user_agent(concat!("roomtape/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(PosterError)?;
        Ok(Self { client })
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// A 2xx.
    Delivered { status: u16 },
    /// Any other answer, with the start of its body.
    Refused { status: u16, answer: String },
    /// No answer: refused connection, timeout, TLS, a broken response.
    Failed { error: String },
}

impl Attempt {
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Delivered { status } | Self::Refused { status, .. } => Some(*status),
            Self::Failed { .. } => None,
        }
    }

    /// What went wrong, in a few words (`None` when delivered).
    pub fn problem(&self) -> Option<String> {
        match self {
            Self::Delivered { .. } => None,
            Self::Refused { status, answer } if answer.is_empty() => {
                Some(format!("answered {status}"))
            }
            Self::Refused { status, answer } => Some(format!("answered {status}: {answer}")),
            Self::Failed { error } => Some(error.clone()),
        }
    }
}

/// POSTs `body` to `url` signed with `secret` as notification `id` at `timestamp` (Unix
/// seconds: each attempt is signed anew, since verifiers refuse stamps over 5 minutes old).
pub async fn post(
    poster: &Poster,
    url: &url::Url,
    secret: &WebhookSecret,
    id: &str,
    timestamp: u64,
    body: Vec<u8>,
) -> Attempt {
    let signature = sign(secret, id, timestamp, &body);
    let sent = poster
        .client
        .post(url.clone())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(ID_HEADER, id)
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(error) => {
            return Attempt::Failed {
                error: describe(&error),
            }
        }
    };
    let status = response.status().as_u16();
    if response.status().is_success() {
        return Attempt::Delivered { status };
    }
    // The answer is for a person reading why; a body that cannot be read says nothing more.
    let answer = response.text().await.unwrap_or_default();
    Attempt::Refused {
        status,
        answer: excerpt(&answer),
    }
}

/// The cause of a failed request in a few words, with the chain but not the URL (which may
/// carry a token in its query).
fn describe(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let cause = std::error::Error::source(error)
        .map(|source| format!(": {}", crate::Chain(source)))
        .unwrap_or_default();
    crate::redact::redact(&format!("{what}{cause}")).into_owned()
}

/// The start of an answer, with anything credential-shaped redacted (it is stored and shown).
fn excerpt(answer: &str) -> String {
    let redacted = crate::redact::redact(answer);
    let trimmed = redacted.trim();
    match trimmed.char_indices().nth(ANSWER_EXCERPT) {
        Some((cut, _)) => format!("{}…", &trimmed[..cut]),
        None => trimmed.to_owned(),
    }
}
