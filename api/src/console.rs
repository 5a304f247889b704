//! The web console: one page and its script and stylesheet, embedded in the binary (no build
//! step, nothing fetched from elsewhere). The page talks to `/api/v1` with the token the user
//! types; serving it needs no token.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

const INDEX_HTML: &str = include_str!("../console/index.html");
const CONSOLE_JS: &str = include_str!("../console/console.js");
const CONSOLE_CSS: &str = include_str!("../console/console.css");

/// Scripts, styles and API calls from this origin only; media from any http(s) origin, since
/// presigned download links point at the bucket's host. Nothing may frame the page.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; media-src 'self' http: https:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /`, `GET /console/console.js` and `GET /console/console.css`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/console/console.js", web::get().to(script))
        .route("/console/console.css", web::get().to(stylesheet));
}

/// An embedded file with the headers every console answer carries.
fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        // The files change with the binary: revalidate rather than run a stale script.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        // For browsers that predate frame-ancestors.
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .body(body)
}

async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", CONSOLE_JS)
}

async fn stylesheet() -> HttpResponse {
    asset("text/css; charset=utf-8", CONSOLE_CSS)
}
