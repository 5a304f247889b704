//! `roomtape-api` started for a test with a read and a write token, and a client for it.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use roomtape_processor::events::EventProcessor;
use roomtape_shared::clock::Clock;

use crate::apps::{spawn_api_with_clock, wait_ready};
use crate::fixtures::Egress;
use crate::outbox::handle;
use crate::{TestApp, TestEnv};

pub const READ: &str = "read-token-1";
pub const WRITE: &str = "write-token-1";
pub const ALLOWED_ORIGIN: &str = "https://console.example.com";

pub struct Api {
    pub app: TestApp,
    pub http: reqwest::Client,
}

impl Api {
    /// The API on the test's services; `extra` settings override the defaults.
    pub async fn start(test: &TestEnv, extra: &[(&str, &str)]) -> Self {
        Self::start_with_clock(test, extra, Clock::System).await
    }

    /// The API whose LiveKit tokens are checked against `clock`.
    pub async fn start_with_clock(test: &TestEnv, extra: &[(&str, &str)], clock: Clock) -> Self {
        let tokens = format!("viewer:{READ}:read,admin:{WRITE}:write");
        let mut settings = vec![
            ("API_TOKENS", tokens.as_str()),
            ("API_CORS_ORIGINS", ALLOWED_ORIGIN),
        ];
        settings.extend_from_slice(extra);
        let app = spawn_api_with_clock(&test.env_with(&settings), clock);
        wait_ready(&app).await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self { app, http }
    }

    pub fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let request = self.http.request(method, self.app.url(path));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn send(&self, method: Method, path: &str, token: Option<&str>) -> reqwest::Response {
        self.request(method, path, token).send().await.unwrap()
    }

    /// `GET path` with the read token: the status and the JSON body.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        answer(self.send(Method::GET, path, Some(READ)).await).await
    }

    /// `POST path` with the write token, `body` and an `Idempotency-Key` when given.
    pub async fn post(&self, path: &str, body: &str, key: Option<&str>) -> (StatusCode, Value) {
        let mut request = self
            .request(Method::POST, path, Some(WRITE))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        answer(request.send().await.unwrap()).await
    }
}

/// The status and the JSON body (`Null` when empty).
pub async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let url = response.url().clone();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"))
    };
    (status, body)
}

/// A ready recording of `room` whose file holds `bytes`, made by the processor's event handler
/// from LiveKit's egress events.
pub async fn ready_recording(
    test: &TestEnv,
    processor: &EventProcessor,
    id: &str,
    room: &str,
    bytes: &[u8],
) {
    let egress = Egress::new(id, room, &test.bucket.profile);
    test.bucket.put(&egress.key, bytes, "video/mp4").await;
    for body in [
        egress.started(&format!("EV_s_{id}")),
        egress.ended(&format!("EV_e_{id}")),
    ] {
        handle(processor, &body).await.expect("applied");
    }
}
