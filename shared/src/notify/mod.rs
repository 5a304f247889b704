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
}
