//! The access token LiveKit's server API wants for egress calls.

use jwt_simple::prelude::{Claims, Duration, MACLike};
use roomtape_shared::auth::hs256_key;
use roomtape_shared::config::ApiKeys;
use secrecy::ExposeSecret;
use serde::Serialize;

/// Short-lived: minted per request.
const TOKEN_TTL_SECS: u64 = 600;

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
pub fn egress_token(keys: &ApiKeys) -> Result<String, String> {
    let (key, secret) = keys.signing_pair().ok_or("no LiveKit API key configured")?;
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
        .map_err(|e| e.to_string())
}
