//! LiveKit's Egress API over Twirp: protobuf bodies, an HS256 token per request, typed errors.

mod token;

use std::time::Duration;

use prost::Message;
use serde::Deserialize;

use crate::config::LiveKitSettings;
use crate::events::proto::{
    egress_info, EgressInfo, ListEgressRequest, ListEgressResponse, ParticipantEgressRequest,
    RoomCompositeEgressRequest, StopEgressRequest, TrackCompositeEgressRequest, TrackEgressRequest,
};
pub use token::TokenError;

/// How long one API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// A failed Egress API call.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// LiveKit answered with a Twirp error (`{code, msg}`).
    #[error("LiveKit {method}: {code}: {msg}")]
    Twirp {
        method: &'static str,
        code: String,
        msg: String,
    },
    /// LiveKit could not be reached or did not answer in time.
    #[error("LiveKit {method} at {url} unreachable")]
    Unreachable {
        method: &'static str,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// LiveKit answered an HTTP error that is not a Twirp error (a proxy in front of it).
    #[error("LiveKit {method} at {url}: HTTP {status}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
    },
    /// LiveKit answered 2xx with a body that is not the expected protobuf.
    #[error("LiveKit {method}: the response is not a {method} response")]
    Decode {
        method: &'static str,
        #[source]
        source: prost::DecodeError,
    },
    /// The request could not be made at all (no key, an unusable URL).
    #[error("cannot call LiveKit {method}")]
    Request {
        method: &'static str,
        #[source]
        source: RequestError,
    },
}

/// Why a request could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("LIVEKIT_URL cannot take an API path")]
    Url(#[from] url::ParseError),
}

impl EgressError {
    /// The Twirp error code, if LiveKit sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Twirp { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether LiveKit may have carried the call out although it failed: the answer was lost
    /// (a timeout, a cut connection) or came from a failure that may follow the work (a 5xx,
    /// Twirp `internal`). `false` only when the request surely never reached LiveKit, or
    /// LiveKit said it did nothing.
    pub fn may_have_acted(&self) -> bool {
        match self {
            Self::Twirp { code, .. } => {
                matches!(code.as_str(), "internal" | "unknown" | "deadline_exceeded")
            }
            Self::Unreachable { source, .. } => !source.is_connect(),
            Self::Status { status, .. } => *status >= 500,
            // A 2xx: LiveKit did it, whatever the body says.
            Self::Decode { .. } => true,
            Self::Request { .. } => false,
        }
    }

    /// Worth trying again later: LiveKit is down, overloaded or timed out.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Twirp { code, .. } => matches!(
                code.as_str(),
                "unavailable" | "internal" | "deadline_exceeded" | "resource_exhausted" | "unknown"
            ),
            Self::Unreachable { .. } => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429,
            Self::Decode { .. } | Self::Request { .. } => false,
        }
    }
}

#[derive(Deserialize)]
struct TwirpError {
    code: String,
    #[serde(default)]
    msg: String,
}

/// One of the Egress API's starts, by the kind of recording (CONTRACTS §4).
#[derive(Debug, Clone, PartialEq)]
pub enum StartRequest {
    RoomComposite(RoomCompositeEgressRequest),
    Participant(ParticipantEgressRequest),
    TrackComposite(TrackCompositeEgressRequest),
    Track(TrackEgressRequest),
}

impl StartRequest {
    /// The Twirp method of `livekit.Egress` that starts it.
    pub fn method(&self) -> &'static str {
        match self {
            Self::RoomComposite(_) => "StartRoomCompositeEgress",
            Self::Participant(_) => "StartParticipantEgress",
            Self::TrackComposite(_) => "StartTrackCompositeEgress",
            Self::Track(_) => "StartTrackEgress",
        }
    }
}

/// The request as `EgressInfo` reports it.
impl From<StartRequest> for egress_info::Request {
    fn from(request: StartRequest) -> Self {
        match request {
            StartRequest::RoomComposite(r) => Self::RoomComposite(r),
            StartRequest::Participant(r) => Self::Participant(r),
            StartRequest::TrackComposite(r) => Self::TrackComposite(r),
            StartRequest::Track(r) => Self::Track(r),
        }
    }
}

/// The Egress service of one LiveKit deployment.
#[derive(Debug, Clone)]
pub struct EgressClient {
    settings: LiveKitSettings,
    http: reqwest::Client,
}

/// The HTTP client for LiveKit's API could not be built (its TLS set-up), so no call could
/// keep [`CALL_TIMEOUT`]: start-up fails rather than call without it.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client for LiveKit's API")]
pub struct ClientError(#[from] reqwest::Error);

impl EgressClient {
    pub fn new(settings: LiveKitSettings) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder().timeout(CALL_TIMEOUT).build()?;
        Ok(Self { settings, http })
    }

    pub async fn start(&self, request: &StartRequest) -> Result<EgressInfo, EgressError> {
        let method = request.method();
        match request {
            StartRequest::RoomComposite(request) => self.call(method, request).await,
            StartRequest::Participant(request) => self.call(method, request).await,
            StartRequest::TrackComposite(request) => self.call(method, request).await,
            StartRequest::Track(request) => self.call(method, request).await,
        }
    }

    pub async fn stop(&self, egress_id: &str) -> Result<EgressInfo, EgressError> {
        let request = StopEgressRequest {
            egress_id: egress_id.to_owned(),
        };
        self.call("StopEgress", &request).await
    }

    pub async fn list(&self, request: &ListEgressRequest) -> Result<Vec<EgressInfo>, EgressError> {
        let response: ListEgressResponse = self.call("ListEgress", request).await?;
        Ok(response.items)
    }

    async fn call<Req: Message, Resp: Message + Default>(
        &self,
        method: &'static str,
        request: &Req,
    ) -> Result<Resp, EgressError> {
        let request_error = |source: RequestError| EgressError::Request { method, source };
        let url = self
            .settings
            .url
            .join(&format!("twirp/livekit.Egress/{method}"))
            .map_err(|e| request_error(e.into()))?;
        let token =
            token::egress_token(&self.settings.keys).map_err(|e| request_error(e.into()))?;
        let unreachable = |source| EgressError::Unreachable {
            method,
            url: url.to_string(),
            source,
        };
        let response = self
            .http
            .post(url.clone())
            .bearer_auth(token)
            .header("content-type", "application/protobuf")
            .body(request.encode_to_vec())
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        if status.is_success() {
            return Resp::decode(body).map_err(|source| EgressError::Decode { method, source });
        }
        match serde_json::from_slice::<TwirpError>(&body) {
            Ok(error) => Err(EgressError::Twirp {
                method,
                code: error.code,
                msg: error.msg,
            }),
            Err(_) => Err(EgressError::Status {
                method,
                url: url.to_string(),
                status: status.as_u16(),
            }),
        }
    }
}
