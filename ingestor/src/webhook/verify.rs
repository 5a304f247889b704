//! Webhook authentication exactly as LiveKit signs it, in two steps so that no body is read for
//! a request that is not authentic.
//!
//! LiveKit puts a JWT in `Authorization` (no `Bearer ` prefix, though we accept one): HS256,
//! `iss` = API key, `nbf`/`iat` = now, `exp` = now + 5 min, and a `sha256` claim holding the
//! standard padded base64 of SHA-256 over the raw body. [`Verifier::authenticate`] checks the
//! token from the header alone (signature, key, times) and keeps the claimed body hash;
//! [`Authenticated::check_body`] then compares it with the bytes read. Only that turns request
//! bytes into a [`VerifiedBody`].
//!
//! The HMAC is `hmac` + `sha2`, not jwt-simple: jwt-simple computes HS256 with the pure-Rust
//! `hmac-sha256` crate whatever its features, while `sha2` uses the CPU's SHA instructions
//! (detected at run time) and a keyed HMAC state can be prepared once per key. The token is
//! decoded into stack buffers: nothing here allocates per request.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use roomtape_shared::clock::Clock;
use roomtape_shared::config::ApiKeys;
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Clock skew allowed on `exp`, `nbf` and `iat`, as LiveKit's Go, Python and Rust SDKs allow.
pub const LEEWAY_SECS: u64 = 60;

/// The largest decoded JWT header and claims set accepted. LiveKit's are under 250 bytes; the
/// bound keeps decoding on the stack.
const MAX_PART_BYTES: usize = 2048;

type HmacSha256 = Hmac<Sha256>;

/// Why a request is not authentic. Each is answered 401; the variant is the metrics reason.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("missing Authorization header")]
    MissingToken,
    #[error("Authorization is not a JWT")]
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
    #[error("token has no sha256 claim")]
    MissingBodyHash,
    #[error("token's sha256 claim is not the padded base64 of a SHA-256")]
    MalformedBodyHash,
    #[error("body does not match the token's sha256 claim")]
    BodyHashMismatch,
}

impl VerifyError {
    /// A stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::Malformed => "malformed",
            Self::UnknownKey => "unknown_key",
            Self::WrongAlgorithm => "wrong_algorithm",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::MissingExpiry => "missing_exp",
            Self::MissingBodyHash => "missing_sha256",
            Self::MalformedBodyHash => "malformed_sha256",
            Self::BodyHashMismatch => "sha256_mismatch",
        }
    }
}

/// A token whose signature, key and validity period have been checked; the body it covers has
/// not been read yet.
#[derive(Debug)]
pub struct Authenticated {
    api_key: Arc<str>,
    body_sha256: [u8; 32],
}

impl Authenticated {
    /// The API key that signed the token.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// Checks the token's `sha256` claim against the bytes read.
    pub fn check_body(self, body: Bytes) -> Result<VerifiedBody, VerifyError> {
        let actual = Sha256::digest(&body);
        if !bool::from(self.body_sha256.ct_eq(actual.as_slice())) {
            return Err(VerifyError::BodyHashMismatch);
        }
        Ok(VerifiedBody {
            api_key: self.api_key,
            body,
        })
    }
}

/// Bytes whose signature and body hash have been checked, with the key that signed them. Its
/// fields are private: only [`Authenticated::check_body`] can make one.
#[derive(Debug, Clone)]
pub struct VerifiedBody {
    api_key: Arc<str>,
    body: Bytes,
}

impl VerifiedBody {
    /// The API key that signed it, and the bytes.
    pub fn into_parts(self) -> (Arc<str>, Bytes) {
        (self.api_key, self.body)
    }
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Claims<'a> {
    #[serde(borrow, default)]
    iss: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    sha256: Option<Cow<'a, str>>,
    // NumericDate may be fractional (RFC 7519 §2).
    exp: Option<f64>,
    nbf: Option<f64>,
    iat: Option<f64>,
}

/// One configured key: its name (shared by every request it signs) and its HMAC state with the
/// secret already absorbed, cloned per request instead of re-keyed.
struct Key {
    name: Arc<str>,
    mac: HmacSha256,
}

/// Verifies webhook tokens against the configured keys.
pub struct Verifier {
    keys: HashMap<String, Key>,
    clock: Clock,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .field("clock", &self.clock)
            .finish()
    }
}

