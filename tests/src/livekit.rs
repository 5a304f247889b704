//! Webhooks signed the way LiveKit server signs them, by us (jwt-simple) or by the official
//! Python SDK (`livekit-api`), and helpers to send them; the access tokens the official SDKs
//! minted (`tests/fixtures/livekit/access_tokens_*.json`).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
pub use roomtape_shared::auth::body_sha256;
use roomtape_shared::auth::{webhook_claims, WebhookSigner};

use crate::TestApp;

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Signs arbitrary `claims` (tampered ones, for rejection tests) as an HS256 JWT with `secret`
/// (any length, as LiveKit allows). Well-formed webhook tokens come from [`sign_webhook`].
pub fn sign_claims(claims: &serde_json::Value, secret: &str) -> String {
    sign_with("HS256", claims, secret)
}

/// Signs with an arbitrary HMAC `alg` name (`HS256`/`HS384`/`HS512`), for rejection tests.
pub fn sign_with(alg: &str, claims: &serde_json::Value, secret: &str) -> String {
    let header = serde_json::json!({"alg": alg, "typ": "JWT"});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = hmac(alg, secret.as_bytes(), signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn hmac(alg: &str, key: &[u8], message: &[u8]) -> Vec<u8> {
    use jwt_simple::algorithms::{HS384Key, HS512Key, MACLike};
    let padded = roomtape_shared::auth::hs256_key(key).to_bytes();
    match alg {
        "HS384" => HS384Key::from_bytes(&padded).authentication_tag(message),
        "HS512" => HS512Key::from_bytes(&padded).authentication_tag(message),
        _ => roomtape_shared::auth::hs256_key(key).authentication_tag(message),
    }
}

/// LiveKit server's webhook claims for `body`, issued now (to tamper with).
pub fn server_claims(api_key: &str, body: &[u8]) -> serde_json::Value {
    webhook_claims(api_key, body, now_unix())
}

/// A server-shaped token for `body` with the test key pair (the shared signer `roomtape
/// simulate` uses too).
pub fn sign_webhook(body: &[u8]) -> String {
    WebhookSigner::new(crate::services::API_KEY, crate::services::API_SECRET).sign(body)
}

/// Tokens signed by the official Python SDK: `AccessToken(key, secret)` with `sha256` set, one
/// per body, as LiveKit's own tests build them.
pub fn python_sign_webhooks(api_key: &str, api_secret: &str, bodies: &[String]) -> Vec<String> {
    let script = r#"
import base64, hashlib, json, sys
from livekit import api
key, secret, bodies = sys.argv[1], sys.argv[2], json.loads(sys.stdin.read())
out = []
for body in bodies:
    token = api.AccessToken(key, secret)
    token.claims.sha256 = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    out.append(token.to_jwt())
print(json.dumps(out))
"#;
    let output = python(
        script,
        &[api_key, api_secret],
        &serde_json::to_string(bodies).expect("json"),
    );
    serde_json::from_str(&output).expect("python output")
}

/// Runs a Python script with the official SDK; panics with its stderr if it fails, so a missing
/// `livekit-api` fails the test instead of skipping it.
pub fn python(script: &str, args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3: run deploy/local/services.sh");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let output = child.wait_with_output().expect("python3");
    assert!(
        output.status.success(),
        "python failed (is livekit-api installed? deploy/local/services.sh installs it): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

/// A webhook POST to `url` as LiveKit sends it, ready to send (or to spawn).
pub fn webhook_request(
    client: &reqwest::Client,
    url: &str,
    body: impl Into<reqwest::Body>,
    authorization: &str,
) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("content-type", "application/webhook+json")
        .header("authorization", authorization)
        .body(body)
}

/// POSTs a webhook to the ingestor as LiveKit does.
pub async fn post_webhook(app: &TestApp, body: &[u8], authorization: &str) -> reqwest::Response {
    let url = app.url("/webhooks/livekit");
    webhook_request(&reqwest::Client::new(), &url, body.to_vec(), authorization)
        .send()
        .await
        .expect("POST webhook")
}

/// The LiveKit fixtures, in the repository next to the scripts that write them.
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/livekit");

/// An access token an official SDK minted at a fixed instant, to present at `verify_at`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct MintedToken {
    pub name: String,
    /// The key pair that signed it.
    pub api_key: String,
    pub api_secret: String,
    pub verify_at: u64,
    pub token: String,
}

/// The committed access token `name` (see `tests/fixtures/livekit/README.md`).
pub fn access_token(name: &str) -> MintedToken {
    ["access_tokens_python.json", "access_tokens_node.json"]
        .iter()
        .flat_map(|file| {
            let path = format!("{FIXTURES}/{file}");
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!(
                    "cannot read the access tokens {path}: {e}; they are committed, and \
                     tests/fixtures/livekit/crosscheck.sh mints them again"
                )
            });
            serde_json::from_str::<Vec<MintedToken>>(&text)
                .unwrap_or_else(|e| panic!("{path} is not a list of access tokens: {e}"))
        })
        .find(|minted| minted.name == name)
        .unwrap_or_else(|| panic!("no access token {name} in {FIXTURES}"))
}

/// `LIVEKIT_KEYS` with the key pair of the app that minted the access tokens.
pub fn app_keys() -> String {
    let app = access_token("node_room_join_r1");
    format!("{}: {}", app.api_key, app.api_secret)
}
