//! The processor's settings: defaults, required variables named, malformed values named, and
//! secrets that never print.

use roomtape_shared::config::{ConfigError, Env};

use super::ProcessorSettings;

const PROCESSOR_BASE: [(&str, &str); 9] = [
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
    ("S3_SECRET_ACCESS_KEY", "s3-secret-value"),
];

fn env(pairs: &[(&str, &str)]) -> Env {
    Env::from_pairs(pairs.iter().copied())
}

/// A complete environment; `extra` adds or overrides (an empty value unsets).
fn processor_env(extra: &[(&str, &str)]) -> Env {
    let mut pairs: Vec<(&str, &str)> = PROCESSOR_BASE.to_vec();
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
    assert_eq!(settings.threads, 1, "one runtime thread");
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
        ("PROCESSOR_THREADS", "0"),
        ("PROCESSOR_THREADS", "two"),
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
    pairs.push(("LIVEKIT_HOST", "https://your-instance.livekit.cloud"));
    let settings = ProcessorSettings::from_env(&env(&pairs)).expect("LIVEKIT_HOST honoured");
    assert_eq!(
        settings.livekit.url.host_str(),
        Some("your-instance.livekit.cloud")
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

#[test]
fn secrets_never_appear_in_debug_output() {
    let processor =
        ProcessorSettings::from_env(&processor_env(&[("LIVEKIT_KEYS", "k2: rotated-secret")]))
            .expect("valid");
    let printed = format!("{processor:?} {:?}", processor_env(&[]));
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
}

#[test]
fn the_pool_follows_the_concurrency_unless_set() {
    let settings = ProcessorSettings::from_env(&processor_env(&[("PROCESSOR_CONCURRENCY", "4")]))
        .expect("valid");
    assert_eq!(settings.database.pool_size, 2 * 4 + 4);
    let settings = ProcessorSettings::from_env(&processor_env(&[
        ("PROCESSOR_CONCURRENCY", "4"),
        ("DATABASE_POOL_SIZE", "7"),
    ]))
    .expect("valid");
    assert_eq!(settings.database.pool_size, 7);
    let error = ProcessorSettings::from_env(&processor_env(&[("PROCESSOR_CONCURRENCY", "0")]))
        .expect_err("zero");
    assert_eq!(
        error.to_string(),
        "configuration: PROCESSOR_CONCURRENCY is invalid: must be at least 1"
    );
    // A pool of no connections would leave every query waiting forever.
    let error = ProcessorSettings::from_env(&processor_env(&[("DATABASE_POOL_SIZE", "0")]))
        .expect_err("zero");
    assert_eq!(
        error.to_string(),
        "configuration: DATABASE_POOL_SIZE is invalid: must be at least 1"
    );
}
