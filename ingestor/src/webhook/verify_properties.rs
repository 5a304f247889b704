//! Property tests: whatever bytes arrive as token and body, verification never panics and
//! never accepts anything not signed with a configured key over exactly that body.

use super::verify::{VerifiedBody, Verifier, VerifyError};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use roomtape_shared::clock::Clock;
use roomtape_shared::config::ApiKeys;
use sha2::{Digest, Sha256};

const NOW: u64 = 1_700_000_000;

fn verifier() -> Verifier {
    let keys = ApiKeys::new([("APIkey".to_owned(), "the-real-secret".into())]);
    Verifier::new(&keys, Clock::FixedUnix(NOW))
}

fn token(claims: &serde_json::Value, secret: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{header}.{payload}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any length");
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// Both steps, as the handler takes them: the token, then the body.
fn verify(authorization: &str, body: Bytes) -> Result<VerifiedBody, VerifyError> {
    verifier()
        .authenticate(Some(authorization))?
        .check_body(body)
}

fn claims_for(body: &[u8]) -> serde_json::Value {
    serde_json::json!({"iss": "APIkey", "nbf": NOW, "iat": NOW, "exp": NOW + 300,
        "sha256": STANDARD.encode(Sha256::digest(body))})
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_headers_and_bodies_are_never_accepted(header in ".{0,300}", body in proptest::collection::vec(any::<u8>(), 0..512)) {
        prop_assert!(verify(&header, Bytes::from(body)).is_err());
    }

    #[test]
    fn random_three_part_tokens_are_never_accepted(a in "[A-Za-z0-9_-]{0,60}", b in "[A-Za-z0-9_-]{0,200}", c in "[A-Za-z0-9_-]{0,60}") {
        let forged = format!("{a}.{b}.{c}");
        let body = Bytes::from_static(br#"{"event":"room_started"}"#);
        let result = verify(&forged, body);
        prop_assert!(result.is_err());
    }

    #[test]
    fn a_token_for_one_body_never_verifies_another(body in proptest::collection::vec(any::<u8>(), 0..256), other in proptest::collection::vec(any::<u8>(), 0..256)) {
        prop_assume!(body != other);
        let signed = token(&claims_for(&body), b"the-real-secret");
        prop_assert!(verify(&signed, Bytes::from(body)).is_ok());
        prop_assert!(verify(&signed, Bytes::from(other)).is_err());
    }

    #[test]
    fn a_token_signed_with_any_other_secret_never_verifies(secret in proptest::collection::vec(any::<u8>(), 1..80), body in proptest::collection::vec(any::<u8>(), 0..128)) {
        prop_assume!(secret != b"the-real-secret");
        let forged = token(&claims_for(&body), &secret);
        prop_assert!(verify(&forged, Bytes::from(body)).is_err());
    }
}
