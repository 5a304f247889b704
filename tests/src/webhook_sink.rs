//! An app's notification endpoint for tests: an HTTP server on port 0 that keeps every request
//! it gets (headers, raw body, when) and answers as the test scripts it: a queue of statuses
//! (then 200), "down" (503 to everything), a redirect, or no answer at all ("hang").

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use crate::test_server::TestServer;

/// One request as the endpoint received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// Whether the Standard Webhooks reference library (`standardwebhooks`, real clock) accepts
    /// it with `secret`.
    pub fn verify(&self, secret: &str) -> Result<(), standardwebhooks::WebhookError> {
        standardwebhooks::Webhook::new(secret)?.verify(&self.body, &self.headers)
    }
}

/// How the endpoint answers the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The scripted statuses, then 200.
    Answer,
    /// 503 to everything.
    Down,
    /// 302 to `location`.
    Redirect,
    /// Reads the request and never answers.
    Hang,
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    script: VecDeque<u16>,
    mode: Option<Mode>,
    location: String,
}

pub struct WebhookSink {
    pub url: String,
    state: Arc<Mutex<State>>,
    _server: TestServer,
}

impl WebhookSink {
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let data = web::Data::new(state.clone());
        let server = TestServer::start("127.0.0.1:0", move |cfg| {
            cfg.app_data(data.clone()).default_service(web::to(receive));
        });
        Self {
            url: format!("{}/hooks/roomtape", server.url()),
            state,
            _server: server,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("state"))
    }

    /// Answers the next requests with these statuses, in order (then 200).
    pub fn script(&self, statuses: &[u16]) {
        self.with(|s| s.script.extend(statuses));
    }

    pub fn set_mode(&self, mode: Mode) {
        self.with(|s| s.mode = Some(mode));
    }

    pub fn redirect_to(&self, location: &str) {
        self.with(|s| {
            s.location = location.to_owned();
            s.mode = Some(Mode::Redirect);
        });
    }

    pub fn received(&self) -> Vec<Received> {
        self.with(|s| s.received.clone())
    }

    pub fn count(&self) -> usize {
        self.with(|s| s.received.len())
    }
}

async fn receive(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<State>>>,
) -> HttpResponse {
    let mut headers = http::HeaderMap::new();
    for (name, value) in request.headers() {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
    let (mode, status, location) = {
        let mut state = state.lock().expect("state");
        state.received.push(Received {
            headers,
            body: body.to_vec(),
            at: Instant::now(),
        });
        let status = state.script.pop_front().unwrap_or(200);
        (
            state.mode.unwrap_or(Mode::Answer),
            status,
            state.location.clone(),
        )
    };
    match mode {
        Mode::Answer => HttpResponse::build(StatusCode::from_u16(status).expect("status"))
            .body(if status < 300 { "" } else { "scripted refusal" }),
        Mode::Down => HttpResponse::ServiceUnavailable().body("down for maintenance"),
        Mode::Redirect => HttpResponse::Found()
            .insert_header(("location", location))
            .finish(),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            HttpResponse::Ok().finish()
        }
    }
}
