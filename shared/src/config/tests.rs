//! Configuration rules: required variables, aliases of the existing deployments, profiles,
//! and secrets that never print.

use std::time::Duration;

use super::*;

fn env(pairs: &[(&str, &str)]) -> Env {
    Env::from_pairs(pairs.iter().copied())
}

const PROCESSOR_BASE: [(&str, &str); 8] = [
    ("LIVEKIT_URL", "wss://demo.livekit.cloud"),
    ("LIVEKIT_API_KEY", "APIkey"),
    ("LIVEKIT_API_SECRET", "super-secret-value"),
    ("AMQP_URL", "amqp://guest:hunter2@127.0.0.1:5672/%2f"),
    (
        "DATABASE_URL",
        "postgres://roomtape:pg-password@127.0.0.1:5432/roomtape",
    ),
    ("S3_ENDPOINT", "http://127.0.0.1:8014"),
    ("S3_BUCKET", "recordings"),
    ("S3_ACCESS_KEY_ID", "AKIA"),
];

fn processor_env(extra: &[(&str, &str)]) -> Env {
    let mut pairs: Vec<(&str, &str)> = PROCESSOR_BASE.to_vec();
    pairs.push(("S3_SECRET_ACCESS_KEY", "s3-secret-value"));
    pairs.extend_from_slice(extra);
    env(&pairs)
}

#[test]
fn a_complete_processor_environment_loads_with_defaults() {
    let settings = ProcessorSettings::from_env(&processor_env(&[])).expect("valid");
    assert_eq!(settings.bind.to_string(), "0.0.0.0:9090");
    assert_eq!(settings.livekit.url.as_str(), "https://demo.livekit.cloud/");
    assert_eq!(settings.amqp.retry_delays.len(), 5);
    let default = settings.storage.default_profile();
    assert_eq!(
        (default.name.as_str(), default.provider.as_str()),
        ("default", "s3")
    );
    assert!(default.force_path_style);
    assert_eq!(
        settings.database.pool_size,
        2 * 16 + 4,
        "room for both consumers"
    );
}

#[test]
fn every_required_variable_is_named_when_missing() {
    let required = [
        "LIVEKIT_URL",
        "LIVEKIT_API_KEY",
        "LIVEKIT_API_SECRET",
        "AMQP_URL",
        "DATABASE_URL",
        "S3_ENDPOINT",
        "S3_BUCKET",
        "S3_ACCESS_KEY_ID",
        "S3_SECRET_ACCESS_KEY",
    ];
    for var in required {
        let error = ProcessorSettings::from_env(&processor_env(&[(var, "")])).expect_err(var);
        assert_eq!(error, ConfigError::Missing(var.to_owned()));
        assert_eq!(
            error.to_string(),
            format!("configuration: {var} is required but not set")
        );
    }
}

#[test]
fn malformed_values_are_named() {
    for (var, value) in [
        ("AMQP_URL", "http://nope"),
        ("AMQP_URL", "amqp://guest:guest@127.0.0.1:notaport/%2f"),
        ("DATABASE_URL", "postgres://u@h:notaport/db"),
        ("LIVEKIT_URL", "ftp://x"),
        ("PROCESSOR_BIND", "nowhere"),
        ("PROCESSOR_PREFETCH", "-1"),
        ("RETRY_DELAYS", "1s,soon"),
        ("S3_FORCE_PATH_STYLE", "maybe"),
        ("LOG_FORMAT", "xml"),
        ("DEFAULT_STORAGE", "nowhere"),
    ] {
        let error = ProcessorSettings::from_env(&processor_env(&[(var, value)])).expect_err(var);
        assert!(
            matches!(&error, ConfigError::Invalid { var: v, .. } if v == var),
            "{var}: {error}"
        );
        assert_eq!(error.to_string().lines().count(), 1);
    }
}

#[test]
fn livekit_host_is_an_alias_of_livekit_url() {
    let mut pairs: Vec<(&str, &str)> = PROCESSOR_BASE
        .iter()
        .copied()
        .filter(|(k, _)| *k != "LIVEKIT_URL")
        .collect();
    pairs.push(("S3_SECRET_ACCESS_KEY", "x"));
    pairs.push(("LIVEKIT_HOST", "https://your-instance.livekit.cloud"));
    let settings = ProcessorSettings::from_env(&env(&pairs)).expect("LIVEKIT_HOST honoured");
    assert_eq!(
        settings.livekit.url.host_str(),
        Some("your-instance.livekit.cloud")
    );
}

