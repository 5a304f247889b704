//! The key an endpoint's requests are signed with: `whsec_` and the base64 of 24 to 64 random
//! bytes, as Standard Webhooks issues them (the same string the app gives its verifier).

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

const PREFIX: &str = "whsec_";
/// The key sizes the specification allows.
const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// A signing key; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    pub fn key(&self) -> &[u8] {
        &self.0
    }

    /// A secret from raw key bytes (tests, and `whsec_` strings made for apps).
    pub fn from_key(key: Vec<u8>) -> Self {
        Self(key)
    }

    /// The `whsec_…` form an app's verifier takes.
    pub fn to_whsec(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.0))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(redacted)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("must start with whsec_ (a Standard Webhooks secret)")]
    Prefix,
    #[error("the part after whsec_ is not base64")]
    Base64,
    #[error("the key is {0} bytes; Standard Webhooks keys are 24 to 64 bytes")]
    Length(usize),
}

impl FromStr for WebhookSecret {
    type Err = SecretError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let encoded = raw.trim().strip_prefix(PREFIX).ok_or(SecretError::Prefix)?;
        let key = STANDARD.decode(encoded).map_err(|_| SecretError::Base64)?;
        if !KEY_BYTES.contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(Self(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_whsec_and_base64_of_24_to_64_bytes() {
        let key = vec![7u8; 32];
        let whsec = WebhookSecret::from_key(key.clone()).to_whsec();
        assert_eq!(whsec.parse::<WebhookSecret>().map(|s| s.0), Ok(key));
        assert_eq!(
            STANDARD.encode([1u8; 32]).parse::<WebhookSecret>(),
            Err(SecretError::Prefix)
        );
        assert_eq!(
            "whsec_not base64!".parse::<WebhookSecret>(),
            Err(SecretError::Base64)
        );
        let short = format!("whsec_{}", STANDARD.encode([1u8; 8]));
        assert_eq!(short.parse::<WebhookSecret>(), Err(SecretError::Length(8)));
        assert_eq!(
            format!("{:?}", WebhookSecret::from_key(vec![1; 24])),
            "WebhookSecret(redacted)"
        );
    }
}
