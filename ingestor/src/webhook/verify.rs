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
//! The token itself is checked by [`TokenVerifier`], shared with the API's LiveKit access
//! tokens; this adds the body hash. The claims are decoded into a stack buffer: nothing here
//! allocates per request.

use std::borrow::Cow;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use roomtape_shared::clock::Clock;
use roomtape_shared::config::ApiKeys;
use roomtape_shared::token::{TokenError, TokenVerifier};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The largest decoded claims set accepted. LiveKit's are under 250 bytes; the bound keeps
/// decoding on the stack.
const MAX_CLAIMS_BYTES: usize = 2048;

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

impl From<TokenError> for VerifyError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Malformed => Self::Malformed,
            TokenError::UnknownKey => Self::UnknownKey,
            TokenError::WrongAlgorithm => Self::WrongAlgorithm,
            TokenError::BadSignature => Self::BadSignature,
            TokenError::Expired => Self::Expired,
            TokenError::NotYetValid => Self::NotYetValid,
            TokenError::MissingExpiry => Self::MissingExpiry,
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

/// The claim a webhook token adds to LiveKit's registered ones.
#[derive(Deserialize)]
struct BodyClaim<'a> {
    #[serde(borrow, default)]
    sha256: Option<Cow<'a, str>>,
}

/// Verifies webhook tokens against the configured keys.
#[derive(Debug)]
pub struct Verifier {
    tokens: TokenVerifier,
}

impl Verifier {
    pub fn new(keys: &ApiKeys, clock: Clock) -> Self {
        Self {
            tokens: TokenVerifier::new(keys, clock),
        }
    }

    /// Checks the token in `authorization` (the raw header value): shape, algorithm, key,
    /// signature, `exp`/`nbf`/`iat`, and that it carries a body hash.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Authenticated, VerifyError> {
        let token = authorization
            .map(strip_bearer)
            .filter(|t| !t.is_empty())
            .ok_or(VerifyError::MissingToken)?;
        let mut claims_buf = [0; MAX_CLAIMS_BYTES];
        let verified = self.tokens.verify(token, &mut claims_buf)?;
        let claims: BodyClaim =
            serde_json::from_slice(verified.claims).map_err(|_| VerifyError::Malformed)?;
        let claimed = claims.sha256.ok_or(VerifyError::MissingBodyHash)?;
        let mut body_sha256 = [0; 32];
        match STANDARD.decode_slice(claimed.as_bytes(), &mut body_sha256) {
            Ok(32) => {}
            _ => return Err(VerifyError::MalformedBodyHash),
        }
        Ok(Authenticated {
            api_key: verified.api_key,
            body_sha256,
        })
    }
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
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::{Hmac, Mac};
    use roomtape_shared::auth::{body_sha256, WebhookSigner};
    use roomtape_shared::config::Env;

    use super::*;

    type HmacSha256 = Hmac<Sha256>;

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
