//! LiveKit's HS256 keys, as jwt-simple needs them.

use jwt_simple::prelude::HS256Key;

/// jwt-simple refuses HMAC keys under 12 bytes, but LiveKit's development secret is `secret`.
/// HMAC pads any key shorter than its 64-byte block with zeros, so a zero-padded key gives the
/// very same signatures.
const MIN_HMAC_KEY_BYTES: usize = 32;

/// The HS256 key for a LiveKit API secret of any length.
pub fn hs256_key(secret: &[u8]) -> HS256Key {
    let mut bytes = secret.to_vec();
    if bytes.len() < MIN_HMAC_KEY_BYTES {
        bytes.resize(MIN_HMAC_KEY_BYTES, 0);
    }
    HS256Key::from_bytes(&bytes)
}
