//! `roomtape-reliability [--short] [--bin-dir DIR] [--work-dir DIR]`: the fault-and-load
//! suite (see `roomtape_tests::reliability`); `scripts/reliability.sh` builds and runs it.

use std::path::PathBuf;

use clap::Parser;
use roomtape_tests::reliability::{self, Size};
use tokio::signal::unix::{signal, SignalKind};

#[derive(Parser)]
#[command(about = "roomtape's fault-and-load suite, on a RabbitMQ, PostgreSQL and S3 of its own")]
struct Args {
    /// A few hundred events instead of thousands (the test command's version).
    #[arg(long)]
    short: bool,
    /// Where roomtape-ingestor and roomtape-processor are.
    #[arg(long)]
    bin_dir: PathBuf,
    /// Where the servers keep their data and every log goes (created).
    #[arg(long)]
    work_dir: PathBuf,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let size = if args.short { Size::SHORT } else { Size::FULL };
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(terminate) => terminate,
        Err(error) => {
            eprintln!("reliability: cannot watch for SIGTERM: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    // Interrupted, the run is dropped: every server and process it started is stopped.
    let outcome = tokio::select! {
        outcome = reliability::run(size, args.bin_dir, args.work_dir) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        _ = terminate.recv() => Err(anyhow::anyhow!("terminated")),
    };
    match outcome {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(error) => {
            eprintln!("reliability: the suite could not run: {error:#}");
            std::process::ExitCode::from(2)
        }
    }
}
