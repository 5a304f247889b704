//! Notifications to apps' HTTP endpoints in the Standard Webhooks format
//! (<https://www.standardwebhooks.com>, CONTRACTS §8): the signature ([`sign`]), the secret it
//! is made with ([`WebhookSecret`]) and one POST to an endpoint ([`post`]). The processor's
//! delivery workers and `roomtape notifications test` send through here, so what an app
//! receives is signed one way.

mod post;
mod secret;
mod settings;

pub use post::{post, Attempt, Poster, PosterError};
pub use secret::{SecretError, WebhookSecret};
pub use settings::{Endpoint, NotifySettings};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The three headers of a signed request, as the standard names them.
pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`: the `webhook-signature` value of a
/// request with this id, timestamp (Unix seconds) and exact body bytes.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.key()).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// The example of the Standard Webhooks specification (spec/standard-webhooks.md, "Signature
    /// scheme"), whose libraries' own tests use it too.
    #[test]
    fn the_specifications_example_signs_as_the_specification_says() {
        let secret: WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
            .parse()
            .expect("secret");
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    /// The signed requests of `tests/fixtures/standardwebhooks/signed_notifications.json`, made
    /// here by roomtape's own signer; the cross-check (`tests/fixtures/livekit/crosscheck.sh`)
    /// runs each through the official `standardwebhooks` verifiers of PyPI and npm with the
    /// clock frozen at its `now`. Regenerate with `ROOMTAPE_WRITE_VECTORS=1 cargo test -p
    /// roomtape-shared --features notify --lib committed_vectors`.
    #[test]
    fn the_committed_vectors_are_what_roomtape_signs() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/standardwebhooks/signed_notifications.json"
        );
        let generated = format!(
            "{}\n",
            serde_json::to_string_pretty(&vectors()).expect("json")
        );
        if std::env::var_os("ROOMTAPE_WRITE_VECTORS").is_some() {
            std::fs::write(path, &generated).expect("write the vectors");
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "{path} is not what roomtape signs: regenerate it (see this test's doc) and review the diff"
        );
    }

    fn vectors() -> Value {
        let secret = WebhookSecret::from_key((1..=32).collect());
        let other = WebhookSecret::from_key(vec![0x5a; 32]);
        let id = "recording.ready:EG_vector";
        let t0: u64 = 1_700_000_000;
        let body = r#"{"type":"recording.ready","timestamp":"2023-11-14T22:13:20.000Z","data":{"egress_id":"EG_vector","room_name":"standup","status":"ready","duration_seconds":1800.0}}"#;
        let changed = body.replace(r#""status":"ready""#, r#""status":"failed""#);
        assert_ne!(changed, body);
        let vector = |name: &str,
                      note: &str,
                      signed_at: u64,
                      verifier: &WebhookSecret,
                      sent: &str,
                      now: u64,
                      expect: &str| {
            json!({
                "name": name,
                "note": note,
                "secret": verifier.to_whsec(),
                "headers": {
                    ID_HEADER: id,
                    TIMESTAMP_HEADER: signed_at.to_string(),
                    SIGNATURE_HEADER: sign(&secret, id, signed_at, body.as_bytes()),
                },
                "body": sent,
                "now_unix": now,
                "expect": expect,
            })
        };
        json!([
            vector(
                "first_attempt",
                "a delivery as the endpoint receives it",
                t0,
                &secret,
                body,
                t0,
                "accept"
            ),
            vector(
                "retry_ten_minutes_later",
                "a retry, signed again at its own time",
                t0 + 600,
                &secret,
                body,
                t0 + 600,
                "accept"
            ),
            vector(
                "first_stamp_ten_minutes_later",
                "the first attempt's headers replayed 10 minutes on: too old",
                t0,
                &secret,
                body,
                t0 + 600,
                "reject"
            ),
            vector(
                "wrong_secret",
                "verified with another secret",
                t0,
                &other,
                body,
                t0,
                "reject"
            ),
            vector(
                "changed_body",
                "the body changed after signing",
                t0,
                &secret,
                &changed,
                t0,
                "reject"
            ),
        ])
    }
}
