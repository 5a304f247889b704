//! The web console in a real browser: Debian's chromium (installed by
//! `deploy/local/services.sh`), driven over the DevTools protocol with chromiumoxide, against
//! the API, the ingestor and the processor on the real services. A wrong token is refused in
//! the page; a recording made ready by its webhooks appears, plays from its presigned URL and
//! is deleted; at phone width nothing scrolls sideways; a read token gets no button it may not
//! use and a refused start is shown; a one-room
//! LiveKit `roomJoin` token sees its room and no button it may not use. Each step's
//! screenshot goes to `$CARGO_TARGET_DIR/console-screenshots/`; with
//! `ROOMTAPE_DOCS_SCREENSHOT=1` the desktop one also replaces `docs/console.png`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::page::{
    CaptureScreenshotFormat, CaptureScreenshotParams, Viewport,
};
use chromiumoxide::Page;
use futures_util::StreamExt;
use reqwest::{header, StatusCode};
use roomtape_shared::clock::Clock;
use roomtape_shared::queue::topology::EVENTS_EXCHANGE;
use roomtape_tests::api_client::ready_recording;
use roomtape_tests::apps::{event_processor, spawn_api, spawn_api_with_clock, wait_ready};
use roomtape_tests::cors_proxy::CorsProxy;
use roomtape_tests::fake_livekit::FakeLiveKit;
use roomtape_tests::fixtures::{participant_event, room_event, Egress, STARTED_NS};
use roomtape_tests::livekit::{access_token, app_keys, post_webhook, sign_webhook};
use roomtape_tests::media::{hls_ended, upload_hls, HLS_PLAYLIST};
use roomtape_tests::outbox::handle;
use roomtape_tests::services::{API_KEY, API_SECRET};
use roomtape_tests::{eventually, spawn_ingestor, spawn_processor, TestApp, TestEnv};
use serde::de::DeserializeOwned;

const WRITE: &str = "console-write-token";
const READ: &str = "console-read-token";
/// The playable MP4 `roomtape simulate` uploads (H.264 + AAC, index in front).
const VIDEO: &[u8] = include_bytes!("../../../cli/assets/test-video.mp4");
const ROOM: &str = "physics-lecture";
/// Wider than a phone, with nowhere to break but anywhere.
const LONG_ROOM: &str = "orientation-week-welcome-session-for-the-new-students-of-2026-hall-b";
const READY: &str = "EG_kq8Zt3vXw9LmN2pRa7Ud";
const LIVE: &str = "EG_Hn4cW1sYe6QbT0jKf2Vm";
const FAILED: &str = "EG_p5RxL8gMz3DaS9uNc1Eo";
/// An egress that only streamed: `stopped` is as far as it goes, and it is not final.
const STOPPED: &str = "EG_Vb7TqK2nXe4HsW9cLr5A";
/// An HLS recording.
const HLS: &str = "EG_Ls3VqN8bTe1XwH6cJp4Y";
/// The parts of the join token the failed egress's error quotes.
const TOKEN_PARTS: [&str; 2] = [
    "eyJhbGciOiJIUzI1NiJ9",
    "eyJ2aWRlbyI6eyJyb29tSm9pbiI6dHJ1ZX19",
];
const DEADLINE: Duration = Duration::from_secs(30);

fn chromium() -> PathBuf {
    let path = std::env::var_os("ROOMTAPE_CHROMIUM")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.is_file(),
        "no chromium at {}: run deploy/local/services.sh (it installs Debian's chromium) and \
         eval what it prints (ROOMTAPE_CHROMIUM names the browser)",
        path.display()
    );
    path
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from);
    // Relative to where cargo was started, the workspace's root for `cargo test`.
    let target = if target.is_absolute() {
        target
    } else {
        workspace_root().join(target)
    };
    target.join("console-screenshots")
}

/// Headless chromium with a profile of its own, closed (and the profile removed) at the end.
struct Chromium {
    browser: Browser,
    events: tokio::task::JoinHandle<()>,
    profile: PathBuf,
}

