//! A bucket with a CORS rule for GET, as R2 or S3 buckets have one for a page that reads them
//! with scripts (the console's HLS player): the local S3 server (s3s-fs has no CORS) behind an
//! HTTP proxy that answers preflights and adds `Access-Control-Allow-Origin: *` to every
//! answer. The `Host` header goes through as it came, so GET links presigned for the proxy's
//! address verify at the server (what browsers send; answers to HEAD lose their length).

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::test_server::TestServer;

/// Hop-by-hop headers, and those the client and server set for themselves.
const NOT_FORWARDED: [&str; 4] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
];

pub struct CorsProxy {
    /// The proxy's address, to use as the storage profile's endpoint.
    pub url: String,
    _server: TestServer,
}

struct Target {
    base: String,
    http: reqwest::Client,
}

impl CorsProxy {
    /// Forwards `http://127.0.0.1:<port>` to `target` (`http://host:port`) until dropped.
    pub fn start(target: &str) -> Self {
        let data = web::Data::new(Target {
            base: target.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        });
        let server = TestServer::start("127.0.0.1:0", move |cfg| {
            cfg.app_data(data.clone()).default_service(web::to(forward));
        });
        Self {
            url: server.url(),
            _server: server,
        }
    }
}

async fn forward(
    request: HttpRequest,
    body: web::Bytes,
    target: web::Data<Target>,
) -> HttpResponse {
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key("access-control-request-method");
    if preflight {
        return HttpResponse::NoContent()
            .insert_header(("access-control-allow-origin", "*"))
            .insert_header(("access-control-allow-methods", "GET, HEAD"))
            .insert_header(("access-control-allow-headers", "*"))
            .finish();
    }
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let method = reqwest::Method::from_bytes(request.method().as_str().as_bytes()).expect("method");
    let mut outgoing = target
        .http
        .request(method, format!("{}{path}", target.base));
    for (name, value) in request.headers() {
        if !NOT_FORWARDED.contains(&name.as_str()) {
            outgoing = outgoing.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = match outgoing.body(body.to_vec()).send().await {
        Ok(answer) => answer,
        Err(error) => return HttpResponse::BadGateway().body(error.to_string()),
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).expect("status");
    let mut response = HttpResponse::build(status);
    for (name, value) in answer.headers() {
        if !NOT_FORWARDED.contains(&name.as_str()) {
            response.insert_header((name.as_str(), value.as_bytes()));
        }
    }
    response.insert_header(("access-control-allow-origin", "*"));
    let bytes = answer.bytes().await.unwrap_or_default();
    response.body(bytes)
}
