//! What the apps log, captured in the test process: for tests that say what must never appear
//! in a log line (tokens, secrets). One global subscriber, for the apps' own threads too (actix
//! workers run on threads of their own); it keeps lines only while a capture is open, so other
//! tests of the binary pay for no buffer. It also prints when `TEST_LOG` is set.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::filter::{self, LevelFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Open captures; lines are kept while there is one.
static OPEN: AtomicUsize = AtomicUsize::new(0);
/// Every line logged while a capture was open.
static LINES: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static INSTALLED: OnceLock<()> = OnceLock::new();

#[derive(Clone, Copy)]
struct Captured;

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut lines) = LINES.lock() {
            lines.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

/// Installs the test binary's subscriber once: printing when `TEST_LOG` is set, capturing
/// (roomtape's own at `trace`, dependencies' at `info`) while a [`LogCapture`] is open.
pub fn install() {
    INSTALLED.get_or_init(|| {
        let print = std::env::var_os("TEST_LOG").is_some().then(|| {
            let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
            tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_filter(EnvFilter::new(filter))
        });
        let capture = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(Captured)
            .with_filter(filter::filter_fn(|meta| {
                OPEN.load(Ordering::SeqCst) > 0
                    && (meta.target().starts_with("roomtape") || *meta.level() <= LevelFilter::INFO)
            }));
        let _ = tracing_subscriber::registry()
            .with(print)
            .with(capture)
            .try_init();
    });
}

/// Log lines of the whole process (every test running meanwhile) from its start until it drops.
pub struct LogCapture {
    from: usize,
}

impl LogCapture {
    pub fn start() -> Self {
        install();
        OPEN.fetch_add(1, Ordering::SeqCst);
        let from = LINES.lock().map(|lines| lines.len()).unwrap_or_default();
        Self { from }
    }

    /// What was logged since the capture started.
    pub fn text(&self) -> String {
        let lines = LINES.lock().expect("log lines");
        String::from_utf8_lossy(&lines[self.from.min(lines.len())..]).into_owned()
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        if OPEN.fetch_sub(1, Ordering::SeqCst) == 1 {
            if let Ok(mut lines) = LINES.lock() {
                lines.clear();
            }
        }
    }
}
