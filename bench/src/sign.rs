//! Signs webhook bodies as LiveKit server does: an HS256 JWT with `iss` = API key, `nbf`/`iat` =
//! now, `exp` = now + 5 min and `sha256` = standard padded base64 of SHA-256 over the body.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jwt_simple::algorithms::{HS256Key, MACLike};
use sha2::{Digest, Sha256};

use crate::event::now_unix;

/// jwt-simple refuses short HMAC keys; zero padding up to the block size leaves HMAC unchanged,
/// so LiveKit's development secret `secret` still gives LiveKit's signatures.
const MIN_KEY_BYTES: usize = 32;
/// How long LiveKit's webhook tokens are valid.
const TOKEN_TTL_SECS: u64 = 300;

/// Signs with one API key pair; cheap to share.
pub struct Signer {
    api_key: String,
    key: HS256Key,
    /// `{"alg":"HS256","typ":"JWT"}`, encoded once.
    header: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("api_key", &self.api_key)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub fn new(api_key: &str, api_secret: &str) -> Self {
        let mut secret = api_secret.as_bytes().to_vec();
        if secret.len() < MIN_KEY_BYTES {
            secret.resize(MIN_KEY_BYTES, 0);
        }
        Self {
            api_key: api_key.to_owned(),
            key: HS256Key::from_bytes(&secret),
            header: URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        }
    }

    /// The `Authorization` value LiveKit would send with `body`, issued now.
    pub fn sign(&self, body: &[u8]) -> String {
        let now = now_unix();
        let claims = serde_json::json!({
            "iss": self.api_key,
            "exp": now + TOKEN_TTL_SECS,
            "nbf": now,
            "iat": now,
            "sha256": STANDARD.encode(Sha256::digest(body)),
        });
        let signing_input = format!(
            "{}.{}",
            self.header,
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let tag = self.key.authentication_tag(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag))
    }
}

#[cfg(test)]
mod tests {
    use jwt_simple::prelude::{NoCustomClaims, VerificationOptions};

    use super::*;

    #[test]
    fn tokens_verify_with_the_padded_key() {
        let token = Signer::new("devkey", "secret").sign(b"{}");
        let mut raw = b"secret".to_vec();
        raw.resize(MIN_KEY_BYTES, 0);
        let claims = HS256Key::from_bytes(&raw)
            .verify_token::<NoCustomClaims>(&token, Some(VerificationOptions::default()))
            .expect("verifies");
        assert_eq!(claims.issuer.as_deref(), Some("devkey"));
    }
}
