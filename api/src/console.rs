//! The web console: one page, its script and stylesheet, and the vendored HLS player
//! (`api/console/vendor/hls.js`), embedded in the binary (no build step, nothing fetched from
//! elsewhere). The page talks to `/api/v1` with the token the user types; serving it needs no
//! token.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use roomtape_shared::config::StorageProfiles;
use roomtape_shared::storage;

const INDEX_HTML: &str = include_str!("../console/index.html");
const CONSOLE_JS: &str = include_str!("../console/console.js");
const CONSOLE_CSS: &str = include_str!("../console/console.css");
const HLS_JS: &str = include_str!("../console/vendor/hls.js/hls.light.min.js");

/// What every console answer carries as its Content-Security-Policy.
#[derive(Debug, Clone)]
pub struct Console {
    policy: String,
}

impl Console {
    /// Scripts, styles and API calls from this origin only; images (thumbnails) and the HLS
    /// player's reads (playlist segments) also from the storage profiles' buckets, whose
    /// presigned and public URLs they are; media from any http(s) origin, since download links
    /// point at the bucket's host, and `blob:` for what the HLS player feeds the video element.
    /// Nothing may frame the page.
    pub fn new(storage: &StorageProfiles) -> Self {
        let mut buckets: Vec<String> = storage.iter().flat_map(storage::origins).collect();
        buckets.sort();
        buckets.dedup();
        let buckets = buckets
            .iter()
            .map(|origin| format!(" {origin}"))
            .collect::<String>();
        let policy = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; \
             connect-src 'self'{buckets}; img-src 'self' data:{buckets}; \
             media-src 'self' http: https: blob:; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'"
        );
        Self { policy }
    }

    pub fn policy(&self) -> &str {
        &self.policy
    }
}

/// `GET /`, `GET /console/console.js`, `GET /console/console.css` and
/// `GET /console/hls.light.min.js`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/console/console.js", web::get().to(script))
        .route("/console/console.css", web::get().to(stylesheet))
        .route("/console/hls.light.min.js", web::get().to(hls_player));
}

/// An embedded file with the headers every console answer carries.
fn asset(console: &Console, content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        // The files change with the binary: revalidate rather than run a stale script.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, console.policy()))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        // For browsers that predate frame-ancestors.
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .body(body)
}

async fn index(console: web::Data<Console>) -> HttpResponse {
    asset(&console, "text/html; charset=utf-8", INDEX_HTML)
}

async fn script(console: web::Data<Console>) -> HttpResponse {
    asset(&console, "text/javascript; charset=utf-8", CONSOLE_JS)
}

async fn stylesheet(console: web::Data<Console>) -> HttpResponse {
    asset(&console, "text/css; charset=utf-8", CONSOLE_CSS)
}

async fn hls_player(console: web::Data<Console>) -> HttpResponse {
    asset(&console, "text/javascript; charset=utf-8", HLS_JS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomtape_shared::config::Env;

    #[test]
    fn the_policy_lets_images_and_player_reads_come_from_the_buckets_only() {
        let storage = StorageProfiles::from_env(&Env::from_pairs([
            ("S3_ENDPOINT", "http://127.0.0.1:8014"),
            ("S3_BUCKET", "rec"),
            ("S3_ACCESS_KEY_ID", "k"),
            ("S3_SECRET_ACCESS_KEY", "s"),
            ("CLOUDFLARE_R2_ACCESS_KEY_ID", "k"),
            ("CLOUDFLARE_R2_SECRET_ACCESS_KEY", "s"),
            ("CLOUDFLARE_R2_STORAGE_BUCKET_NAME", "meet"),
            (
                "CLOUDFLARE_R2_ENDPOINT_URL",
                "https://acc.r2.cloudflarestorage.com",
            ),
            ("CLOUDFLARE_R2_CUSTOM_DOMAIN", "media.example.com"),
        ]))
        .expect("profiles");
        let policy = Console::new(&storage).policy;
        let buckets = "http://127.0.0.1:8014 https://acc.r2.cloudflarestorage.com \
                       https://media.example.com";
        assert!(
            policy.contains(&format!("connect-src 'self' {buckets};")),
            "{policy}"
        );
        assert!(
            policy.contains(&format!("img-src 'self' data: {buckets};")),
            "{policy}"
        );
        assert!(policy.contains("media-src 'self' http: https: blob:;"));
        assert!(policy.contains("script-src 'self';") && policy.contains("default-src 'none'"));
    }
}
