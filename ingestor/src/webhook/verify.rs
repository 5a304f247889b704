//! Webhook authentication exactly as LiveKit signs it.
//!
//! LiveKit puts a JWT in `Authorization` (no `Bearer ` prefix, though we accept one): HS256,
//! `iss` = API key, `nbf`/`iat` = now, `exp` = now + 5 min, and a `sha256` claim holding the
//! standard padded base64 of SHA-256 over the raw body. Only [`Verifier::verify`] turns request
//! bytes into a [`VerifiedBody`].

use std::collections::HashMap;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use jwt_simple::prelude::{Duration, HS256Key, MACLike, UnixTimeStamp, VerificationOptions};
use jwt_simple::JWTError;
use roomtape_shared::auth::hs256_key;
use roomtape_shared::clock::Clock;
use roomtape_shared::config::ApiKeys;
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Clock skew allowed on `exp`, `nbf` and `iat`, as LiveKit's Go, Python and Rust SDKs allow.
pub const LEEWAY_SECS: u64 = 60;

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
    #[error("body does not match the token's sha256 claim")]
    BodyHashMismatch,
    #[error("token is invalid")]
    Invalid,
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
            Self::BodyHashMismatch => "sha256_mismatch",
            Self::Invalid => "invalid",
        }
    }
}

/// Bytes whose signature and body hash have been checked, with the key that signed them. Its
/// fields are private: only [`Verifier::verify`] can make one.
#[derive(Debug, Clone)]
pub struct VerifiedBody {
    api_key: String,
    body: Bytes,
}

impl VerifiedBody {
    /// The API key that signed it, and the bytes.
    pub fn into_parts(self) -> (String, Bytes) {
        (self.api_key, self.body)
    }
}

#[derive(Deserialize)]
struct WebhookClaims {
    sha256: Option<String>,
}

/// Verifies webhook requests against the configured keys.
pub struct Verifier {
    keys: HashMap<String, HS256Key>,
    clock: Clock,
    /// Built once: the same for every key and request.
    options: VerificationOptions,
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
            .filter_map(|key| {
                let secret = keys.secret_for(key)?.expose_secret().as_bytes();
                Some((key.to_owned(), hs256_key(secret)))
            })
            .collect();
        let options = VerificationOptions {
            // No `allowed_issuers`: the key is chosen by the token's own `iss`, so a token whose
            // signature verifies under it was issued by that key's holder.
            time_tolerance: Some(Duration::from_secs(LEEWAY_SECS)),
            artificial_time: match clock {
                Clock::System => None,
                Clock::FixedUnix(_) => Some(UnixTimeStamp::from_secs(clock.now_unix())),
            },
            ..VerificationOptions::default()
        };
        Self {
            keys,
            clock,
            options,
        }
    }

    /// Checks `authorization` (the raw header value) against `body`.
    pub fn verify(
        &self,
        authorization: Option<&str>,
        body: Bytes,
    ) -> Result<VerifiedBody, VerifyError> {
        let token = authorization
            .map(strip_bearer)
            .filter(|t| !t.is_empty())
            .ok_or(VerifyError::MissingToken)?;
        let api_key = unverified_issuer(token)?;
        let key = self.keys.get(&api_key).ok_or(VerifyError::UnknownKey)?;
        let claims = key
            .verify_token::<WebhookClaims>(token, Some(self.options.clone()))
            .map_err(classify)?;
        if claims.expires_at.is_none() {
            return Err(VerifyError::MissingExpiry);
        }
        let expected = claims.custom.sha256.ok_or(VerifyError::MissingBodyHash)?;
        let actual = STANDARD.encode(Sha256::digest(&body));
        if !bool::from(expected.as_bytes().ct_eq(actual.as_bytes())) {
            return Err(VerifyError::BodyHashMismatch);
        }
        Ok(VerifiedBody { api_key, body })
    }
}

fn strip_bearer(header: &str) -> &str {
    let header = header.trim();
    match header.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => header[7..].trim_start(),
        _ => header,
    }
}

/// The `iss` claim, read before verification only to choose the key to verify with.
fn unverified_issuer(token: &str) -> Result<String, VerifyError> {
    #[derive(Deserialize)]
    struct Issuer {
        iss: Option<String>,
    }
    let mut parts = token.split('.');
    let payload = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(payload), Some(_), None) => payload,
        _ => return Err(VerifyError::Malformed),
    };
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| VerifyError::Malformed)?;
    let claims: Issuer = serde_json::from_slice(&json).map_err(|_| VerifyError::Malformed)?;
    claims.iss.ok_or(VerifyError::UnknownKey)
}

fn classify(error: jwt_simple::Error) -> VerifyError {
    match error.downcast_ref::<JWTError>() {
        Some(JWTError::AlgorithmMismatch) => VerifyError::WrongAlgorithm,
        Some(JWTError::InvalidAuthenticationTag | JWTError::InvalidSignature) => {
            VerifyError::BadSignature
        }
        Some(JWTError::TokenHasExpired) => VerifyError::Expired,
        Some(JWTError::TokenNotValidYet | JWTError::ClockDrift) => VerifyError::NotYetValid,
        Some(JWTError::NotJWT | JWTError::CompactEncodingError) => VerifyError::Malformed,
        _ => VerifyError::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_an_optional_bearer_prefix() {
        assert_eq!(strip_bearer("Bearer abc"), "abc");
        assert_eq!(strip_bearer("bearer  abc"), "abc");
        assert_eq!(strip_bearer("abc"), "abc");
        assert_eq!(strip_bearer("Bear"), "Bear");
    }

    #[test]
    fn zero_padding_short_secrets_keeps_hmac_signatures() {
        let short = hs256_key(b"secret");
        let claims = jwt_simple::prelude::Claims::create(Duration::from_secs(60));
        let padded_token = short.authenticate(claims).expect("sign");
        // The same token must verify under a key of exactly the padded bytes.
        let mut raw = b"secret".to_vec();
        raw.resize(64, 0);
        let options = Some(VerificationOptions::default());
        assert!(HS256Key::from_bytes(&raw)
            .verify_token::<jwt_simple::prelude::NoCustomClaims>(&padded_token, options)
            .is_ok());
    }
}
