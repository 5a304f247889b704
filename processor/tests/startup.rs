//! The real binary refuses to start on a missing or malformed setting, with one line naming it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

const COMPLETE: [(&str, &str); 9] = [
    ("LIVEKIT_URL", "http://127.0.0.1:7880"),
    ("LIVEKIT_API_KEY", "devkey"),
    ("LIVEKIT_API_SECRET", "secret"),
    ("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
    (
        "DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    ),
    ("S3_ENDPOINT", "http://127.0.0.1:8014"),
    ("S3_BUCKET", "recordings"),
    ("S3_ACCESS_KEY_ID", "key"),
    ("S3_SECRET_ACCESS_KEY", "s3-secret-value"),
];

fn start_without(var: &str, replacement: Option<&str>) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_roomtape-processor"));
    // No inherited settings, and no .env from the working directory.
    command.env_clear().current_dir(std::env::temp_dir());
    for (name, value) in COMPLETE.iter().filter(|(name, _)| *name != var) {
        command.env(name, value);
    }
    if let Some(value) = replacement {
        command.env(var, value);
    }
    let output = command.output().expect("run roomtape-processor");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn each_missing_setting_stops_start_up_with_one_line_naming_it() {
    for (var, _) in COMPLETE {
        let (code, stderr) = start_without(var, None);
        assert_eq!(code, Some(2), "{var}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{var}: {stderr}");
        assert!(stderr.contains(var), "{var}: {stderr}");
        assert!(!stderr.contains("s3-secret-value"));
    }
}

#[test]
fn a_malformed_setting_is_named() {
    let (code, stderr) = start_without("DATABASE_URL", Some("postgres://x@host:port/db"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("DATABASE_URL is invalid"), "{stderr}");
}

#[test]
fn with_nothing_set_every_missing_setting_is_named_in_one_line() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_roomtape-processor"));
    command.env_clear().current_dir(std::env::temp_dir());
    let output = command.output().expect("run roomtape-processor");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "roomtape-processor: configuration: AMQP_URL, DATABASE_URL, LIVEKIT_URL, LIVEKIT_API_KEY \
         and S3_ENDPOINT are required but not set"
    );
}

#[test]
fn a_database_that_cannot_be_reached_is_named_with_its_address() {
    // Port 9 (discard) refuses connections on the loopback.
    let mut command = Command::new(env!("CARGO_BIN_EXE_roomtape-processor"));
    command.env_clear().current_dir(std::env::temp_dir());
    for (name, value) in COMPLETE {
        command.env(name, value);
    }
    command.env(
        "DATABASE_URL",
        "postgres://postgres:db-password@127.0.0.1:9/roomtape",
    );
    let output = command.output().expect("run roomtape-processor");
    // The error is logged (stdout), after start-up began.
    let logs = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{logs}");
    assert!(
        logs.contains("cannot connect to the database at 127.0.0.1:9/roomtape"),
        "{logs}"
    );
    assert!(!logs.contains("db-password"), "{logs}");
}
