//! Settings loaded from the environment (and `.env`), validated once at start-up.
//!
//! Every binary loads only the sections it needs; a missing or malformed variable becomes a
//! [`ConfigError`] whose one-line message names the variable (CONTRACTS §6).

mod env;
mod livekit;
mod sections;
mod storage;

pub use env::{ConfigError, Env, Problems};
pub use livekit::{ApiKeys, LiveKitSettings};
pub use sections::{
    filepath_template, ingestor_url, AmqpSettings, AutoRecordSettings, DatabaseSettings,
    IngestorSettings, LogFormat, ProcessorSettings, TelemetrySettings,
};
pub use storage::{StorageProfile, StorageProfiles};

#[cfg(test)]
mod tests;
