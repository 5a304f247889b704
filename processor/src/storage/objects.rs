//! Checks a finished recording's object in its bucket. Size, content type and ETag come from
//! the HEAD, never from the event: the event says what LiveKit meant to write.

use std::time::{Duration, Instant};

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::head_object::HeadObjectError;
use roomtape_shared::config::{StorageProfile, StorageProfiles};
use roomtape_shared::storage;

/// What the bucket says about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size_bytes: i64,
    pub content_type: Option<String>,
    pub etag: Option<String>,
}

/// Why an object could not be confirmed. Both are worth retrying: LiveKit reports an egress
/// ended as its upload finishes, and buckets have bad minutes.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("s3://{bucket}/{key} does not exist (yet)")]
    NotFound { bucket: String, key: String },
    #[error("HEAD s3://{bucket}/{key} failed: {reason}")]
    Unavailable {
        bucket: String,
        key: String,
        reason: String,
    },
}

/// One S3 client per storage profile, built once.
#[derive(Debug, Clone)]
pub struct Buckets {
    entries: Vec<(StorageProfile, aws_sdk_s3::Client)>,
    default: usize,
}

impl Buckets {
    pub fn new(profiles: &StorageProfiles) -> Self {
        let default_name = &profiles.default_profile().name;
        let entries: Vec<_> = profiles
            .iter()
            .map(|p| (p.clone(), storage::client(p)))
            .collect();
        let default = entries
            .iter()
            .position(|(p, _)| &p.name == default_name)
            .unwrap_or(0);
        Self { entries, default }
    }

    /// The profile an egress wrote to: the one whose bucket it names (and whose endpoint host
    /// matches, when it names one), or the default when the egress names no S3 destination.
    pub fn profile_for(
        &self,
        bucket: Option<&str>,
        endpoint: Option<&str>,
    ) -> Option<&StorageProfile> {
        let Some(bucket) = bucket.filter(|b| !b.is_empty()) else {
            return self.entries.get(self.default).map(|(p, _)| p);
        };
        let host_of = |url: &str| {
            url::Url::parse(url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
        };
        let wanted_host = endpoint.and_then(host_of);
        self.entries
            .iter()
            .map(|(p, _)| p)
            .filter(|p| p.bucket == bucket)
            .find(|p| {
                wanted_host.is_none() || p.endpoint.host_str().map(str::to_owned) == wanted_host
            })
    }

    /// HEADs `key` in `profile`'s bucket; returns the answer and how long it took.
    pub async fn head(
        &self,
        profile: &StorageProfile,
        key: &str,
    ) -> (Result<ObjectInfo, HeadError>, Duration) {
        let started = Instant::now();
        let Some((_, client)) = self.entries.iter().find(|(p, _)| p.name == profile.name) else {
            let reason = format!("no client for storage profile {:?}", profile.name);
            return (Err(unavailable(profile, key, reason)), started.elapsed());
        };
        let result = client
            .head_object()
            .bucket(&profile.bucket)
            .key(key)
            .send()
            .await
            .map(|out| ObjectInfo {
                size_bytes: out.content_length().unwrap_or_default(),
                content_type: out.content_type().map(str::to_owned),
                etag: out.e_tag().map(|e| e.trim_matches('"').to_owned()),
            })
            .map_err(|error| classify(profile, key, error));
        (result, started.elapsed())
    }
}

fn unavailable(profile: &StorageProfile, key: &str, reason: String) -> HeadError {
    HeadError::Unavailable {
        bucket: profile.bucket.clone(),
        key: key.to_owned(),
        reason,
    }
}

fn classify(profile: &StorageProfile, key: &str, error: SdkError<HeadObjectError>) -> HeadError {
    let not_found = error
        .as_service_error()
        .is_some_and(HeadObjectError::is_not_found)
        || error
            .raw_response()
            .is_some_and(|r| r.status().as_u16() == 404);
    if not_found {
        return HeadError::NotFound {
            bucket: profile.bucket.clone(),
            key: key.to_owned(),
        };
    }
    let reason = match error.raw_response() {
        Some(response) => format!("HTTP {}", response.status().as_u16()),
        None => aws_sdk_s3::error::DisplayErrorContext(&error).to_string(),
    };
    unavailable(profile, key, reason)
}
