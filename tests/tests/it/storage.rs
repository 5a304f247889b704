//! The shared object store against the local S3 server: HEAD, presigned GET, DELETE, and a
//! wrong secret failing as unavailable rather than missing.

use std::time::Duration;

use roomtape_shared::config::StorageProfiles;
use roomtape_shared::storage::{ObjectStore, StorageError};
use roomtape_tests::TestEnv;

#[tokio::test]
async fn head_presigned_get_and_delete_of_an_object() {
    let test = TestEnv::new().await;
    let profile = test.bucket.profile.clone();
    let store = ObjectStore::new(&StorageProfiles::from_env(&test.env()).expect("profiles"));
    test.bucket
        .put("rec/a b.mp4", b"0123456789", "video/mp4")
        .await;

    let (head, _) = store.head(&profile, "rec/a b.mp4").await;
    let object = head.expect("head");
    assert_eq!(object.size_bytes, 10);
    assert_eq!(object.content_type.as_deref(), Some("video/mp4"));

    let url = store
        .presigned_get(&profile, "rec/a b.mp4", Duration::from_secs(600))
        .await
        .expect("presign");
    let fetched = reqwest::get(url.as_str()).await.expect("GET");
    assert_eq!(fetched.status(), 200, "{url}");
    assert_eq!(fetched.bytes().await.expect("body").as_ref(), b"0123456789");

    store.delete(&profile, "rec/a b.mp4").await.expect("delete");
    let (gone, _) = store.head(&profile, "rec/a b.mp4").await;
    assert!(
        matches!(gone, Err(StorageError::NotFound { .. })),
        "{gone:?}"
    );
    store
        .delete(&profile, "rec/a b.mp4")
        .await
        .expect("deleting what is gone is success");
}

#[tokio::test]
async fn a_wrong_secret_is_unavailable_not_missing() {
    let test = TestEnv::new().await;
    test.bucket.put("x.mp4", b"1", "video/mp4").await;
    let wrong = test.env_with(&[("S3_SECRET_ACCESS_KEY", "not-the-secret")]);
    let profiles = StorageProfiles::from_env(&wrong).expect("profiles");
    let store = ObjectStore::new(&profiles);
    let profile = profiles.default_profile();
    let (head, _) = store.head(profile, "x.mp4").await;
    match head {
        Err(StorageError::Unavailable { reason, .. }) => assert_eq!(reason, "HTTP 403"),
        other => panic!("expected unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_bucket_that_does_not_exist_is_not_a_missing_object() {
    let test = TestEnv::new().await;
    let wrong = test.env_with(&[("S3_BUCKET", "roomtape-no-such-bucket")]);
    let profiles = StorageProfiles::from_env(&wrong).expect("profiles");
    let store = ObjectStore::new(&profiles);
    let (head, _) = store.head(profiles.default_profile(), "x.mp4").await;
    match head {
        Err(error @ StorageError::NoSuchBucket { .. }) => assert!(
            error
                .to_string()
                .starts_with("bucket \"roomtape-no-such-bucket\" does not exist at http"),
            "{error}"
        ),
        other => panic!("expected no such bucket, got {other:?}"),
    }
}
