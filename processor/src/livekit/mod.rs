//! LiveKit's Egress API over Twirp: protobuf bodies, an HS256 token per request, typed errors.

mod token;

use std::time::Duration;

use prost::Message;
use roomtape_shared::config::LiveKitSettings;
use roomtape_shared::events::proto::{
    EgressInfo, ListEgressRequest, ListEgressResponse, RoomCompositeEgressRequest,
    StopEgressRequest,
};
use serde::Deserialize;

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
    #[error("LiveKit {method} unreachable: {reason}")]
    Unreachable {
        method: &'static str,
        reason: String,
    },
    /// LiveKit answered something that is not a Twirp response.
    #[error("LiveKit {method}: unexpected response: {reason}")]
    Protocol {
        method: &'static str,
        reason: String,
    },
}

impl EgressError {
    /// The Twirp error code, if LiveKit sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Twirp { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Worth trying again later: LiveKit is down, overloaded or timed out.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Twirp { code, .. } => {
                matches!(
                    code.as_str(),
                    "unavailable"
                        | "internal"
                        | "deadline_exceeded"
                        | "resource_exhausted"
                        | "unknown"
                )
            }
            Self::Unreachable { .. } => true,
            Self::Protocol { .. } => false,
        }
    }
}

#[derive(Deserialize)]
struct TwirpError {
    code: String,
    #[serde(default)]
    msg: String,
}

/// The Egress service of one LiveKit deployment.
#[derive(Debug, Clone)]
pub struct EgressClient {
    settings: LiveKitSettings,
    http: reqwest::Client,
}

impl EgressClient {
    pub fn new(settings: LiveKitSettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self { settings, http }
    }

    pub async fn start_room_composite(
        &self,
        request: &RoomCompositeEgressRequest,
    ) -> Result<EgressInfo, EgressError> {
        self.call("StartRoomCompositeEgress", request).await
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
        let url = self
            .settings
            .url
            .join(&format!("twirp/livekit.Egress/{method}"))
            .map_err(|e| EgressError::Protocol {
                method,
                reason: e.to_string(),
            })?;
        let token = token::egress_token(&self.settings.keys)
            .map_err(|reason| EgressError::Protocol { method, reason })?;
        let response = self
            .http
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/protobuf")
            .body(request.encode_to_vec())
            .send()
            .await
            .map_err(|e| EgressError::Unreachable {
                method,
                reason: e.to_string(),
            })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| EgressError::Unreachable {
                method,
                reason: e.to_string(),
            })?;
        if status.is_success() {
            return Resp::decode(body).map_err(|e| EgressError::Protocol {
                method,
                reason: e.to_string(),
            });
        }
        match serde_json::from_slice::<TwirpError>(&body) {
            Ok(error) => Err(EgressError::Twirp {
                method,
                code: error.code,
                msg: error.msg,
            }),
            Err(_) if status.is_server_error() => Err(EgressError::Unreachable {
                method,
                reason: format!("HTTP {status}"),
            }),
            Err(_) => Err(EgressError::Protocol {
                method,
                reason: format!("HTTP {status}"),
            }),
        }
    }
}