impl Chromium {
    async fn launch() -> Self {
        let executable = chromium();
        let profile = std::env::temp_dir().join(format!(
            "roomtape-chromium-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let config = BrowserConfig::builder()
            .chrome_executable(&executable)
            .new_headless_mode()
            // Tests run as root in containers, where chromium's sandbox cannot start.
            .no_sandbox()
            .user_data_dir(&profile)
            .window_size(1280, 900)
            // The test sets the viewport itself, per step.
            .viewport(None)
            .launch_timeout(DEADLINE)
            .build()
            .expect("browser config");
        let (browser, mut handler) = Browser::launch(config)
            .await
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", executable.display()));
        // The connection only moves while its handler is polled; a message this crate cannot
        // read (a newer chromium's) must not end it.
        let events = tokio::spawn(async move { while handler.next().await.is_some() {} });
        Self {
            browser,
            events,
            profile,
        }
    }

    /// A tab on the console at desktop width, noting Content-Security-Policy violations.
    async fn console(&self, api: &TestApp) -> Page {
        let page = self.browser.new_page("about:blank").await.expect("a tab");
        page.evaluate_on_new_document(RECORD_CSP_VIOLATIONS)
            .await
            .expect("install the CSP listener");
        viewport(&page, 1280, 900, false).await;
        page.goto(api.url("/")).await.expect("open the console");
        page
    }

    async fn close(mut self) {
        self.browser.close().await.expect("close chromium");
        self.browser.wait().await.expect("chromium exits");
        self.events.abort();
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

async fn eval<T: DeserializeOwned>(page: &Page, js: &str) -> T {
    page.evaluate_expression(js)
        .await
        .unwrap_or_else(|e| panic!("{js}: {e}"))
        .into_value()
        .unwrap_or_else(|e| panic!("{js}: {e}"))
}

/// Polls the page until `js` is truthy; on timeout, says what the page shows.
async fn wait_until(page: &Page, what: &str, js: &str) {
    let started = Instant::now();
    // `!!`: an optional chain on what is not there yet is undefined, which has no JSON value.
    let truthy = format!("!!({js})");
    while !eval::<bool>(page, &truthy).await {
        if started.elapsed() > DEADLINE {
            let shown: String = eval(
                page,
                "[...document.querySelectorAll('[data-testid=error-banner], \
                  [data-testid=signin-error], [data-testid=recordings], [data-testid=rooms]')] \
                  .filter(e => e.checkVisibility()).map(e => e.textContent).join(' | ') \
                  + ` (${document.visibilityState})`",
            )
            .await;
            panic!("timed out after {DEADLINE:?} waiting for {what}; the page shows: {shown:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn click(page: &Page, selector: &str) {
    page.find_element(selector)
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {selector}: {e}"));
}

async fn sign_in(page: &Page, token: &str) {
    page.find_element("[data-testid=token-input]")
        .await
        .expect("the token prompt")
        .click()
        .await
        .expect("focus the token input")
        .type_str(token)
        .await
        .expect("type the token");
    click(page, "[data-testid=sign-in]").await;
}

/// Signs out, signs in with `token`, and waits for `button` (a room's) to be back.
async fn sign_in_again(page: &Page, token: &str, button: &str) {
    click(page, "[data-testid=sign-out]").await;
    sign_in(page, token).await;
    let js = format!("document.querySelector('{button}')");
    wait_until(page, "the rooms again", &js).await;
}

async fn viewport(page: &Page, width: i64, height: i64, mobile: bool) {
    page.execute(SetDeviceMetricsOverrideParams::new(
        width, height, 1.0, mobile,
    ))
    .await
    .expect("set the viewport");
    wait_until(
        page,
        "the viewport to take its size",
        &format!("window.innerWidth === {width}"),
    )
    .await;
}

/// Full-page PNGs of the steps, kept under the target directory.
struct Screenshots {
    dir: PathBuf,
    taken: Vec<PathBuf>,
}

impl Screenshots {
    fn new() -> Self {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        Self {
            dir,
            taken: Vec::new(),
        }
    }

    /// The whole page as it is laid out now (the viewport the test set stays in force).
    async fn take(&mut self, page: &Page, name: &str) -> Vec<u8> {
        let (width, height): (f64, f64) = eval(
            page,
            "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]",
        )
        .await;
        let params = CaptureScreenshotParams {
            format: Some(CaptureScreenshotFormat::Png),
            clip: Some(Viewport {
                x: 0.0,
                y: 0.0,
                width,
                height,
                scale: 1.0,
            }),
            capture_beyond_viewport: Some(true),
            ..CaptureScreenshotParams::default()
        };
        let shot = page.execute(params).await.expect("screenshot");
        let data: &str = shot.result.data.as_ref();
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("base64 PNG");
        let path = self.dir.join(format!("{name}.png"));
        std::fs::write(&path, &png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        self.taken.push(path);
        png
    }
}

/// Posts `body` to the ingestor, signed as LiveKit signs it.
async fn webhook(ingestor: &TestApp, body: &str) {
    let response = post_webhook(ingestor, body.as_bytes(), &sign_webhook(body.as_bytes())).await;
    assert!(
        response.status().is_success(),
        "webhook refused: {}",
        response.status()
    );
}

/// A live room with two viewers (three at its peak), and one with a single viewer (the
/// participant fixtures name the session `RM_test`).
async fn live_rooms(test: &TestEnv, ingestor: &TestApp) {
    for body in [
        room_event("room_started", "EV_room1", ROOM, "RM_test"),
        participant_event("participant_joined", "EV_j1", ROOM, "alice", "STANDARD"),
        participant_event("participant_joined", "EV_j2", ROOM, "bob", "STANDARD"),
        participant_event("participant_joined", "EV_j3", ROOM, "carol", "STANDARD"),
        room_event("room_started", "EV_room2", LONG_ROOM, "RM_test"),
        participant_event("participant_joined", "EV_j4", LONG_ROOM, "dave", "STANDARD"),
    ] {
        webhook(ingestor, &body).await;
    }
    // Events are handled concurrently: a leave handled before its join would never make three.
    eventually(DEADLINE, "three viewers", || async {
        let client = test.database.client().await;
        let row = client
            .query_opt(
                "SELECT participant_count FROM rooms WHERE room_name = $1",
                &[&ROOM],
            )
            .await
            .expect("room");
        row.filter(|r| r.get::<_, i32>(0) == 3).map(drop)
    })
    .await;
    let left = participant_event("participant_left", "EV_l3", ROOM, "carol", "STANDARD");
    webhook(ingestor, &left).await;
}

/// A ready recording with a real video in the bucket, one being recorded, and a failed one.
async fn recordings(test: &TestEnv, ingestor: &TestApp) {
    let profile = &test.bucket.profile;
    let ready = Egress::new(READY, ROOM, profile);
    test.bucket.put(&ready.key, VIDEO, "video/mp4").await;
    webhook(ingestor, &ready.started("EV_ready_s")).await;
    webhook(ingestor, &ready.ended("EV_ready_e")).await;
    let live = Egress::new(LIVE, ROOM, profile);
    webhook(ingestor, &live.started("EV_live_s")).await;
    let active = live.updated("EV_live_u", "EGRESS_ACTIVE", STARTED_NS + 1_000_000_000);
    webhook(ingestor, &active).await;
    let failed = Egress::new(FAILED, LONG_ROOM, profile);
    let error = "Start signal not received: the recorder could not join \
                 wss://livekit.example.com/rtc/validate?access_token=eyJhbGciOiJIUzI1NiJ9.\
                 eyJ2aWRlbyI6eyJyb29tSm9pbiI6dHJ1ZX19";
    webhook(ingestor, &failed.failed("EV_failed", error)).await;
    let streamed = Egress::new(STOPPED, LONG_ROOM, profile);
    let streams = serde_json::json!({"streamResults": [{"url": "rtmp://live.example.com/app/key",
        "status": "FINISHED"}]});
    webhook(ingestor, &streamed.ended_with("EV_streamed", streams)).await;
}

fn card(egress_id: &str) -> String {
    format!("[data-testid=recording][data-egress-id=\"{egress_id}\"]")
}

/// The thumbnail `<img>` of a recording's row, as a JavaScript expression.
fn thumbnail(egress_id: &str) -> String {
    format!(
        "document.querySelector('{} [data-testid=thumbnail]')",
        card(egress_id)
    )
}

/// Collects Content-Security-Policy violations, so the test can say the policy let the page
/// (and the presigned media) work.
const RECORD_CSP_VIOLATIONS: &str = "window.__cspViolations = []; \
    document.addEventListener('securitypolicyviolation', \
      e => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));";

#[tokio::test]
async fn the_console_lists_plays_and_deletes_a_recording_in_a_real_browser() {
    let chromium = Chromium::launch().await;
    let test = TestEnv::new().await;
    let livekit = FakeLiveKit::start(API_KEY, API_SECRET);
    let env = test.env_with(&[
        (
            "API_TOKENS",
            &format!("admin:{WRITE}:write,viewer:{READ}:read"),
        ),
        ("LIVEKIT_URL", livekit.url.as_str()),
        // Thumbnails in a private bucket: the page shows them from presigned links.
        ("RECORDING_THUMBNAILS", "on"),
        ("S3_PUBLIC_BASE_URL", ""),
    ]);
    let processor = spawn_processor(&env).await;
    let ingestor = spawn_ingestor(&env, Clock::System);
    wait_ready(&processor).await;
    wait_ready(&ingestor).await;
    let api = spawn_api(&env);
    wait_ready(&api).await;
    let mut shots = Screenshots::new();

    let page = chromium.console(&api).await;

    // A wrong token: the API's answer is shown, and the prompt comes back.
    sign_in(&page, "not-a-token").await;
    wait_until(
        &page,
        "the refusal in the page",
        "(() => { const b = document.querySelector('[data-testid=error-banner]'); \
           return !b.hidden && b.textContent.includes('unauthorized') \
             && !document.querySelector('[data-testid=signin]').hidden; })()",
    )
    .await;
    shots.take(&page, "01-wrong-token").await;

    // The right one; then LiveKit's webhooks, which the page picks up by itself.
    sign_in(&page, WRITE).await;
    wait_until(
        &page,
        "the signed-in console",
        "!document.querySelector('[data-testid=recordings]').closest('#app').hidden",
    )
    .await;
    live_rooms(&test, &ingestor).await;
    recordings(&test, &ingestor).await;
    wait_until(
        &page,
        "the ready recording, the live one and the failed one",
        &format!(
            "document.querySelector('{} [data-testid=status-badge]')?.textContent === 'ready' \
             && document.querySelector('{} [data-testid=status-badge]')?.textContent === 'active' \
             && document.querySelector('{}') !== null \
             && document.querySelector('[data-testid=room][data-room=\"{ROOM}\"]') \
                  ?.textContent.includes('2 viewers now · peak 3')",
            card(READY),
            card(LIVE),
            card(FAILED)
        ),
    )
    .await;
    // The ready one's row shows its thumbnail (a frame of its video, 320x240); the others
    // have none.
    wait_until(
        &page,
        "the ready recording's thumbnail",
        &format!("{}?.naturalWidth === 320", thumbnail(READY)),
    )
    .await;
    let others: (bool, bool) = eval(
        &page,
        &format!("[{}.hidden, {}.hidden]", thumbnail(FAILED), thumbnail(LIVE)),
    )
    .await;
    assert_eq!(others, (true, true), "(failed, live) have no thumbnail");
    shots.take(&page, "02-signed-in").await;
    // The failed one's error is shown, its join token redacted.
    wait_until(
        &page,
        "the stopped recording",
        &format!(
            "document.querySelector('{} [data-testid=status-badge]')?.textContent === 'stopped'",
            card(STOPPED)
        ),
    )
    .await;
    let page_text: String = eval(&page, "document.body.innerText").await;
    assert!(page_text.contains("access_token=[redacted]"), "{page_text}");
    for part in TOKEN_PARTS {
        assert!(!page_text.contains(part), "the console shows the token");
    }
    // Delete only where the API would: final recordings, not a stopped one.
    let deletable: (bool, bool) = eval(
        &page,
        &format!(
            "[document.querySelector('{} [data-testid=delete]') !== null, \
              document.querySelector('{} [data-testid=delete]') !== null]",
            card(FAILED),
            card(STOPPED)
        ),
    )
    .await;
    assert_eq!(deletable, (true, false), "(failed, stopped) offer Delete");

    // Play: the video element loads the file's metadata from its presigned URL.
    click(&page, &format!("{} [data-testid=play]", card(READY))).await;
    let video = format!("document.querySelector('{} video')", card(READY));
    wait_until(
        &page,
        "the video's metadata",
        &format!("{video}.readyState >= 1"),
    )
    .await;
    let (poster, thumb): (String, String) = eval(
        &page,
        &format!("[{video}.poster, {}.src]", thumbnail(READY)),
    )
    .await;
    assert_eq!(poster, thumb, "the thumbnail is the player's poster");
    let source: String = eval(&page, &format!("{video}.currentSrc")).await;
    assert!(
        source.starts_with(&test.bucket.profile.endpoint.to_string()),
        "played from the bucket: {source}"
    );
    // A frame to show, then still, for a steady picture.
    wait_until(&page, "a video frame", &format!("{video}.readyState >= 2")).await;
    eval::<bool>(&page, &format!("({video}.pause(), true)")).await;
    let desktop = shots.take(&page, "03-playing").await;
    if std::env::var_os("ROOMTAPE_DOCS_SCREENSHOT").is_some() {
        let docs = workspace_root().join("docs/console.png");
        std::fs::write(&docs, &desktop).unwrap_or_else(|e| panic!("{}: {e}", docs.display()));
        shots.taken.push(docs);
    }

    // Delete, through the page's own confirmation.
    click(&page, &format!("{} [data-testid=delete]", card(READY))).await;
    wait_until(
        &page,
        "the confirmation",
        "document.querySelector('[data-testid=confirm-dialog]').open",
    )
    .await;
    shots.take(&page, "04-confirm-delete").await;
    click(&page, "[data-testid=confirm-delete]").await;
    wait_until(
        &page,
        "the recording to leave the list",
        &format!("document.querySelector('{}') === null", card(READY)),
    )
    .await;
    shots.take(&page, "05-deleted").await;
    assert_eq!(
        test.database.recording_rows(READY).await,
        0,
        "its rows are gone"
    );
    let gone = reqwest::Client::new()
        .get(api.url(&format!("/api/v1/recordings/{READY}")))
        .bearer_auth(WRITE)
        .send()
        .await
        .expect("details");
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);

    // A phone: cards, and nothing wider than the screen.
    viewport(&page, 390, 844, true).await;
    let cards: u32 = eval(
        &page,
        "document.querySelectorAll('[data-testid=recording]').length",
    )
    .await;
    assert!(cards >= 2, "the list has content: {cards}");
    let (scroll_width, inner_width): (f64, f64) = eval(
        &page,
        "[document.documentElement.scrollWidth, window.innerWidth]",
    )
    .await;
    shots.take(&page, "06-phone").await;
    assert!(
        scroll_width <= inner_width,
        "the page scrolls sideways at 390 px: {scroll_width} > {inner_width}"
    );

    // A read token: the rooms and recordings, and no button it may not use (its /api/v1/me).
    let start = format!("[data-testid=room][data-room=\"{ROOM}\"] [data-testid=start-recording]");
    click(&page, "[data-testid=sign-out]").await;
    sign_in(&page, READ).await;
    wait_until(
        &page,
        "the rooms and the failed recording for the read token",
        &format!(
            "document.querySelector('[data-testid=room][data-room=\"{ROOM}\"]') !== null \
             && document.querySelector('{}') !== null",
            card(FAILED)
        ),
    )
    .await;
    let buttons: Vec<String> = eval(
        &page,
        "[...new Set([...document.querySelectorAll('#recordings button, #rooms button')] \
           .map(b => b.dataset.testid))].sort()",
    )
    .await;
    // The failed recording offered Delete to the write token; no ready one is left to play.
    assert_eq!(buttons, Vec::<String>::new(), "no Start, Stop or Delete");
    shots.take(&page, "07-read-token").await;
    assert!(livekit.calls("StartRoomCompositeEgress").is_empty());

    // A write token: the room recording already says so; another room starts and stops.
    sign_in_again(&page, WRITE, &start).await;
    click(&page, &start).await;
    wait_until(
        &page,
        "the room already recording, shown, and the button working again",
        &format!(
            "(() => {{ const b = document.querySelector('[data-testid=error-banner]'); \
               return !b.hidden && b.textContent.includes('already_recording') \
                 && /HTTP 409/.test(b.textContent) \
                 && !document.querySelector('{start}').disabled; }})()"
        ),
    )
    .await;
    let start =
        format!("[data-testid=room][data-room=\"{LONG_ROOM}\"] [data-testid=start-recording]");
    let stop =
        format!("[data-testid=room][data-room=\"{LONG_ROOM}\"] [data-testid=stop-recording]");
    click(&page, &start).await;
    let client = test.database.client().await;
    let started: String = eventually(Duration::from_secs(30), "the started recording", || {
        let client = &client;
        async move {
            let row = client
                .query_opt(
                    "SELECT egress_id FROM recordings WHERE room_name = $1 AND status = 'starting'",
                    &[&LONG_ROOM],
                )
                .await
                .ok()??;
            Some(row.get(0))
        }
    })
    .await;
    let badge = |status: &str| {
        format!(
            "document.querySelector('{} [data-testid=status-badge]')?.textContent === '{status}'",
            card(&started)
        )
    };
    wait_until(
        &page,
        "the started recording in the list",
        &badge("starting"),
    )
    .await;
    shots.take(&page, "08-started").await;
    click(&page, &stop).await;
    wait_until(
        &page,
        "the stopped recording in the list",
        &badge("stopping"),
    )
    .await;
    shots.take(&page, "09-stopped").await;
    assert_eq!(livekit.calls("StartRoomCompositeEgress").len(), 1);
    assert_eq!(livekit.calls("StopEgress").len(), 1);

    let violations: Vec<String> = eval(&page, "window.__cspViolations").await;
    assert!(violations.is_empty(), "CSP violations: {violations:?}");
    chromium.close().await;
    for path in &shots.taken {
        println!("screenshot: {}", path.display());
    }
}

/// An HLS recording in a private bucket (no public base URL) plays in the page: hls.js (vendored,
/// loaded on first use) reads the API's playlist with the token and each segment from its
/// presigned link, within the page's Content-Security-Policy; its row shows its thumbnail (a
/// frame of a segment). The bucket allows cross-origin GETs (a CORS rule, which the player's
/// reads need), as R2 and S3 buckets are set up for it.
#[tokio::test]
async fn an_hls_recording_in_a_private_bucket_plays_in_the_console() {
    let chromium = Chromium::launch().await;
    let test = TestEnv::new().await;
    let settings = [
        ("RECORDING_THUMBNAILS", "on"),
        ("RECORDING_PROBE", "on"),
        ("S3_PUBLIC_BASE_URL", ""),
    ];
    let processor = spawn_processor(&test.env_with(&settings)).await;
    wait_ready(&processor).await;
    // The links the API signs (and so the browser's reads) go through the bucket's CORS rule.
    let bucket = CorsProxy::start(test.bucket.profile.endpoint.as_str());
    let tokens = format!("viewer:{READ}:read");
    let mut api_settings = settings.to_vec();
    api_settings.extend([
        ("S3_ENDPOINT", bucket.url.as_str()),
        ("API_TOKENS", &tokens),
    ]);
    let api = spawn_api(&test.env_with(&api_settings));
    wait_ready(&api).await;
    let mut hls = Egress::new(HLS, ROOM, &test.bucket.profile);
    hls.key = format!("recordings/{ROOM}/{HLS}/rec.m3u8");
    upload_hls(&test.bucket, &hls.key, HLS_PLAYLIST, None).await;
    test.vhost
        .publish(
            EVENTS_EXCHANGE,
            "egress.ended",
            hls_ended(&hls, "EV_hls").as_bytes(),
            "EV_hls",
        )
        .await;
    eventually(DEADLINE, "the HLS recording ready", || async {
        let row = test.database.recording(HLS).await?;
        assert_ne!(row["status"], "failed", "{row}");
        (row["status"] == "ready").then_some(())
    })
    .await;

    let page = chromium.console(&api).await;
    sign_in(&page, READ).await;
    wait_until(
        &page,
        "the HLS recording's thumbnail",
        &format!("{}?.naturalWidth === 320", thumbnail(HLS)),
    )
    .await;

    // The page shows the list once every first load is in (rooms, endpoints too).
    let play = format!("{} [data-testid=play]", card(HLS));
    let shown = format!("document.querySelector('{play}')?.checkVisibility()");
    wait_until(&page, "the Play button", &shown).await;
    // The times the player reports as it plays, however slowly this page is polled.
    let video = format!("document.querySelector('{} video')", card(HLS));
    let record_times = format!(
        "(window.__times = [], {video}.addEventListener('timeupdate', \
           e => window.__times.push(e.target.currentTime)), true)"
    );
    eval::<bool>(&page, &record_times).await;
    click(&page, &play).await;
    wait_until(
        &page,
        "playback to advance by a second",
        "window.__times.length > 1 \
           && Math.max(...window.__times) - Math.min(...window.__times) >= 1",
    )
    .await;
    // Through Media Source Extensions, not the playlist as a plain source.
    let source: String = eval(&page, &format!("{video}.currentSrc")).await;
    assert!(
        source.starts_with("blob:"),
        "played through hls.js: {source}"
    );
    let mut shots = Screenshots::new();
    eval::<bool>(&page, &format!("({video}.pause(), true)")).await;
    shots.take(&page, "10-hls-playing").await;
    let violations: Vec<String> = eval(&page, "window.__cspViolations").await;
    assert!(violations.is_empty(), "CSP violations: {violations:?}");
    chromium.close().await;
}

#[tokio::test]
async fn a_one_room_livekit_token_sees_that_room_and_no_button_it_may_not_use() {
    let chromium = Chromium::launch().await;
    let test = TestEnv::new().await;
    let processor = event_processor(&test.env()).await;
    // The token (minted by livekit-server-sdk) joins room r1.
    let join = access_token("node_room_join_r1");
    for body in [
        room_event("room_started", "EV_r1", "r1", "RM_r1"),
        room_event("room_started", "EV_r2", "r2", "RM_r2"),
    ] {
        handle(&processor, &body).await.expect("applied");
    }
    ready_recording(&test, &processor, READY, "r1", VIDEO).await;
    ready_recording(&test, &processor, LIVE, "r2", VIDEO).await;
    let failed = Egress::new(FAILED, "r1", &test.bucket.profile);
    handle(&processor, &failed.failed("EV_failed", "AccessDenied"))
        .await
        .expect("applied");
    let keys = app_keys();
    let env = test.env_with(&[
        ("API_TOKENS", &format!("admin:{WRITE}:write")),
        ("LIVEKIT_KEYS", &keys),
    ]);
    let api = spawn_api_with_clock(&env, Clock::FixedUnix(join.verify_at));
    wait_ready(&api).await;
    let mut shots = Screenshots::new();

    let page = chromium
        .browser
        .new_page("about:blank")
        .await
        .expect("a tab");
    viewport(&page, 1280, 900, false).await;
    page.goto(api.url("/")).await.expect("open the console");
    sign_in(&page, &join.token).await;
    wait_until(
        &page,
        "r1's ready recording and the room",
        &format!(
            "document.querySelector('{} [data-testid=status-badge]')?.textContent === 'ready' \
             && document.querySelector('[data-testid=room][data-room=\"r1\"]') !== null",
            card(READY)
        ),
    )
    .await;
    shots.take(&page, "10-one-room-livekit-token").await;

    let shown: (Vec<String>, Vec<String>) = eval(
        &page,
        "[[...document.querySelectorAll('[data-testid=room]')].map(r => r.dataset.room), \
          [...document.querySelectorAll('[data-testid=recording]')].map(r => r.dataset.egressId)]",
    )
    .await;
    assert_eq!(
        shown,
        (vec!["r1".to_owned()], vec![READY.to_owned()]),
        "(rooms, recordings) shown"
    );
    let buttons: Vec<String> = eval(
        &page,
        "[...document.querySelectorAll('#recordings button, #rooms button')].map(b => b.dataset.testid)",
    )
    .await;
    assert_eq!(
        buttons,
        ["play", "download"],
        "no Delete, no Start, no Stop"
    );
    let (who, filter, disabled): (String, String, bool) = eval(
        &page,
        "[document.querySelector('[data-testid=who]').textContent, \
          document.querySelector('[data-testid=filter-room]').value, \
          document.querySelector('[data-testid=filter-room]').disabled]",
    )
    .await;
    assert_eq!(who, "alice · LiveKit token · room r1");
    assert_eq!((filter.as_str(), disabled), ("r1", true));
    chromium.close().await;
}

#[tokio::test]
async fn the_console_shows_an_endpoint_whose_notifications_are_dead_lettered() {
    let chromium = Chromium::launch().await;
    let test = TestEnv::new().await;
    let _processor = event_processor(&test.env()).await; // the schema
    let client = test.database.client().await;
    client
        .batch_execute(
            "INSERT INTO notification_outbox (notification_id, type, body, relayed_at)
                 VALUES ('recording.ready:EG_x', 'recording.ready', '{}', now());
             INSERT INTO notification_deliveries
                 (outbox_id, endpoint, status, attempts, next_attempt_at, last_status,
                  last_error, last_attempt_at, finished_at)
                 SELECT id, 'billing', 'failed', 7, now(), 503,
                        'answered 503: <b>down</b> for maintenance', now(), now()
                 FROM notification_outbox",
        )
        .await
        .expect("a dead-lettered delivery");
    let api = spawn_api(&test.env_with(&[("API_TOKENS", &format!("admin:{WRITE}:write"))]));
    wait_ready(&api).await;
    let page = chromium
        .browser
        .new_page("about:blank")
        .await
        .expect("a tab");
    page.goto(api.url("/")).await.expect("open the console");
    viewport(&page, 390, 844, true).await;
    sign_in(&page, WRITE).await;
    wait_until(
        &page,
        "the failing endpoints panel",
        "document.querySelector('[data-testid=endpoints]')?.hidden === false",
    )
    .await;
    let shown: Vec<String> = eval(
        &page,
        "[...document.querySelectorAll('[data-testid=endpoint]')].map(e => e.textContent)",
    )
    .await;
    // The count of dead-lettered deliveries, and the error as text, never as markup.
    assert_eq!(
        shown,
        ["billing1 failed, 0 pendinganswered 503: <b>down</b> for maintenance"]
    );
    let sideways: bool = eval(
        &page,
        "document.documentElement.scrollWidth > document.documentElement.clientWidth",
    )
    .await;
    assert!(!sideways, "no sideways scroll at 390 px");
    chromium.close().await;
}

#[tokio::test]
async fn the_usage_view_charts_the_known_recordings_and_fits_a_phone() {
    let chromium = Chromium::launch().await;
    let test = TestEnv::new().await;
    let _processor = event_processor(&test.env()).await; // the schema
                                                         // Three recordings of the last days (60, 30 and 15 minutes) and one ten days old that the
                                                         // rules make due.
    test.database
        .client()
        .await
        .batch_execute(
            "INSERT INTO recordings (egress_id, room_name, user_id, status, ended_at,
                     duration_seconds, file_size_bytes, storage_provider, is_processed)
                 VALUES ('EG_u1', 'algebra', 'teacher-1', 'ready', now() - interval '2 days',
                         3600, 2000000000, 's3', true),
                        ('EG_u2', 'algebra', 'teacher-1', 'ready', now() - interval '1 day',
                         1800, 1000000000, 's3', true),
                        ('EG_u3', 'lobby', 'teacher-2', 'ready', now() - interval '1 day',
                         900, 500000000, 's3', true),
                        ('EG_old', 'lobby', NULL, 'ready', now() - interval '10 days',
                         60, 1000, 's3', true)",
        )
        .await
        .expect("known recordings");
    let api = spawn_api(&test.env_with(&[
        ("API_TOKENS", &format!("viewer:{READ}:read")),
        ("RECORDING_RETENTION", "lobby=7d"),
        ("USAGE_PRICE_PER_EGRESS_MINUTE", "0.01"),
    ]));
    wait_ready(&api).await;
    let page = chromium.console(&api).await;
    sign_in(&page, READ).await;
    wait_until(
        &page,
        "the usage charts",
        "document.querySelectorAll('#chart-minutes rect').length > 0          && document.querySelector('[data-testid=retention-due]').textContent",
    )
    .await;
    // One bar a day; the tallest is the day with 45 minutes, and the bars carry the minutes.
    let minutes: Vec<f64> = eval(
        &page,
        "[...document.querySelectorAll('#chart-minutes rect')].map(r => Number(r.dataset.value))",
    )
    .await;
    assert!(minutes.len() >= 10, "a bar per day: {minutes:?}");
    let mut recorded: Vec<f64> = minutes.iter().copied().filter(|m| *m > 0.0).collect();
    recorded.sort_by(f64::total_cmp);
    assert_eq!(recorded, [1.0, 45.0, 60.0], "minutes per day");
    let heights: Vec<f64> = eval(
        &page,
        "[...document.querySelectorAll('#chart-minutes rect')].map(r => r.getBBox().height)",
    )
    .await;
    let tallest = heights.iter().copied().fold(0.0, f64::max);
    let tallest_at = heights.iter().position(|h| *h == tallest).expect("a bar");
    assert_eq!(
        minutes[tallest_at], 60.0,
        "the longest day is the tallest bar"
    );
    let storage: usize = eval(
        &page,
        "[...document.querySelectorAll('#chart-storage rect')].filter(r => r.getBBox().height > 0).length",
    )
    .await;
    assert!(
        storage >= 2,
        "storage drawn for the days something was stored"
    );
    let rooms: Vec<String> = eval(
        &page,
        "[...document.querySelectorAll('[data-testid=top-rooms] tbody tr')].map(r => r.cells[0].textContent)",
    )
    .await;
    assert_eq!(rooms, ["algebra", "lobby"], "by minutes");
    let due: String = eval(
        &page,
        "document.querySelector('[data-testid=retention-due]').textContent",
    )
    .await;
    assert!(due.contains("deletes 1 recording"), "{due}");
    let rules: String = eval(
        &page,
        "document.querySelector('[data-testid=retention-rules]').textContent",
    )
    .await;
    assert!(rules.contains("lobby: kept 7days"), "{rules}");

    viewport(&page, 390, 844, true).await;
    let sideways: bool = eval(
        &page,
        "document.documentElement.scrollWidth > document.documentElement.clientWidth",
    )
    .await;
    assert!(!sideways, "no sideways scroll at 390 px");
    let no_violations: bool = eval(&page, "window.__cspViolations.length === 0").await;
    assert!(no_violations, "no Content-Security-Policy violation");
    chromium.close().await;
}

#[tokio::test]
async fn the_console_is_served_without_a_token_and_with_its_security_headers() {
    let test = TestEnv::new().await;
    let api = spawn_api(&test.env_with(&[("API_TOKENS", "admin:a-token:write")]));
    wait_ready(&api).await;
    let bucket = test.bucket.profile.endpoint.origin().ascii_serialization();
    for (path, content_type) in [
        ("/", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
        ("/console/hls.light.min.js", "text/javascript"),
    ] {
        let response = reqwest::get(api.url(path)).await.expect(path);
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers();
        let value = |name: header::HeaderName| {
            headers
                .get(&name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{path}: no {name}"))
                .to_owned()
        };
        assert!(
            value(header::CONTENT_TYPE).starts_with(content_type),
            "{path}"
        );
        assert_eq!(value(header::CACHE_CONTROL), "no-cache", "{path}");
        assert_eq!(value(header::X_CONTENT_TYPE_OPTIONS), "nosniff", "{path}");
        assert_eq!(value(header::REFERRER_POLICY), "no-referrer", "{path}");
        let policy = value(header::CONTENT_SECURITY_POLICY);
        for directive in [
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "media-src 'self' http: https: blob:",
            "frame-ancestors 'none'",
            // Thumbnails and the HLS player's reads: from the storage profiles' buckets.
            &format!("img-src 'self' data: {bucket} https://media.example.com;"),
            &format!("connect-src 'self' {bucket} https://media.example.com;"),
        ] {
            assert!(
                policy.contains(directive),
                "{path}: {directive} in {policy}"
            );
        }
    }
    let page = reqwest::get(api.url("/"))
        .await
        .expect("/")
        .text()
        .await
        .expect("html");
    assert!(page.contains("/console/console.js") && page.contains("/console/console.css"));
}
