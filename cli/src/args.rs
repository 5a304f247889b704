//! The command line.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "roomtape",
    version,
    about = "The roomtape operator tool: recordings, commands, dead letters, checks",
    after_help = "Exit status: 0 ok; 1 refused or a check failed; 2 bad arguments or settings; 3 a service did not answer.\nSettings come from the environment and ./.env (see the README)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Top,
    /// Print JSON for scripts instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to wait for a reply (record), or for a recording to be ready (simulate).
    #[arg(long, global = true, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub enum Top {
    /// Start and stop recordings of LiveKit rooms.
    #[command(subcommand)]
    Record(Box<Record>),
    /// Recordings: list, show, presigned URL, delete, sweep old ones.
    #[command(subcommand)]
    Recordings(crate::recordings::RecordingsCommand),
    /// The dead-letter queue, roomtape.dead: list, show, replay, purge.
    #[command(subcommand)]
    Dlq(crate::dlq::DlqCommand),
    /// Check the configuration and every service roomtape depends on.
    Doctor(crate::doctor::DoctorArgs),
    /// Play one realistic recording into a running deployment and wait until it is ready.
    Simulate(crate::simulate::SimulateArgs),
}

#[derive(Debug, Subcommand)]
pub enum Record {
    /// Start recording a room.
    Start(StartArgs),
    /// Stop a recording, or every active recording of a room.
    Stop(StopArgs),
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The LiveKit room to record.
    pub room_name: String,
    /// speaker, grid, single-speaker (or their -light / -dark variants).
    #[arg(long)]
    pub layout: Option<String>,
    /// mp4, webm or ogg.
    #[arg(long = "format")]
    pub file_format: Option<String>,
    #[arg(long)]
    pub audio_only: bool,
    #[arg(long)]
    pub video_only: bool,
    /// The storage profile to write to (default: the configured default).
    #[arg(long)]
    pub storage: Option<String>,
    /// Object key template, e.g. recordings/{room_name}/{time}.
    #[arg(long)]
    pub filepath: Option<String>,
    #[arg(long)]
    pub stream_id: Option<String>,
    #[arg(long)]
    pub user_id: Option<String>,
    /// A JSON object stored with the recording.
    #[arg(long)]
    pub metadata: Option<String>,
    /// The command's idempotency key (default: a new UUID). Repeat it to retry safely.
    #[arg(long)]
    pub id: Option<String>,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct StopArgs {
    #[arg(long)]
    pub egress_id: Option<String>,
    /// Stop every active recording of this room.
    #[arg(long = "room")]
    pub room_name: Option<String>,
}
