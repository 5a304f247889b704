//! Settings loaded from the environment (and `.env`), validated once at start-up.
//!
//! The sections every binary shares live here; each binary's own settings live in its crate
//! and are assembled with [`settings!`](crate::settings), which names every missing or
//! malformed variable in one [`ConfigError`] of one line (CONTRACTS §6).

mod env;
mod filepath;
mod livekit;
mod retention;
mod sections;
mod storage;
mod thumbnails;

pub use env::{ConfigError, Env, Problems};
pub use filepath::{key_problem, FilepathTemplate};
pub use livekit::{ApiKeys, LiveKitSettings};
pub use retention::RetentionRules;
pub use sections::{
    command_start_deadline, ingestor_url, AmqpSettings, DatabaseSchema, DatabaseSettings,
    LogFormat, TelemetrySettings,
};
pub use storage::{StorageProfile, StorageProfiles};
pub use thumbnails::ThumbnailSettings;

#[cfg(test)]
mod tests;
