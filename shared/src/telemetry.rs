//! Logging set-up: one subscriber for the whole process, JSON or text by configuration.

use std::io::IsTerminal;

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{LogFormat, TelemetrySettings};

/// Installs the global subscriber. Call once, first thing in `main`; later calls (tests) are
/// ignored.
pub fn init(settings: &TelemetrySettings) {
    let filter =
        EnvFilter::try_new(&settings.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_target(true);
    let _ = match settings.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        // Colours only on a terminal: a log file or collector gets plain text.
        LogFormat::Text => builder
            .with_ansi(std::io::stdout().is_terminal())
            .try_init(),
    };
}
