//! The access token LiveKit's server API wants for egress calls.

use jwt_simple::prelude::{Claims, Duration, MACLike};
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::auth::hs256_key;
use crate::config::ApiKeys;

/// Short-lived: minted per request.
const TOKEN_TTL_SECS: u64 = 600;

/// Why no token could be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no LiveKit API key is configured (LIVEKIT_API_KEY, LIVEKIT_API_SECRET)")]
    NoKey,
    #[error("cannot sign the access token")]
    Sign(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[derive(Serialize)]
struct Grants {
    video: VideoGrant,
}

#[derive(Serialize)]
struct VideoGrant {
    #[serde(rename = "roomRecord")]
    room_record: bool,
}

/// An HS256 token with `iss` = the API key and the `roomRecord` grant egress calls require.
pub fn egress_token(keys: &ApiKeys) -> Result<String, TokenError> {
    let (key, secret) = keys.signing_pair().ok_or(TokenError::NoKey)?;
    let claims = Claims::with_custom_claims(
        Grants {
            video: VideoGrant { room_record: true },
        },
        Duration::from_secs(TOKEN_TTL_SECS),
    )
    .with_issuer(key)
    .with_subject(key);
    hs256_key(secret.expose_secret().as_bytes())
        .authenticate(claims)
        .map_err(|e| TokenError::Sign(e.into()))
}
