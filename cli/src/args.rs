//! The command line.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "roomtape",
    version,
    about = "Start and stop LiveKit recordings through roomtape",
    after_help = "Exit status: 0 ok, 1 the processor refused, 2 bad arguments or settings, 3 no reply or broker unavailable."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Top,
    /// Print the processor's JSON reply instead of a summary.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to wait for the reply.
    #[arg(long, global = true, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub enum Top {
    /// Recordings of LiveKit rooms.
    #[command(subcommand)]
    Record(Box<Record>),
    /// The dead-letter queue, roomtape.dead.
    #[command(subcommand)]
    Dlq(Dlq),
}

#[derive(Debug, Subcommand)]
pub enum Dlq {
    /// Move dead letters back to the queue they failed on, for a fresh retry schedule.
    Replay {
        /// At most this many messages.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
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
