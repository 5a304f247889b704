//! Public URLs, origins and presigned links, built without a server.

use super::*;
use crate::config::Env;

fn profiles(pairs: &[(&str, &str)]) -> StorageProfiles {
    StorageProfiles::from_env(&Env::from_pairs(pairs.iter().copied())).expect("profiles")
}

#[test]
fn public_urls_use_the_custom_domain_and_encode_each_segment() {
    let profiles = profiles(&[
        ("CLOUDFLARE_R2_ACCESS_KEY_ID", "k"),
        ("CLOUDFLARE_R2_SECRET_ACCESS_KEY", "s"),
        ("CLOUDFLARE_R2_STORAGE_BUCKET_NAME", "meet-recordings"),
        (
            "CLOUDFLARE_R2_ENDPOINT_URL",
            "https://0123456789abcdef.r2.cloudflarestorage.com",
        ),
        ("CLOUDFLARE_R2_CUSTOM_DOMAIN", "media.example.com"),
    ]);
    assert_eq!(
        public_url(profiles.default_profile(), "recordings/standup/2023 11.mp4")
            .expect("a plain key")
            .as_str(),
        "https://media.example.com/recordings/standup/2023%2011.mp4"
    );
}

#[test]
fn without_a_public_base_urls_are_path_style_on_the_endpoint() {
    let profiles = profiles(&[
        ("STORJ_ACCESS_KEY_ID", "storj-key"),
        ("STORJ_SECRET_ACCESS_KEY", "storj-secret"),
        ("STORJ_BUCKET", "livepeer-videos"),
        ("STORJ_ENDPOINT", "https://gateway.storjshare.io"),
    ]);
    let storj = profiles.get("storj").expect("named storj");
    assert_eq!(
        public_url(storj, "livekit-recordings/u/s_1.mp4")
            .expect("a plain key")
            .as_str(),
        "https://gateway.storjshare.io/livepeer-videos/livekit-recordings/u/s_1.mp4"
    );
}

#[test]
fn keys_a_url_would_resolve_elsewhere_get_no_public_url() {
    let profiles = profiles(&[
        ("S3_ENDPOINT", "https://s3.example.com"),
        ("S3_BUCKET", "b"),
        ("S3_ACCESS_KEY_ID", "k"),
        ("S3_SECRET_ACCESS_KEY", "s"),
    ]);
    let profile = profiles.default_profile();
    for key in ["recordings/../x.mp4", "recordings/./x.mp4", "/x.mp4", ".."] {
        assert_eq!(public_url(profile, key), None, "{key}");
    }
    assert!(public_url(profile, "recordings/..x/x..mp4").is_some());
}

#[test]
fn a_browser_reads_a_bucket_from_its_endpoint_its_public_base_and_its_subdomain() {
    let path_style = profiles(&[
        ("S3_ENDPOINT", "http://127.0.0.1:8014"),
        ("S3_BUCKET", "b"),
        ("S3_ACCESS_KEY_ID", "k"),
        ("S3_SECRET_ACCESS_KEY", "s"),
        ("S3_PUBLIC_BASE_URL", "https://media.example.com/rec"),
    ]);
    assert_eq!(
        origins(path_style.default_profile()),
        ["https://media.example.com", "http://127.0.0.1:8014"]
    );
    let virtual_hosted = profiles(&[
        ("S3_ENDPOINT", "https://s3.eu-west-1.amazonaws.com"),
        ("S3_BUCKET", "meet"),
        ("S3_ACCESS_KEY_ID", "k"),
        ("S3_SECRET_ACCESS_KEY", "s"),
        ("S3_FORCE_PATH_STYLE", "false"),
    ]);
    assert_eq!(
        origins(virtual_hosted.default_profile()),
        [
            "https://s3.eu-west-1.amazonaws.com",
            "https://meet.s3.eu-west-1.amazonaws.com"
        ]
    );
}

/// A default profile on a port nothing listens on: for what is computed without a request.
fn unreachable_default() -> StorageProfiles {
    profiles(&[
        ("S3_ENDPOINT", "http://127.0.0.1:9"),
        ("S3_BUCKET", "b"),
        ("S3_ACCESS_KEY_ID", "k"),
        ("S3_SECRET_ACCESS_KEY", "s"),
    ])
}

#[tokio::test]
async fn a_link_signed_as_of_a_time_is_the_same_each_time() {
    let profiles = unreachable_default();
    let store = ObjectStore::new(&profiles);
    let profile = profiles.default_profile();
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let two_hours = Duration::from_secs(7200);
    let link = || store.presigned_get_from(profile, "t.jpeg", at, two_hours);
    let (first, again) = (link().await.expect("signed"), link().await.expect("signed"));
    assert_eq!(first, again);
    let query = first.query().unwrap_or_default();
    assert!(query.contains("X-Amz-Date=20270115T080000Z"), "{query}");
    assert!(query.contains("X-Amz-Expires=7200"), "{query}");
}

#[tokio::test]
async fn presigned_urls_longer_than_seven_days_are_refused() {
    let profiles = unreachable_default();
    let store = ObjectStore::new(&profiles);
    let profile = profiles.default_profile();
    let too_long = MAX_PRESIGN + Duration::from_secs(1);
    assert!(matches!(
        store.presigned_get(profile, "a.mp4", too_long).await,
        Err(StorageError::PresignTooLong(_))
    ));
    let url = store
        .presigned_get(profile, "a b.mp4", Duration::from_secs(3600))
        .await
        .expect("presign");
    assert!(
        url.as_str().starts_with("http://127.0.0.1:9/b/a%20b.mp4?"),
        "{url}"
    );
    assert!(url
        .query()
        .is_some_and(|q| q.contains("X-Amz-Expires=3600")));
}
