//! The bucket the processor HEADs: created if missing, filled with the recordings a run's
//! `egress_ended` events report (the simulate video), and emptied and deleted afterwards. PUTs and
//! DELETEs go through the load loop, `concurrency` at a time.

use std::sync::Arc;

use anyhow::Context;
use aws_sdk_s3::primitives::ByteStream;
use roomtape_shared::config::{Env, StorageProfile, StorageProfiles};
use roomtape_shared::storage;

use crate::load::{self, Plan, Target};
use crate::mix::{Mix, RECORDING};

/// The processor's default storage profile, read from the same `S3_*` variables it reads.
pub fn profile_from_env() -> anyhow::Result<StorageProfile> {
    let profiles = StorageProfiles::from_env(&Env::from_process())
        .context("storage settings (S3_ENDPOINT, S3_BUCKET, S3_ACCESS_KEY_ID, ...)")?;
    Ok(profiles.default_profile().clone())
}

/// One bucket of one S3 server.
#[derive(Debug, Clone)]
pub struct Bucket {
    client: aws_sdk_s3::Client,
    name: String,
}

impl Bucket {
    pub fn new(profile: &StorageProfile) -> Self {
        Self {
            client: storage::client(profile),
            name: profile.bucket.clone(),
        }
    }

    /// Creates the bucket unless it exists.
    pub async fn ensure(&self) -> anyhow::Result<()> {
        if self
            .client
            .head_bucket()
            .bucket(&self.name)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        self.client
            .create_bucket()
            .bucket(&self.name)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!(aws_sdk_s3::error::DisplayErrorContext(e).to_string()))
            .with_context(|| format!("creating bucket {}", self.name))?;
        Ok(())
    }

    /// PUTs the file of every room whose `egress_ended` is among `first..first + count`;
    /// returns how many.
    pub async fn put_recordings(
        &self,
        mix: &Mix,
        first: u64,
        count: u64,
        concurrency: usize,
    ) -> anyhow::Result<usize> {
        let keys: Vec<String> = mix
            .ended_rooms(first..first + count)
            .into_iter()
            .map(|room| mix.key(room))
            .collect();
        let total = keys.len();
        let target = Arc::new(Objects {
            bucket: self.clone(),
            keys,
            put: true,
        });
        run(target, total, concurrency).await?;
        Ok(total)
    }

    /// Deletes every object, then the bucket; returns how many objects.
    pub async fn remove(&self, concurrency: usize) -> anyhow::Result<usize> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.name)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                anyhow::anyhow!(aws_sdk_s3::error::DisplayErrorContext(e).to_string())
            })?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        let total = keys.len();
        let target = Arc::new(Objects {
            bucket: self.clone(),
            keys,
            put: false,
        });
        run(target, total, concurrency).await?;
        self.client
            .delete_bucket()
            .bucket(&self.name)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!(aws_sdk_s3::error::DisplayErrorContext(e).to_string()))
            .with_context(|| format!("deleting bucket {}", self.name))?;
        Ok(total)
    }
}

async fn run(target: Arc<Objects>, total: usize, concurrency: usize) -> anyhow::Result<()> {
    let plan = Plan {
        concurrency,
        requests: total as u64,
        rate: None,
        first: 0,
    };
    let outcome = load::run(target, plan).await?;
    if let Some((error, count)) = outcome.errors.iter().next() {
        anyhow::bail!(
            "{} of {total} bucket operations failed, e.g. {count} × {error}",
            outcome.failed()
        );
    }
    Ok(())
}

/// PUTs (or DELETEs) key number `n`.
struct Objects {
    bucket: Bucket,
    keys: Vec<String>,
    put: bool,
}

impl Target for Objects {
    async fn send(&self, n: u64) -> anyhow::Result<()> {
        let key = usize::try_from(n)
            .ok()
            .and_then(|i| self.keys.get(i))
            .context("no such key")?;
        let (client, bucket) = (&self.bucket.client, &self.bucket.name);
        let result = if self.put {
            client
                .put_object()
                .bucket(bucket)
                .key(key)
                .content_type("video/mp4")
                .body(ByteStream::from_static(RECORDING))
                .send()
                .await
                .map(drop)
                .map_err(|e| aws_sdk_s3::error::DisplayErrorContext(e).to_string())
        } else {
            client
                .delete_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map(drop)
                .map_err(|e| aws_sdk_s3::error::DisplayErrorContext(e).to_string())
        };
        result.map_err(anyhow::Error::msg)
    }
}
