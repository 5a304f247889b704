//! Configuration rules of the shared sections: LiveKit keys, the existing deployments' storage
//! variables, profiles, and the settings builder.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Env {
    Env::from_pairs(pairs.iter().copied())
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

    let mut with_s3 = r2_and_named.to_vec();
    with_s3.extend([
        ("S3_ENDPOINT", "http://127.0.0.1:8014"),
        ("S3_BUCKET", "recordings"),
        ("S3_ACCESS_KEY_ID", "AKIA"),
        ("S3_SECRET_ACCESS_KEY", "s3-secret-value"),
    ]);
    let storage = StorageProfiles::from_env(&env(&with_s3)).expect("S3_* is called default");
    assert_eq!(storage.default_profile().name, "default");
}

#[test]
fn the_builder_names_every_problem_once_in_one_line_and_reads_may_use_fields_above() {
    #[derive(Debug)]
    struct Pair {
        low: usize,
        high: usize,
    }
    let read = |pairs: &[(&str, &str)]| {
        let env = env(pairs);
        crate::settings!(Pair {
            low: env.count_or("LOW", 1),
            high: env
                .count_or("HIGH", low.unwrap_or(1))
                .and_then(|high| match low {
                    Some(low) if high < low => Err(ConfigError::invalid("HIGH", "below LOW")),
                    _ => Ok(high),
                }),
        })
    };
    let defaults = read(&[("LOW", "3")]).expect("HIGH follows LOW");
    assert_eq!((defaults.low, defaults.high), (3, 3));
    assert_eq!(
        read(&[("LOW", "3"), ("HIGH", "2")])
            .expect_err("below")
            .to_string(),
        "configuration: HIGH is invalid: below LOW"
    );
    assert_eq!(
        read(&[("LOW", "0"), ("HIGH", "x")])
            .expect_err("both")
            .to_string(),
        "configuration: LOW is invalid: must be at least 1; HIGH is invalid: invalid digit found \
         in string"
    );
    let empty_several = || -> Result<usize, ConfigError> { Err(ConfigError::Several(Vec::new())) };
    let mut problems = Problems::default();
    assert_eq!(problems.check(empty_several()), None);
    assert!(
        problems.finish().is_err(),
        "a read that failed, even without a reason, is never taken as valid"
    );
}

#[test]
fn database_schema_defaults_to_public_and_refuses_names_it_would_have_to_quote() {
    let url = ("DATABASE_URL", "postgres://roomtape@127.0.0.1/roomtape");
    let settings = DatabaseSettings::from_env(&env(&[url])).expect("default");
    assert_eq!(settings.schema.as_str(), "public");
    let settings =
        DatabaseSettings::from_env(&env(&[url, ("DATABASE_SCHEMA", "roomtape")])).expect("named");
    assert_eq!(settings.schema.as_str(), "roomtape");
    for bad in [
        "Roomtape",
        "1st",
        "room tape",
        "x\"; DROP",
        "pg_catalog",
        &"a".repeat(64),
    ] {
        let error = DatabaseSettings::from_env(&env(&[url, ("DATABASE_SCHEMA", bad)]))
            .expect_err(bad)
            .to_string();
        assert!(error.contains("DATABASE_SCHEMA"), "{bad}: {error}");
    }
}
