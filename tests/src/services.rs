//! Where the local services are (as `deploy/local/services.sh` exports them), and the
//! per-test environment built on them.

use std::collections::HashMap;

use roomtape_shared::config::{Env, StorageProfile, StorageProfiles};

use crate::broker::TestVhost;
use crate::database::TestDatabase;
use crate::s3::TestBucket;

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The LiveKit key pair test webhooks are signed with.
pub const API_KEY: &str = "APIroomtapeTest";
pub const API_SECRET: &str = "roomtape-test-secret-0123456789abcdefghij";

/// One test's own database, vhost and bucket, and the variables that point the apps at them.
pub struct TestEnv {
    pub database: TestDatabase,
    pub vhost: TestVhost,
    pub bucket: TestBucket,
    vars: HashMap<String, String>,
}

impl TestEnv {
    pub async fn new() -> Self {
        crate::init_test_logging();
        let database = TestDatabase::create(&setting(
            "ROOMTAPE_TEST_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        ))
        .await;
        let vhost = TestVhost::create(
            &setting(
                "ROOMTAPE_TEST_AMQP_URL",
                "amqp://guest:guest@127.0.0.1:5672",
            ),
            &setting(
                "ROOMTAPE_TEST_RABBITMQ_API",
                "http://guest:guest@127.0.0.1:15672",
            ),
        )
        .await;
        let bucket_name = format!("roomtape-test-{}", uuid::Uuid::new_v4().simple());
        let vars: HashMap<String, String> = [
            ("LIVEKIT_URL", "http://127.0.0.1:7880".to_owned()),
            ("LIVEKIT_API_KEY", API_KEY.to_owned()),
            ("LIVEKIT_API_SECRET", API_SECRET.to_owned()),
            ("AMQP_URL", vhost.amqp_url.clone()),
            ("DATABASE_URL", database.url()),
            (
                "S3_ENDPOINT",
                setting("ROOMTAPE_TEST_S3_ENDPOINT", "http://127.0.0.1:8014"),
            ),
            (
                "S3_ACCESS_KEY_ID",
                setting("ROOMTAPE_TEST_S3_ACCESS_KEY", "roomtape-local"),
            ),
            (
                "S3_SECRET_ACCESS_KEY",
                setting("ROOMTAPE_TEST_S3_SECRET_KEY", "roomtape-local-secret"),
            ),
            ("S3_BUCKET", bucket_name),
            (
                "S3_PUBLIC_BASE_URL",
                "https://media.example.com/rec".to_owned(),
            ),
            ("INGESTOR_BIND", "127.0.0.1:0".to_owned()),
            ("PROCESSOR_BIND", "127.0.0.1:0".to_owned()),
            ("RETRY_DELAYS", "100ms,200ms".to_owned()),
            // Most tests upload placeholder bytes where the recording goes; the probe's own
            // tests (it/probe.rs) upload real media and turn it on.
            ("RECORDING_PROBE", "off".to_owned()),
            // No image outputs in their starts, and no frames of placeholder bytes; the
            // thumbnails' own tests (it/thumbnails.rs, the console's HLS test) turn them on.
            ("RECORDING_THUMBNAILS", "off".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let storage = StorageProfiles::from_env(&Env::from_pairs(vars.clone()))
            .expect("test storage profile");
        let bucket = TestBucket::create(storage.default_profile().clone()).await;
        Self {
            database,
            vhost,
            bucket,
            vars,
        }
    }

    /// The environment the apps are configured from; `overrides` replace or add variables.
    pub fn env_with(&self, overrides: &[(&str, &str)]) -> Env {
        let mut vars = self.vars.clone();
        vars.extend(
            overrides
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Env::from_pairs(vars)
    }

    pub fn env(&self) -> Env {
        self.env_with(&[])
    }

    /// [`Self::env_with`] plus storage profile `name` (`STORAGE_<NAME>_*`) for `profile`, with
    /// this test's S3 keys, as the default (`DEFAULT_STORAGE`) stays `default`.
    pub fn env_with_profile(
        &self,
        name: &str,
        profile: &StorageProfile,
        overrides: &[(&str, &str)],
    ) -> Env {
        let prefix = format!("STORAGE_{}", name.to_uppercase());
        let secret = self.vars["S3_SECRET_ACCESS_KEY"].clone();
        let named = [
            ("ENDPOINT", profile.endpoint.to_string()),
            ("BUCKET", profile.bucket.clone()),
            ("REGION", profile.region.clone()),
            ("ACCESS_KEY_ID", profile.access_key_id.clone()),
            ("SECRET_ACCESS_KEY", secret),
            ("FORCE_PATH_STYLE", "true".to_owned()),
        ]
        .map(|(setting, value)| (format!("{prefix}_{setting}"), value));
        let mut vars: Vec<(&str, &str)> = named
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        vars.push(("DEFAULT_STORAGE", "default"));
        vars.extend_from_slice(overrides);
        self.env_with(&vars)
    }
}