impl Verifier {
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

    /// Checks the token in `authorization` (the raw header value): shape, algorithm, key,
    /// signature, `exp`/`nbf`/`iat`, and that it carries a body hash.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Authenticated, VerifyError> {
        let token = authorization
            .map(strip_bearer)
            .filter(|t| !t.is_empty())
            .ok_or(VerifyError::MissingToken)?;
        let (signing_input, signature) = token.rsplit_once('.').ok_or(VerifyError::Malformed)?;
        let (header, claims) = signing_input
            .split_once('.')
            .ok_or(VerifyError::Malformed)?;
        if claims.contains('.') {
            return Err(VerifyError::Malformed);
        }

        let mut header_buf = [0; MAX_PART_BYTES];
        let header: Header = decode_json(header, &mut header_buf)?;
        if header.alg != "HS256" {
            return Err(VerifyError::WrongAlgorithm);
        }
        let mut claims_buf = [0; MAX_PART_BYTES];
        let claims: Claims = decode_json(claims, &mut claims_buf)?;
        // `iss` is read before verification only to choose the key to verify with: a token
        // whose signature verifies under it was issued by that key's holder.
        let issuer = claims.iss.as_deref().ok_or(VerifyError::UnknownKey)?;
        let key = self.keys.get(issuer).ok_or(VerifyError::UnknownKey)?;

        let mut tag = [0; 32];
        let tag_len = URL_SAFE_NO_PAD
            .decode_slice(signature, &mut tag)
            .map_err(|_| VerifyError::BadSignature)?;
        let mut mac = key.mac.clone();
        mac.update(signing_input.as_bytes());
        mac.verify_slice(&tag[..tag_len])
            .map_err(|_| VerifyError::BadSignature)?;

        self.check_times(&claims)?;
        let claimed = claims.sha256.ok_or(VerifyError::MissingBodyHash)?;
        let mut body_sha256 = [0; 32];
        match STANDARD.decode_slice(claimed.as_bytes(), &mut body_sha256) {
            Ok(32) => {}
            _ => return Err(VerifyError::MalformedBodyHash),
        }
        Ok(Authenticated {
            api_key: key.name.clone(),
            body_sha256,
        })
    }

    fn check_times(&self, claims: &Claims) -> Result<(), VerifyError> {
        // Whole seconds, as the clock and LiveKit's tokens are.
        let now = self.clock.now_unix() as f64;
        let leeway = LEEWAY_SECS as f64;
        let expires = claims.exp.ok_or(VerifyError::MissingExpiry)?;
        if now > expires + leeway {
            return Err(VerifyError::Expired);
        }
        let starts = [claims.nbf, claims.iat].into_iter().flatten();
        if starts.into_iter().any(|at| at > now + leeway) {
            return Err(VerifyError::NotYetValid);
        }
        Ok(())
    }
}

/// Decodes one base64url part of a token into `buf` and parses it, borrowing from `buf`.
fn decode_json<'a, T: Deserialize<'a>>(
    part: &str,
    buf: &'a mut [u8; MAX_PART_BYTES],
) -> Result<T, VerifyError> {
    let len = URL_SAFE_NO_PAD
        .decode_slice(part, buf)
        .map_err(|_| VerifyError::Malformed)?;
    serde_json::from_slice(&buf[..len]).map_err(|_| VerifyError::Malformed)
}

fn strip_bearer(header: &str) -> &str {
    let header = header.trim();
    match header.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => header[7..].trim_start(),
        _ => header,
    }
}

#[cfg(test)]
mod tests {
    use roomtape_shared::auth::{body_sha256, WebhookSigner};
    use roomtape_shared::config::Env;

    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn verifier(now: u64) -> Verifier {
        let env = Env::from_pairs([
            ("LIVEKIT_API_KEY", "devkey"),
            ("LIVEKIT_API_SECRET", "secret"),
        ]);
        let keys = ApiKeys::from_env(&env).expect("keys");
        Verifier::new(&keys, Clock::FixedUnix(now))
    }

    /// A token signed with `secret` over `claims`, as `header`.
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

    fn claims(body: &[u8]) -> serde_json::Value {
        serde_json::json!({"iss": "devkey", "exp": NOW + 300, "nbf": NOW, "iat": NOW,
                           "sha256": body_sha256(body)})
    }

