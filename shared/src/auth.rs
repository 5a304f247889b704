//! LiveKit's HS256 keys, as jwt-simple needs them, and webhook signing as LiveKit server does it
//! (for the `roomtape simulate` tool, the tests and the load generator).

use jwt_simple::prelude::{HS256Key, MACLike};
use jwt_simple::reexports::ct_codecs::{Base64, Base64UrlSafeNoPadding, Encoder};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::config::ApiKeys;

/// jwt-simple refuses HMAC keys under 12 bytes, but LiveKit's development secret is `secret`.
/// HMAC pads any key shorter than its 64-byte block with zeros, so a zero-padded key gives the
/// very same signatures.
const MIN_HMAC_KEY_BYTES: usize = 32;

/// How long LiveKit's webhook tokens are valid.
pub const WEBHOOK_TOKEN_TTL_SECS: u64 = 300;

/// The HS256 key for a LiveKit API secret of any length.
pub fn hs256_key(secret: &[u8]) -> HS256Key {
    let mut bytes = secret.to_vec();
    if bytes.len() < MIN_HMAC_KEY_BYTES {
        bytes.resize(MIN_HMAC_KEY_BYTES, 0);
    }
    HS256Key::from_bytes(&bytes)
}

/// Standard padded base64 of SHA-256 over `body`: a webhook token's `sha256` claim.
pub fn body_sha256(body: &[u8]) -> String {
    encode::<Base64>(Sha256::digest(body))
}

/// The claims LiveKit server puts in a webhook's token, issued at `now_unix`: `iss` = the API
/// key, `nbf` = `iat` = now, `exp` = now + 5 min, `sha256` of the body.
pub fn webhook_claims(api_key: &str, body: &[u8], now_unix: u64) -> serde_json::Value {
    serde_json::json!({
        "iss": api_key,
        "exp": now_unix + WEBHOOK_TOKEN_TTL_SECS,
        "nbf": now_unix,
        "iat": now_unix,
        "sha256": body_sha256(body),
    })
}

/// Signs webhook bodies with one API key pair, as LiveKit server does; the `Authorization`
/// value it sends. Cheap to share: the key and the JWT header are prepared once.
pub struct WebhookSigner {
    api_key: String,
    key: HS256Key,
    /// `{"alg":"HS256","typ":"JWT"}`, encoded.
    header: String,
}

impl std::fmt::Debug for WebhookSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSigner")
            .field("api_key", &self.api_key)
            .finish_non_exhaustive()
    }
}

impl WebhookSigner {
    /// A signer for `api_key`; `api_secret` may be of any length (LiveKit's dev secret is 6 bytes).
    pub fn new(api_key: &str, api_secret: &str) -> Self {
        Self {
            api_key: api_key.to_owned(),
            key: hs256_key(api_secret.as_bytes()),
            header: encode::<Base64UrlSafeNoPadding>(r#"{"alg":"HS256","typ":"JWT"}"#),
        }
    }

    /// A signer for the pair outgoing requests are signed with ([`ApiKeys::signing_pair`]).
    pub fn for_keys(keys: &ApiKeys) -> Option<Self> {
        keys.signing_pair()
            .map(|(key, secret)| Self::new(key, secret.expose_secret()))
    }

    /// The token for `body`, issued now by the system clock.
    pub fn sign(&self, body: &[u8]) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.sign_at(body, now)
    }

    /// The token for `body`, issued at `now_unix`.
    pub fn sign_at(&self, body: &[u8], now_unix: u64) -> String {
        let claims = webhook_claims(&self.api_key, body, now_unix).to_string();
        let signing_input = format!(
            "{}.{}",
            self.header,
            encode::<Base64UrlSafeNoPadding>(claims)
        );
        let tag = self.key.authentication_tag(signing_input.as_bytes());
        format!("{signing_input}.{}", encode::<Base64UrlSafeNoPadding>(tag))
    }
}

fn encode<E: Encoder>(bytes: impl AsRef<[u8]>) -> String {
    // Encoding into a String cannot fail: the output buffer is sized by the encoder.
    E::encode_to_string(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use jwt_simple::prelude::{JWTClaims, UnixTimeStamp, VerificationOptions};
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct BodyHash {
        sha256: String,
    }

    #[test]
    fn tokens_verify_with_the_padded_key_and_carry_livekits_claims() {
        let signer = WebhookSigner::new("devkey", "secret");
        let token = signer.sign_at(b"{}", 1_700_000_000);
        let options = VerificationOptions {
            artificial_time: Some(UnixTimeStamp::from_secs(1_700_000_010)),
            ..VerificationOptions::default()
        };
        let claims: JWTClaims<BodyHash> = hs256_key(b"secret")
            .verify_token(&token, Some(options))
            .expect("verifies");
        assert_eq!(claims.issuer.as_deref(), Some("devkey"));
        assert_eq!(claims.issued_at.map(|t| t.as_secs()), Some(1_700_000_000));
        assert_eq!(
            claims.invalid_before.map(|t| t.as_secs()),
            Some(1_700_000_000)
        );
        assert_eq!(claims.expires_at.map(|t| t.as_secs()), Some(1_700_000_300));
        // LiveKit's own value for `{}` (base64 of SHA-256, padded).
        assert_eq!(
            claims.custom.sha256,
            "RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o="
        );
        assert!(token.starts_with("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."));
    }
}
