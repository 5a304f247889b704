//! The command line.

use std::time::Duration;

use clap::{Parser, Subcommand};

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
    Record(Box<crate::record::Record>),
    /// Recordings: list, show, presigned URL, delete, sweep old ones.
    #[command(subcommand)]
    Recordings(crate::recordings::RecordingsCommand),
    /// The dead-letter queue, roomtape.dead: list, show, replay, purge.
    #[command(subcommand)]
    Dlq(crate::dlq::DlqCommand),
    /// Notifications to apps' HTTP endpoints: list, replay dead-lettered ones, test an endpoint.
    #[command(subcommand)]
    Notifications(crate::notifications::NotificationsCommand),
    /// Check the configuration and every service roomtape depends on.
    Doctor(crate::doctor::DoctorArgs),
    /// Play one realistic recording into a running deployment and wait until it is ready.
    Simulate(crate::simulate::SimulateArgs),
    /// What was recorded, by room, user, stream, kind, day or month, with estimated cost.
    Usage(crate::usage::UsageArgs),
}
