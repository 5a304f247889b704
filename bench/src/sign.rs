//! Signs webhook bodies as LiveKit server does (an HS256 JWT with `iss` = API key, `nbf`/`iat` =
//! now, `exp` = now + 5 min and `sha256` = standard padded base64 of SHA-256 over the body): the
//! shared signer, the one `roomtape simulate` and the tests use.

pub use roomtape_shared::auth::WebhookSigner as Signer;
