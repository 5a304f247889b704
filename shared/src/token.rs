//! LiveKit's HS256 tokens checked as LiveKit checks them, for every token roomtape receives:
//! webhook tokens (the ingestor, which then compares the body hash) and access tokens (the
//! API, which then reads the `video` grant). `iss` names the key, whose secret verifies the
//! signature; `exp` is required and `exp`/`nbf`/`iat` are honoured with LiveKit's leeway.
//!
//! The HMAC is `hmac` + `sha2`, not jwt-simple: jwt-simple computes HS256 with the pure-Rust
//! `hmac-sha256` crate whatever its features, while `sha2` uses the CPU's SHA instructions
//! (detected at run time) and a keyed HMAC state can be prepared once per key. The header is
//! decoded on the stack and the claims into the caller's buffer: nothing here allocates.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::Sha256;

use crate::clock::Clock;
use crate::config::ApiKeys;

/// Clock skew allowed on `exp`, `nbf` and `iat`, as LiveKit's Go, Python and Rust SDKs allow.
pub const LEEWAY_SECS: u64 = 60;

/// The largest decoded JWT header accepted (LiveKit's is 27 bytes).
const MAX_HEADER_BYTES: usize = 512;

type HmacSha256 = Hmac<Sha256>;

/// Why a token is refused.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token is not a JWT")]
    Malformed,
    #[error("token is signed with an unknown API key")]
    UnknownKey,
    #[error("token algorithm is not HS256")]
    WrongAlgorithm,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token has no exp claim")]
    MissingExpiry,
}

impl TokenError {
    /// A stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownKey => "unknown_key",
            Self::WrongAlgorithm => "wrong_algorithm",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::MissingExpiry => "missing_exp",
        }
    }
}

/// A token whose key, signature and validity period have been checked: the key that signed it
/// and its claims set (JSON), for the caller to read its own claims from.
#[derive(Debug)]
pub struct Verified<'b> {
    pub api_key: Arc<str>,
    pub claims: &'b [u8],
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
}

/// The claims every token is checked on.
#[derive(Deserialize)]
struct Registered<'a> {
    #[serde(borrow, default)]
    iss: Option<Cow<'a, str>>,
    // NumericDate may be fractional (RFC 7519 §2).
    exp: Option<f64>,
    nbf: Option<f64>,
    iat: Option<f64>,
}

/// One configured key: its name (shared by every token it signs) and its HMAC state with the
/// secret already absorbed, cloned per token instead of re-keyed.
struct Key {
    name: Arc<str>,
    mac: HmacSha256,
}

/// Verifies tokens against the configured keys, at the time `clock` reads.
pub struct TokenVerifier {
    keys: HashMap<String, Key>,
    clock: Clock,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .field("clock", &self.clock)
            .finish()
    }
}

impl TokenVerifier {
    pub fn new(keys: &ApiKeys, clock: Clock) -> Self {
        let keys = keys
            .keys()
            .filter_map(|name| {
                let secret = keys.secret_for(name)?.expose_secret().as_bytes();
                // HMAC takes a key of any length (LiveKit's development secret is 6 bytes).
                let mac = HmacSha256::new_from_slice(secret).ok()?;
                let key = Key {
                    name: Arc::from(name),
                    mac,
                };
                Some((name.to_owned(), key))
            })
            .collect();
        Self { keys, clock }
    }

    /// Checks `token` (the bare JWT): shape, algorithm, key, signature, `exp`/`nbf`/`iat`. The
    /// claims set is decoded into `claims_buf`; one too small for it is a malformed token.
    pub fn verify<'b>(
        &self,
        token: &str,
        claims_buf: &'b mut [u8],
    ) -> Result<Verified<'b>, TokenError> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (header, claims) = signing_input.split_once('.').ok_or(TokenError::Malformed)?;
        if claims.contains('.') {
            return Err(TokenError::Malformed);
        }

        let mut header_buf = [0; MAX_HEADER_BYTES];
        let header: Header = serde_json::from_slice(decode(header, &mut header_buf)?)
            .map_err(|_| TokenError::Malformed)?;
        if header.alg != "HS256" {
            return Err(TokenError::WrongAlgorithm);
        }
        let claims = decode(claims, claims_buf)?;
        let registered: Registered =
            serde_json::from_slice(claims).map_err(|_| TokenError::Malformed)?;
        // `iss` is read before verification only to choose the key to verify with: a token
        // whose signature verifies under it was issued by that key's holder.
        let issuer = registered.iss.as_deref().ok_or(TokenError::UnknownKey)?;
        let key = self.keys.get(issuer).ok_or(TokenError::UnknownKey)?;

        let mut tag = [0; 32];
        let tag_len = URL_SAFE_NO_PAD
            .decode_slice(signature, &mut tag)
            .map_err(|_| TokenError::BadSignature)?;
        let mut mac = key.mac.clone();
        mac.update(signing_input.as_bytes());
        mac.verify_slice(&tag[..tag_len])
            .map_err(|_| TokenError::BadSignature)?;

        self.check_times(&registered)?;
        Ok(Verified {
            api_key: key.name.clone(),
            claims,
        })
    }

    fn check_times(&self, claims: &Registered) -> Result<(), TokenError> {
        // Whole seconds, as the clock and LiveKit's tokens are.
        let now = self.clock.now_unix() as f64;
        let leeway = LEEWAY_SECS as f64;
        let expires = claims.exp.ok_or(TokenError::MissingExpiry)?;
        if now > expires + leeway {
            return Err(TokenError::Expired);
        }
        let starts = [claims.nbf, claims.iat].into_iter().flatten();
        if starts.into_iter().any(|at| at > now + leeway) {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }
}

/// One base64url part of a token, decoded into `buf`.
fn decode<'b>(part: &str, buf: &'b mut [u8]) -> Result<&'b [u8], TokenError> {
    let len = URL_SAFE_NO_PAD
        .decode_slice(part, buf)
        .map_err(|_| TokenError::Malformed)?;
    Ok(&buf[..len])
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn verifier() -> TokenVerifier {
        let keys = ApiKeys::new([("devkey".to_owned(), "secret".into())]);
        TokenVerifier::new(&keys, Clock::FixedUnix(NOW))
    }

    fn token(header: &str, claims: &serde_json::Value, secret: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut mac = HmacSha256::new_from_slice(secret).expect("key");
        mac.update(input.as_bytes());
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

    #[test]
    fn the_claims_come_back_with_the_key_and_a_short_buffer_is_malformed() {
        let claims = serde_json::json!({"iss": "devkey", "exp": NOW + 300, "sub": "alice"});
        let token = token(HS256, &claims, b"secret");
        let mut buf = [0; 256];
        let verified = verifier().verify(&token, &mut buf).expect("valid");
        assert_eq!(&*verified.api_key, "devkey");
        let read: serde_json::Value = serde_json::from_slice(verified.claims).expect("json");
        assert_eq!(read["sub"], "alice");
        let mut small = [0; 8];
        assert_eq!(
            verifier().verify(&token, &mut small).map(drop),
            Err(TokenError::Malformed)
        );
    }
}