#[test]
fn livekit_keys_holds_several_pairs_and_the_single_pair_signs() {
    let keys = ApiKeys::from_env(&env(&[
        ("LIVEKIT_KEYS", "old: old-secret, new: new-secret"),
        ("LIVEKIT_API_KEY", "primary"),
        ("LIVEKIT_API_SECRET", "primary-secret"),
    ]))
    .expect("keys");
    assert_eq!(keys.keys().collect::<Vec<_>>(), ["primary", "old", "new"]);
    assert!(keys.secret_for("old").is_some() && keys.secret_for("missing").is_none());
    assert_eq!(keys.signing_pair().map(|(k, _)| k), Some("primary"));

    let only_keys =
        ApiKeys::from_env(&env(&[("LIVEKIT_KEYS", "a: b")])).expect("LIVEKIT_KEYS alone");
    assert_eq!(only_keys.signing_pair().map(|(k, _)| k), Some("a"));
    for bad in ["no-colon", "k:", ": s"] {
        let error = ApiKeys::from_env(&env(&[("LIVEKIT_KEYS", bad)])).expect_err(bad);
        assert!(matches!(error, ConfigError::Invalid { ref var, .. } if var == "LIVEKIT_KEYS"));
    }
}

#[test]
fn the_django_r2_variables_define_the_r2_profile() {
    let storage = StorageProfiles::from_env(&env(&[
        ("CLOUDFLARE_R2_ACCESS_KEY_ID", "r2-key"),
        ("CLOUDFLARE_R2_SECRET_ACCESS_KEY", "r2-secret"),
        ("CLOUDFLARE_R2_STORAGE_BUCKET_NAME", "meet-recordings"),
        (
            "CLOUDFLARE_R2_ENDPOINT_URL",
            "https://0123456789abcdef.r2.cloudflarestorage.com",
        ),
        ("CLOUDFLARE_R2_CUSTOM_DOMAIN", "media.example.com"),
    ]))
    .expect("R2 profile");
    let r2 = storage.default_profile();
    assert_eq!(
        (r2.name.as_str(), r2.provider.as_str(), r2.region.as_str()),
        ("r2", "r2", "auto")
    );
    assert_eq!(r2.bucket, "meet-recordings");
    assert!(r2.force_path_style);
    assert_eq!(
        r2.public_base_url.as_ref().map(url::Url::as_str),
        Some("https://media.example.com/")
    );
}

#[test]
fn the_supabase_storj_variables_define_the_storj_profile() {
    let storage = StorageProfiles::from_env(&env(&[
        ("STORJ_ACCESS_KEY_ID", "storj-key"),
        ("STORJ_SECRET_ACCESS_KEY", "storj-secret"),
        ("STORJ_BUCKET", "livepeer-videos"),
        ("STORJ_ENDPOINT", "https://gateway.storjshare.io"),
    ]))
    .expect("Storj profile");
    let storj = storage.get("storj").expect("named storj");
    assert_eq!(storj.provider, "storj");
    assert_eq!(storj.public_base_url, None);
}

#[test]
fn an_incomplete_alias_profile_names_the_missing_variable() {
    let error = StorageProfiles::from_env(&env(&[
        ("STORJ_BUCKET", "b"),
        ("STORJ_ENDPOINT", "gateway.storjshare.io"),
    ]))
    .expect_err("incomplete");
    assert_eq!(error, ConfigError::Missing("STORJ_ACCESS_KEY_ID".into()));
}

#[test]
fn several_profiles_need_a_default_unless_one_is_called_default() {
    let r2_and_named = [
        ("CLOUDFLARE_R2_ACCESS_KEY_ID", "k"),
        ("CLOUDFLARE_R2_SECRET_ACCESS_KEY", "s"),
        ("CLOUDFLARE_R2_STORAGE_BUCKET_NAME", "b"),
        (
            "CLOUDFLARE_R2_ENDPOINT_URL",
            "https://a.r2.cloudflarestorage.com",
        ),
        (
            "STORAGE_ARCHIVE_ENDPOINT",
            "https://s3.eu-central-1.amazonaws.com",
        ),
        ("STORAGE_ARCHIVE_BUCKET", "archive"),
        ("STORAGE_ARCHIVE_ACCESS_KEY_ID", "k2"),
        ("STORAGE_ARCHIVE_SECRET_ACCESS_KEY", "s2"),
        ("STORAGE_ARCHIVE_REGION", "eu-central-1"),
        ("STORAGE_ARCHIVE_FORCE_PATH_STYLE", "false"),
    ];
    let error = StorageProfiles::from_env(&env(&r2_and_named)).expect_err("ambiguous default");
    assert_eq!(error, ConfigError::Missing("DEFAULT_STORAGE".into()));

    let mut chosen = r2_and_named.to_vec();
    chosen.push(("DEFAULT_STORAGE", "archive"));
    let storage = StorageProfiles::from_env(&env(&chosen)).expect("explicit default");
    let archive = storage.default_profile();
    assert_eq!(
        (archive.name.as_str(), archive.region.as_str()),
        ("archive", "eu-central-1")
    );
    assert!(!archive.force_path_style);
    assert_eq!(storage.iter().count(), 2);

    let with_default = processor_env(&r2_and_named);
    let settings = ProcessorSettings::from_env(&with_default).expect("S3_* is called default");
    assert_eq!(settings.storage.default_profile().name, "default");
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let processor =
        ProcessorSettings::from_env(&processor_env(&[("LIVEKIT_KEYS", "k2: rotated-secret")]))
            .expect("valid");
    let ingestor = IngestorSettings::from_env(&processor_env(&[])).expect("valid");
    let printed = format!("{processor:?} {ingestor:?} {:?}", processor_env(&[]));
    for secret in [
        "super-secret-value",
        "rotated-secret",
        "hunter2",
        "pg-password",
        "s3-secret-value",
    ] {
        assert!(
            !printed.contains(secret),
            "{secret} leaked into Debug output"
        );
    }
    assert!(
        printed.contains("recordings"),
        "non-secret values are still shown"
    );
}

