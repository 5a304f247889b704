//! `roomtape simulate`: plays one realistic recording into a running deployment, the way LiveKit
//! would. The embedded test video is written to the default storage profile's bucket where an
//! egress would have put it, LiveKit's webhooks for that room and its egress are signed and
//! posted to the ingestor, and the recording's row is watched until the processor has verified
//! the file and marked it `ready`; then the row and a link that plays it are printed.
//!
//! This module reads the command line and the settings and runs the steps: `events` writes the
//! story's webhooks, `deliver` uploads the video and posts them, `watch` waits for the outcome
//! and says what it is.

mod deliver;
mod events;
mod watch;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Url;
use roomtape_shared::auth::WebhookSigner;
use roomtape_shared::config::{
    ingestor_url, ApiKeys, ConfigError, DatabaseSettings, Env, StorageProfiles,
};
use roomtape_shared::db;
use roomtape_shared::db::recordings::Status;
use roomtape_shared::storage::ObjectStore;

use crate::error::{CliError, EXIT_OK, EXIT_REFUSED};
use crate::output::Output;
use deliver::{Webhooks, VIDEO, VIDEO_DURATION, WEBHOOK_PATH};
use events::Story;
use watch::{Stuck, LINK_LIFETIME};

/// How long one request to the ingestor, or reaching RabbitMQ, may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Needs LIVEKIT_API_KEY/LIVEKIT_API_SECRET (the pair the ingestor verifies), ROOMTAPE_INGESTOR_URL (default http://127.0.0.1:8080), the default storage profile (S3_*; the bucket must exist), DATABASE_URL and AMQP_URL.\nExit status: 0 ready; 1 the ingestor refused a webhook, or the recording was not ready within --timeout (the reason, its status and the dead-letter count are printed); 2 bad settings or no such bucket; 3 a service could not be reached."
)]
pub struct SimulateArgs {
    /// The LiveKit room to simulate (default: simulate-<random>).
    #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub room: Option<String>,
}

/// Everything the command needs from the environment, read before anything is done.
struct Setup {
    signer: WebhookSigner,
    webhook_url: Url,
    profiles: StorageProfiles,
    database: DatabaseSettings,
}

impl Setup {
    fn from_env(env: &Env) -> Result<Self, CliError> {
        let signer = WebhookSigner::for_keys(&ApiKeys::from_env(env)?)
            .ok_or_else(|| ConfigError::Missing("LIVEKIT_API_KEY".into()))?;
        let mut base = ingestor_url(env)?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let webhook_url = base
            .join(WEBHOOK_PATH)
            .map_err(|e| ConfigError::invalid("ROOMTAPE_INGESTOR_URL", e))?;
        Ok(Self {
            signer,
            webhook_url,
            profiles: StorageProfiles::from_env(env)?,
            database: DatabaseSettings::from_env(env)?,
        })
    }
}

/// Uploads, posts the webhooks, waits for `ready` (at most `timeout`) and prints the outcome.
pub async fn run(
    args: &SimulateArgs,
    env: &Env,
    timeout: Duration,
    out: &mut Output<'_>,
) -> Result<u8, CliError> {
    let setup = Setup::from_env(env)?;
    let profile = setup.profiles.default_profile();
    let objects = ObjectStore::new(&setup.profiles);
    let pool = db::pool(&setup.database)?;
    // Before anything is written: a database we cannot read would leave us blind.
    watch::read_row(&pool, "").await?;

    let story = Story::new(
        args.room.as_deref(),
        profile,
        VIDEO.len(),
        VIDEO_DURATION,
        unix_now(),
    );
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| CliError::IngestorUnreachable(setup.webhook_url.to_string(), e))?;
    let webhooks = Webhooks {
        http: &http,
        url: &setup.webhook_url,
        signer: &setup.signer,
    };
    deliver::story(&story, &objects, profile, &webhooks).await?;

    let outcome = watch::until_final(&pool, &story.egress_id, timeout).await?;
    match (watch::status_of(outcome.row.as_ref()), &outcome.row) {
        (Some(Status::Ready), Some(row)) => {
            let key = row["storage_key"].as_str().unwrap_or(&story.key).to_owned();
            let link = objects
                .presigned_get(profile, &key, LINK_LIFETIME)
                .await
                .map_err(CliError::Storage)?;
            watch::print_ready(out, &story, row, &link, outcome.waited);
            Ok(EXIT_OK)
        }
        _ => {
            let stuck = Stuck::of(&story, &outcome, env).await;
            if out.json {
                out.json_value(&stuck.json());
                Ok(EXIT_REFUSED)
            } else {
                Err(CliError::NotReady {
                    egress_id: story.egress_id.clone(),
                    room: story.room.clone(),
                    reason: stuck.reason(),
                })
            }
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhook_url_is_under_the_ingestor_url() {
        let url = |base: &str| {
            let env = Env::from_pairs([
                ("ROOMTAPE_INGESTOR_URL", base),
                ("LIVEKIT_API_KEY", "devkey"),
                ("LIVEKIT_API_SECRET", "secret"),
                ("S3_ENDPOINT", "http://127.0.0.1:8014"),
                ("S3_BUCKET", "recordings"),
                ("S3_ACCESS_KEY_ID", "k"),
                ("S3_SECRET_ACCESS_KEY", "s"),
                ("DATABASE_URL", "postgres://roomtape@127.0.0.1/roomtape"),
            ]);
            match Setup::from_env(&env) {
                Ok(setup) => setup.webhook_url.to_string(),
                Err(error) => format!("{error}"),
            }
        };
        assert_eq!(
            url("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/webhooks/livekit"
        );
        assert_eq!(
            url("https://hooks.example.com/roomtape"),
            "https://hooks.example.com/roomtape/webhooks/livekit"
        );
    }
}