    const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

    #[test]
    fn strips_an_optional_bearer_prefix() {
        assert_eq!(strip_bearer("Bearer abc"), "abc");
        assert_eq!(strip_bearer("bearer  abc"), "abc");
        assert_eq!(strip_bearer("abc"), "abc");
        assert_eq!(strip_bearer("Bear"), "Bear");
    }

    #[test]
    fn tokens_of_the_shared_signer_verify_with_a_six_byte_secret() {
        // The signer is jwt-simple's HS256 over a zero-padded key: the same HMAC.
        let body = br#"{"event":"room_started"}"#;
        let token = WebhookSigner::new("devkey", "secret").sign_at(body, NOW);
        let authenticated = verifier(NOW + 10)
            .authenticate(Some(&token))
            .expect("authentic");
        assert_eq!(authenticated.api_key(), "devkey");
        let verified = authenticated
            .check_body(Bytes::from_static(body))
            .expect("body matches");
        assert_eq!(&*verified.into_parts().0, "devkey");
    }

    #[test]
    fn the_body_is_checked_against_the_claim() {
        let token = token(HS256, &claims(b"{}"), b"secret");
        let authenticated = verifier(NOW).authenticate(Some(&token)).expect("token");
        assert_eq!(
            authenticated
                .check_body(Bytes::from_static(b"{ }"))
                .map(drop),
            Err(VerifyError::BodyHashMismatch)
        );
    }

    #[test]
    fn every_bad_token_is_named_by_its_reason() {
        let good = claims(b"{}");
        let with = |field: &str, value: serde_json::Value| {
            let mut claims = good.clone();
            claims[field] = value;
            claims
        };
        let without = |field: &str| {
            let mut claims = good.clone();
            claims.as_object_mut().expect("object").remove(field);
            claims
        };
        let cases = [
            ("", VerifyError::MissingToken),
            ("a.b", VerifyError::Malformed),
            ("a.b.c.d", VerifyError::Malformed),
            ("!!.??.xx", VerifyError::Malformed),
            (
                &token(r#"{"alg":"HS512"}"#, &good, b"secret"),
                VerifyError::WrongAlgorithm,
            ),
            (
                &token(r#"{"alg":"none"}"#, &good, b"secret"),
                VerifyError::WrongAlgorithm,
            ),
            (
                &token(HS256, &with("iss", "other".into()), b"secret"),
                VerifyError::UnknownKey,
            ),
            (
                &token(HS256, &without("iss"), b"secret"),
                VerifyError::UnknownKey,
            ),
            (&token(HS256, &good, b"wrong"), VerifyError::BadSignature),
            (
                &token(HS256, &without("exp"), b"secret"),
                VerifyError::MissingExpiry,
            ),
            (
                &token(HS256, &with("exp", (NOW - 61).into()), b"secret"),
                VerifyError::Expired,
            ),
            (
                &token(HS256, &with("nbf", (NOW + 61).into()), b"secret"),
                VerifyError::NotYetValid,
            ),
            (
                &token(HS256, &with("iat", (NOW + 61).into()), b"secret"),
                VerifyError::NotYetValid,
            ),
            (
                &token(HS256, &without("sha256"), b"secret"),
                VerifyError::MissingBodyHash,
            ),
            (
                &token(
                    HS256,
                    &with(
                        "sha256",
                        "RBNvo1WzZ4oRRq0W9-hknpT7T8If536DEMBg9hyq_4o".into(),
                    ),
                    b"secret",
                ),
                VerifyError::MalformedBodyHash,
            ),
        ];
        let verifier = verifier(NOW);
        for (token, expected) in cases {
            let got = verifier.authenticate(Some(token)).map(drop);
            assert_eq!(got, Err(expected), "{token}");
        }
        assert_eq!(
            verifier.authenticate(None).map(drop),
            Err(VerifyError::MissingToken)
        );
    }

    #[test]
    fn the_leeway_is_inclusive_at_sixty_seconds() {
        let mut at_edge = claims(b"{}");
        at_edge["exp"] = (NOW - 60).into();
        at_edge["nbf"] = (NOW + 60).into();
        let token = token(HS256, &at_edge, b"secret");
        assert!(verifier(NOW).authenticate(Some(&token)).is_ok());
    }
}