#[test]
fn with_nothing_set_every_missing_setting_is_named_in_one_line() {
    let error = ProcessorSettings::from_env(&env(&[("PROCESSOR_PREFETCH", "many")]))
        .expect_err("nothing set");
    assert_eq!(
        error.to_string(),
        "configuration: AMQP_URL, DATABASE_URL, LIVEKIT_URL, LIVEKIT_API_KEY and S3_ENDPOINT are \
         required but not set; PROCESSOR_PREFETCH is invalid: invalid digit found in string"
    );
    let error = IngestorSettings::from_env(&env(&[])).expect_err("nothing set");
    assert_eq!(
        error.to_string(),
        "configuration: LIVEKIT_API_KEY and AMQP_URL are required but not set"
    );
}

#[test]
fn the_ingestors_pool_and_limits_have_defaults_and_bad_values_are_named_together() {
    let defaults = IngestorSettings::from_env(&processor_env(&[])).expect("valid");
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(defaults.workers, cpus, "one HTTP worker per CPU");
    assert_eq!(defaults.publish_channels, cpus, "one channel per worker");
    assert_eq!(defaults.max_in_flight, 1024);
    assert_eq!(defaults.body_timeout, Duration::from_secs(10));

    let set = IngestorSettings::from_env(&processor_env(&[
        ("INGESTOR_PUBLISH_CHANNELS", "8"),
        ("INGESTOR_WORKERS", "2"),
        ("INGESTOR_MAX_IN_FLIGHT", "16"),
        ("INGESTOR_BODY_TIMEOUT", "250ms"),
    ]))
    .expect("valid");
    assert_eq!(
        (set.publish_channels, set.workers, set.max_in_flight),
        (8, 2, 16)
    );
    let workers_only =
        IngestorSettings::from_env(&processor_env(&[("INGESTOR_WORKERS", "3")])).expect("valid");
    assert_eq!(
        (workers_only.workers, workers_only.publish_channels),
        (3, 3),
        "channels follow the workers"
    );
    assert_eq!(set.body_timeout, Duration::from_millis(250));

    let error = IngestorSettings::from_env(&processor_env(&[
        ("INGESTOR_PUBLISH_CHANNELS", "2"),
        ("INGESTOR_WORKERS", "3"),
        ("INGESTOR_MAX_IN_FLIGHT", "0"),
        ("INGESTOR_BODY_TIMEOUT", "0s"),
    ]))
    .expect_err("invalid");
    assert_eq!(
        error.to_string(),
        "configuration: INGESTOR_PUBLISH_CHANNELS is invalid: 2 channels for 3 workers would \
         leave a worker without its own (raise it or lower INGESTOR_WORKERS); \
         INGESTOR_MAX_IN_FLIGHT is invalid: must be at least 1; \
         INGESTOR_BODY_TIMEOUT is invalid: must be longer than 0s"
    );
}

#[test]
fn the_filepath_template_keeps_its_prefix_and_refuses_keys_that_escape_it() {
    let settings = ProcessorSettings::from_env(&processor_env(&[])).expect("valid");
    assert_eq!(settings.filepath_template.prefix(), "recordings/");
    let custom = processor_env(&[("COMMAND_FILEPATH_TEMPLATE", "tenant-a/{room_name}/{time}")]);
    let settings = ProcessorSettings::from_env(&custom).expect("valid");
    assert_eq!(settings.filepath_template.prefix(), "tenant-a/");
    for bad in ["/abs/{time}", "recordings/../{time}", "./{time}"] {
        let error =
            ProcessorSettings::from_env(&processor_env(&[("COMMAND_FILEPATH_TEMPLATE", bad)]))
                .expect_err(bad)
                .to_string();
        assert!(
            error.contains("COMMAND_FILEPATH_TEMPLATE"),
            "{bad}: {error}"
        );
    }
}
