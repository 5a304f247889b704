//! `roomtape recordings`: list, show, presigned URL, delete, sweep. The work is done by
//! `roomtape_shared::library`, which the HTTP API uses too; this module reads arguments and
//! prints.

use std::time::Duration;

use chrono::{DateTime, Utc};
use roomtape_shared::config::{DatabaseSettings, Env, RetentionRules, StorageProfiles};
use roomtape_shared::db;
use roomtape_shared::db::notifications::DeletedBy;
use roomtape_shared::db::recordings::{Filter, Kind, Recording, Status};
use roomtape_shared::library::Library;
use roomtape_shared::storage::{ObjectStore, MAX_PRESIGN};
use serde_json::json;

use crate::error::{CliError, EXIT_OK, EXIT_REFUSED};
use crate::output::{confirm, progress, Output};

#[derive(Debug, clap::Subcommand)]
pub enum RecordingsCommand {
    /// Recordings, newest first.
    List {
        /// Only this room.
        #[arg(long)]
        room: Option<String>,
        /// Only this status: starting, active, stopping, stopped, ready, failed, aborted.
        #[arg(long)]
        status: Option<Status>,
        /// Only recordings created since: an RFC 3339 time or an age such as 7d or 12h.
        #[arg(long, value_parser = parse_since)]
        since: Option<DateTime<Utc>>,
        /// Only recordings linked to this stream of the app.
        #[arg(long)]
        stream_id: Option<String>,
        /// Only recordings linked to this user of the app.
        #[arg(long)]
        user_id: Option<String>,
        /// Only this kind: room_composite, participant, track_composite, track, web.
        #[arg(long)]
        kind: Option<Kind>,
        /// Only recordings of this participant.
        #[arg(long)]
        identity: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// One recording with its files and the events applied to it.
    Show { egress_id: String },
    /// A presigned GET URL of the recording's file.
    Url {
        egress_id: String,
        /// How long the URL works (at most 7d).
        #[arg(long, default_value = "1h", value_parser = parse_expiry)]
        expires: Duration,
    },
    /// Delete a recording: its objects first, then its rows.
    Delete {
        egress_id: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Delete a recording that is not finished (starting … stopped) too.
        #[arg(long)]
        force: bool,
    },
    /// Delete every finished recording (ready, failed, aborted) past its age: the retention
    /// rules' (RECORDING_RETENTION, which the processor applies by itself), or --older-than's.
    Sweep {
        /// An age such as 30d for every room, instead of the rules: recordings that ended
        /// (else were created) before it.
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: Option<Duration>,
        /// List what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(
    command: &RecordingsCommand,
    env: &Env,
    out: &mut Output<'_>,
) -> Result<u8, CliError> {
    let library = library(env)?;
    match command {
        RecordingsCommand::List {
            room,
            status,
            since,
            stream_id,
            user_id,
            kind,
            identity,
            limit,
        } => {
            let filter = Filter {
                room_name: room.clone(),
                status: *status,
                since: *since,
                stream_id: stream_id.clone(),
                user_id: user_id.clone(),
                kind: *kind,
                identity: identity.clone(),
                before_id: None,
                limit: *limit,
            };
            print_list(out, &library.list(&filter).await?);
        }
        RecordingsCommand::Show { egress_id } => {
            let details = library.details(egress_id).await?;
            if out.json {
                out.json_value(&json!(details));
            } else {
                print_details(out, &details);
            }
        }
        RecordingsCommand::Url { egress_id, expires } => {
            let url = library.download_url(egress_id, *expires).await?;
            if out.json {
                let expires = humantime::format_duration(*expires).to_string();
                out.json_value(
                    &json!({"egress_id": egress_id, "url": url.as_str(), "expires_in": expires}),
                );
            } else {
                out.line(url);
            }
        }
        RecordingsCommand::Delete {
            egress_id,
            yes,
            force,
        } => {
            confirm(
                &format!("delete recording {egress_id} and its files?"),
                *yes,
            )?;
            let deleted = library.delete(egress_id, *force, DeletedBy::Cli).await?;
            if out.json {
                out.json_value(&json!({"egress_id": egress_id, "deleted": deleted}));
            } else {
                out.line(format!(
                    "deleted {egress_id}: {} object(s), {}",
                    deleted.objects,
                    size(Some(deleted.bytes))
                ));
            }
        }
        RecordingsCommand::Sweep {
            older_than,
            dry_run,
            yes,
        } => {
            let rules = match older_than {
                Some(age) => RetentionRules::every_room(*age),
                None => RetentionRules::from_env(env)?,
            };
            if rules.is_empty() {
                return Err(CliError::NoRetention);
            }
            return sweep(&library, &rules, *dry_run, *yes, out).await;
        }
    }
    Ok(EXIT_OK)
}

pub(crate) fn library(env: &Env) -> Result<Library, CliError> {
    let pool = db::pool(&DatabaseSettings::from_env(env)?)?;
    let objects = ObjectStore::new(&StorageProfiles::from_env(env)?);
    Ok(Library::new(pool, objects))
}

/// Deletes what is past its age, with progress; one recording that cannot be deleted does not
/// stop the others, but makes the exit status 1. The dry run lists the same set.
async fn sweep(
    library: &Library,
    rules: &RetentionRules,
    dry_run: bool,
    yes: bool,
    out: &mut Output<'_>,
) -> Result<u8, CliError> {
    let candidates = library.due(rules, Utc::now()).await?;
    let bytes: i64 = candidates.iter().filter_map(|r| r.file_size_bytes).sum();
    if dry_run {
        if out.json {
            out.json_value(&json!({"dry_run": true, "would_delete": candidates, "bytes": bytes}));
        } else {
            print_list(out, &candidates);
            out.line(format!(
                "would delete {} recording(s), {} (dry run: nothing deleted)",
                candidates.len(),
                size(Some(bytes))
            ));
        }
        return Ok(EXIT_OK);
    }
    if candidates.is_empty() {
        out.line("nothing to sweep");
        return Ok(EXIT_OK);
    }
    let question = format!(
        "delete {} recording(s) past their age, {}?",
        candidates.len(),
        size(Some(bytes))
    );
    confirm(&question, yes)?;
    let bar = progress(candidates.len() as u64, "sweeping");
    let swept = library
        .sweep(&candidates, DeletedBy::Cli, || bar.inc(1))
        .await;
    bar.finish_and_clear();
    if out.json {
        let failed: Vec<_> = swept
            .failed
            .iter()
            .map(|(id, error)| json!({"egress_id": id, "error": error}))
            .collect();
        out.json_value(&json!({"deleted": swept.deleted, "bytes": swept.bytes, "failed": failed}));
    } else {
        for (egress_id, error) in &swept.failed {
            out.line(format!("could not delete {egress_id}: {error}"));
        }
        out.line(format!(
            "swept {} recording(s), {}; {} failed",
            swept.deleted.len(),
            size(Some(swept.bytes)),
            swept.failed.len()
        ));
    }
    Ok(if swept.failed.is_empty() {
        EXIT_OK
    } else {
        EXIT_REFUSED
    })
}

fn print_list(out: &mut Output<'_>, recordings: &[Recording]) {
    if out.json {
        out.json_value(&json!(recordings));
        return;
    }
    if recordings.is_empty() {
        out.line("no recordings");
        return;
    }
    let rows = recordings
        .iter()
        .map(|r| {
            vec![
                r.egress_id.clone(),
                r.room_name.clone(),
                recorded(r),
                r.status.to_string(),
                time(r.started_at.or(Some(r.created_at))),
                duration(r.duration_seconds),
                size(r.file_size_bytes),
                r.file_url.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.table(
        &[
            "egress", "room", "records", "status", "started", "duration", "size", "url",
        ],
        rows,
    );
}

fn print_details(out: &mut Output<'_>, details: &roomtape_shared::library::Details) {
    let r = &details.recording;
    let fields = [
        ("egress", r.egress_id.clone()),
        ("room", r.room_name.clone()),
        ("records", recorded(r)),
        ("status", r.status.to_string()),
        ("started", time(r.started_at)),
        ("ended", time(r.ended_at)),
        ("duration", duration(r.duration_seconds)),
        ("size", size(r.file_size_bytes)),
        ("layout", r.layout.clone().unwrap_or_default()),
        ("storage", storage(r)),
        ("url", r.file_url.clone().unwrap_or_default()),
        ("thumbnail", r.thumbnail_url.clone().unwrap_or_default()),
        ("stream id", r.stream_id.clone().unwrap_or_default()),
        ("user id", r.user_id.clone().unwrap_or_default()),
        ("error", r.error.clone().unwrap_or_default()),
    ];
    for (name, value) in fields.iter().filter(|(_, v)| !v.is_empty()) {
        out.line(format!("{name:<10} {value}"));
    }
    out.line("");
    let assets = details
        .assets
        .iter()
        .map(|a| {
            vec![
                a.storage_key.clone(),
                size(Some(a.file_size_bytes)),
                duration(a.duration_seconds),
                a.content_type.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.table(&["file", "size", "duration", "type"], assets);
    out.line("");
    let events = details
        .events
        .iter()
        .map(|e| {
            vec![
                time(Some(e.processed_at)),
                e.event.clone(),
                e.egress_status.clone().unwrap_or_default(),
                e.event_id.clone(),
            ]
        })
        .collect();
    out.table(&["applied", "event", "egress status", "event id"], events);
    if let Some(pruned) = &details.events_pruned_at {
        out.line(format!(
            "events applied before {pruned} were pruned (WEBHOOK_EVENTS_RETENTION)"
        ));
    }
}

/// What it records: its kind, and the participant or tracks (`participant alice`).
fn recorded(r: &Recording) -> String {
    let subject = r.subject();
    let names = subject.identity.iter().cloned().chain(subject.track_ids());
    std::iter::once(subject.kind.to_string())
        .chain(names)
        .collect::<Vec<_>>()
        .join(" ")
}

fn storage(r: &Recording) -> String {
    match (&r.storage_provider, &r.storage_bucket, &r.storage_key) {
        (Some(provider), Some(bucket), Some(key)) => format!("{provider} s3://{bucket}/{key}"),
        (Some(provider), None, Some(key)) => format!("{provider} {key}"),
        _ => String::new(),
    }
}

fn time(at: Option<DateTime<Utc>>) -> String {
    at.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn duration(seconds: Option<f64>) -> String {
    let Some(seconds) = seconds else {
        return String::new();
    };
    let total = seconds.round() as u64;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

pub(crate) fn size(bytes: Option<i64>) -> String {
    let Some(bytes) = bytes else {
        return String::new();
    };
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// An RFC 3339 time, or an age (`7d`, `12h`) before now.
fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let age = humantime::parse_duration(text).map_err(|_| {
        format!("{text:?} is neither an RFC 3339 time nor an age such as 7d or 12h")
    })?;
    let age = chrono::Duration::from_std(age).map_err(|e| e.to_string())?;
    Ok(Utc::now() - age)
}

fn parse_expiry(text: &str) -> Result<Duration, String> {
    let expires = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if expires > MAX_PRESIGN {
        return Err("a presigned URL may live at most 7d".to_owned());
    }
    Ok(expires)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_durations_and_ages_read_as_people_write_them() {
        assert_eq!(size(Some(512)), "512 B");
        assert_eq!(size(Some(283_115_520)), "270.0 MiB");
        assert_eq!(duration(Some(1800.4)), "30:00");
        assert_eq!(duration(Some(3723.0)), "1:02:03");
        let week_ago = parse_since("7d").expect("age");
        let delta = Utc::now() - week_ago;
        assert!((delta.num_seconds() - 7 * 86_400).abs() < 5);
        assert_eq!(
            parse_since("2026-11-01T00:00:00Z")
                .expect("time")
                .to_rfc3339(),
            "2026-11-01T00:00:00+00:00"
        );
        assert!(parse_since("last tuesday").is_err());
        assert!(parse_expiry("8d").is_err());
        assert_eq!(parse_expiry("7d"), Ok(MAX_PRESIGN));
    }

    #[test]
    fn a_status_filter_names_one_of_the_seven_or_is_refused_before_anything_runs() {
        use clap::Parser;
        let list = |status: &str| {
            crate::args::Cli::try_parse_from(["roomtape", "recordings", "list", "--status", status])
        };
        assert!(list("ready").is_ok());
        let error = list("done").expect_err("not a status").to_string();
        assert!(
            error.contains(
                "\"done\" is not one of starting, active, stopping, stopped, ready, failed, aborted"
            ),
            "{error}"
        );
    }
}
