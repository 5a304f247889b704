//! A fresh bucket per test on the local S3 server, emptied and deleted afterwards.

use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use roomtape_shared::config::StorageProfile;
use roomtape_shared::storage;

pub struct TestBucket {
    pub profile: StorageProfile,
    pub client: aws_sdk_s3::Client,
}

impl TestBucket {
    pub async fn create(profile: StorageProfile) -> Self {
        let client = storage::client(&profile);
        client
            .create_bucket()
            .bucket(&profile.bucket)
            .send()
            .await
            .expect("create bucket: is s3s-fs up? run deploy/local/services.sh");
        Self { profile, client }
    }

    pub async fn put(&self, key: &str, body: &[u8], content_type: &str) {
        self.client
            .put_object()
            .bucket(&self.profile.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .expect("put object");
    }
}

impl TestBucket {
    /// What a HEAD of `key` answers; `None` when it fails (the object is not there).
    pub async fn head(&self, key: &str) -> Option<HeadObjectOutput> {
        let head = self
            .client
            .head_object()
            .bucket(&self.profile.bucket)
            .key(key);
        head.send().await.ok()
    }

    /// The bytes of `key`; `None` when it is not there.
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let get = self
            .client
            .get_object()
            .bucket(&self.profile.bucket)
            .key(key);
        let object = get.send().await.ok()?;
        Some(
            object
                .body
                .collect()
                .await
                .expect("body")
                .into_bytes()
                .to_vec(),
        )
    }

    /// Every key under `prefix` (one page: tests keep few objects).
    pub async fn keys_under(&self, prefix: &str) -> Vec<String> {
        let list = self.client.list_objects_v2().bucket(&self.profile.bucket);
        let listing = list.prefix(prefix).send().await.expect("list");
        let keys = listing.contents().iter().filter_map(|o| o.key());
        keys.map(str::to_owned).collect()
    }
}

impl Drop for TestBucket {
    fn drop(&mut self) {
        let profile = self.profile.clone();
        crate::cleanup_blocking(async move {
            // A client of the cleanup runtime's own: pooled connections belong to a runtime.
            let (client, bucket) = (storage::client(&profile), profile.bucket);
            if let Ok(listing) = client.list_objects_v2().bucket(&bucket).send().await {
                for object in listing.contents() {
                    if let Some(key) = object.key() {
                        let _ = client.delete_object().bucket(&bucket).key(key).send().await;
                    }
                }
            }
            let _ = client.delete_bucket().bucket(&bucket).send().await;
        });
    }
}
