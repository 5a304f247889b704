//! Object storage: the buckets recordings are written to (R2, Storj, any S3 server), one client
//! per storage profile. Everything roomtape does to an object is here: HEAD (is the recording
//! there, how big), ranged GETs (the recording probe), LIST, its public URL, a presigned GET,
//! DELETE, PUT (thumbnails, and `roomtape simulate`) and whether a bucket exists.

mod client;

use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::presigning::PresigningConfig;
use url::Url;

use crate::config::key_problem;
use crate::config::{StorageProfile, StorageProfiles};
pub use client::client;

/// Presigned URLs cannot live longer than this (SigV4's limit).
pub const MAX_PRESIGN: Duration = Duration::from_secs(7 * 24 * 3600);

/// What the bucket says about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size_bytes: i64,
    pub content_type: Option<String>,
    pub etag: Option<String>,
}

/// A ranged GET's bytes, and the object they are of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeRead {
    pub bytes: Vec<u8>,
    pub object: ObjectInfo,
}

/// Why an object operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The bucket answered that the object is not there.
    #[error("s3://{bucket}/{key} does not exist")]
    NotFound { bucket: String, key: String },
    /// The bucket itself is not there: the profile names a bucket, endpoint or account that
    /// does not hold it. A configuration fault, not a missing file.
    #[error(
        "bucket {bucket:?} does not exist at {endpoint} (storage profile {profile:?}): correct the profile's bucket name, endpoint or account, or create the bucket"
    )]
    NoSuchBucket {
        bucket: String,
        endpoint: String,
        profile: String,
    },
    /// The bucket could not answer: unreachable, timed out, refused our credentials, 5xx.
    #[error("{operation} s3://{bucket}/{key} failed: {reason}")]
    Unavailable {
        operation: &'static str,
        bucket: String,
        key: String,
        /// The HTTP status, or the client's description when there was no response.
        reason: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("a presigned URL may live at most 7 days, not {0:?}")]
    PresignTooLong(Duration),
}

/// One S3 client per storage profile, built once.
#[derive(Debug, Clone)]
pub struct ObjectStore {
    entries: Vec<(StorageProfile, aws_sdk_s3::Client)>,
    default: usize,
}

impl ObjectStore {
    pub fn new(profiles: &StorageProfiles) -> Self {
        let default_name = &profiles.default_profile().name;
        let entries: Vec<_> = profiles.iter().map(|p| (p.clone(), client(p))).collect();
        let default = entries
            .iter()
            .position(|(p, _)| &p.name == default_name)
            .unwrap_or(0);
        Self { entries, default }
    }

    /// The profile an egress wrote to: of those whose bucket it names, the one on the same
    /// endpoint (scheme, host and port), else one on the same host (the processor may reach
    /// the server through another port than the egress: a proxy, a published port); any of
    /// them when the egress names no endpoint. The default when it names no S3 destination.
    pub fn profile_for(
        &self,
        bucket: Option<&str>,
        endpoint: Option<&str>,
    ) -> Option<&StorageProfile> {
        let Some(bucket) = bucket.filter(|b| !b.is_empty()) else {
            return self.entries.get(self.default).map(|(p, _)| p);
        };
        let same_bucket = || self.profiles().filter(move |p| p.bucket == bucket);
        let Some(wanted) = endpoint.and_then(|url| Url::parse(url).ok()) else {
            return same_bucket().next();
        };
        same_bucket()
            .find(|p| p.endpoint.origin() == wanted.origin())
            .or_else(|| same_bucket().find(|p| p.endpoint.host_str() == wanted.host_str()))
    }

    /// The profile named `name`.
    pub fn profile(&self, name: &str) -> Option<&StorageProfile> {
        self.profiles().find(|p| p.name == name)
    }

    /// Every key under `prefix` in `profile`'s bucket (ListObjectsV2, a page at a time).
    pub async fn keys_under(
        &self,
        profile: &StorageProfile,
        prefix: &str,
    ) -> Result<Vec<String>, StorageError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client_for(profile)
            .list_objects_v2()
            .bucket(&profile.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|error| classify("LIST", profile, prefix, error, false))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        Ok(keys)
    }

    /// The first `count` keys under `prefix` in `profile`'s bucket, in the bucket's (byte) order.
    pub async fn first_keys(
        &self,
        profile: &StorageProfile,
        prefix: &str,
        count: i32,
    ) -> Result<Vec<String>, StorageError> {
        let page = self
            .client_for(profile)
            .list_objects_v2()
            .bucket(&profile.bucket)
            .prefix(prefix)
            .max_keys(count)
            .send()
            .await
            .map_err(|error| classify("LIST", profile, prefix, error, false))?;
        Ok(page
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect())
    }

    pub fn profiles(&self) -> impl Iterator<Item = &StorageProfile> {
        self.entries.iter().map(|(p, _)| p)
    }

    /// HEADs `key` in `profile`'s bucket; returns the answer and how long it took. A 404 says
    /// nothing of whether the object or the bucket is missing (HEAD answers have no body): the
    /// bucket is asked too, and a bucket that is not there is [`StorageError::NoSuchBucket`].
    pub async fn head(
        &self,
        profile: &StorageProfile,
        key: &str,
    ) -> (Result<ObjectInfo, StorageError>, Duration) {
        let started = Instant::now();
        let result = match self.head_object(profile, key).await {
            Err(StorageError::NotFound { bucket, key }) => {
                match self.bucket_exists(profile).await {
                    Ok(false) => Err(StorageError::NoSuchBucket {
                        bucket,
                        endpoint: profile.endpoint.to_string(),
                        profile: profile.name.clone(),
                    }),
                    // Present, or it could not say (some keys may not HEAD buckets): the object is
                    // what is missing.
                    Ok(true) | Err(_) => Err(StorageError::NotFound { bucket, key }),
                }
            }
            other => other,
        };
        (result, started.elapsed())
    }

    async fn head_object(
        &self,
        profile: &StorageProfile,
        key: &str,
    ) -> Result<ObjectInfo, StorageError> {
        self.client_for(profile)
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
            .map_err(|error| {
                let not_found = error
                    .as_service_error()
                    .is_some_and(HeadObjectError::is_not_found);
                classify("HEAD", profile, key, error, not_found)
            })
    }

    /// Bytes `start..start + len` of `key` (a ranged GET; fewer at the object's end), and what
    /// a HEAD would have said of the object (its whole size from `Content-Range`). What the
    /// recording probe reads instead of the whole file; its first read stands for the HEAD.
    /// An empty object (which no range fits, 416) reads as no bytes of size 0.
    pub async fn get_range(
        &self,
        profile: &StorageProfile,
        key: &str,
        start: u64,
        len: u64,
    ) -> Result<RangeRead, StorageError> {
        let unavailable = |reason: String, source: Box<dyn std::error::Error + Send + Sync>| {
            StorageError::Unavailable {
                operation: "GET",
                bucket: profile.bucket.clone(),
                key: key.to_owned(),
                reason,
                source,
            }
        };
        let last = start.saturating_add(len.max(1)).saturating_sub(1);
        let answer = self
            .client_for(profile)
            .get_object()
            .bucket(&profile.bucket)
            .key(key)
            .range(format!("bytes={start}-{last}"))
            .send()
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(error)
                if start == 0
                    && error
                        .raw_response()
                        .is_some_and(|r| r.status().as_u16() == 416) =>
            {
                return Ok(RangeRead {
                    bytes: Vec::new(),
                    object: ObjectInfo {
                        size_bytes: 0,
                        content_type: None,
                        etag: None,
                    },
                });
            }
            Err(error) => {
                let not_found = error
                    .as_service_error()
                    .is_some_and(aws_sdk_s3::operation::get_object::GetObjectError::is_no_such_key);
                return Err(classify("GET", profile, key, error, not_found));
            }
        };
        let total = answer
            .content_range()
            .and_then(|range| range.rsplit_once('/'))
            .and_then(|(_, total)| total.parse::<i64>().ok());
        let mut object = ObjectInfo {
            size_bytes: total.unwrap_or_default(),
            content_type: answer.content_type().map(str::to_owned),
            etag: answer.e_tag().map(|e| e.trim_matches('"').to_owned()),
        };
        let body = answer
            .body
            .collect()
            .await
            .map_err(|error| unavailable("the body broke off".to_owned(), Box::new(error)))?
            .into_bytes();
        if total.is_some() {
            return Ok(RangeRead {
                bytes: body.to_vec(),
                object,
            });
        }
        // A server that ignores Range sends all of it: the range, cut out of that.
        object.size_bytes = i64::try_from(body.len()).unwrap_or(i64::MAX);
        let from = usize::try_from(start).unwrap_or(usize::MAX).min(body.len());
        let to = usize::try_from(last.saturating_add(1))
            .unwrap_or(usize::MAX)
            .min(body.len());
        Ok(RangeRead {
            bytes: body[from..to.max(from)].to_vec(),
            object,
        })
    }

    /// Whether `profile`'s bucket exists (HEAD on the bucket).
    pub async fn bucket_exists(&self, profile: &StorageProfile) -> Result<bool, StorageError> {
        let answer = self
            .client_for(profile)
            .head_bucket()
            .bucket(&profile.bucket)
            .send()
            .await;
        match answer {
            Ok(_) => Ok(true),
            Err(error) => match classify("HEAD bucket", profile, "", error, false) {
                StorageError::NotFound { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Writes `body` as `key` (a thumbnail the processor took; what an egress does, for
    /// `roomtape simulate`). A bucket that does not exist is `NotFound`.
    pub async fn put(
        &self,
        profile: &StorageProfile,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StorageError> {
        self.client_for(profile)
            .put_object()
            .bucket(&profile.bucket)
            .key(key)
            .content_type(content_type)
            .body(body.into())
            .send()
            .await
            .map(drop)
            .map_err(|error| classify("PUT", profile, key, error, false))
    }

    /// A GET URL for `key` that works without credentials for `expires` (at most 7 days).
    pub async fn presigned_get(
        &self,
        profile: &StorageProfile,
        key: &str,
        expires: Duration,
    ) -> Result<Url, StorageError> {
        self.presigned_get_from(profile, key, SystemTime::now(), expires)
            .await
    }

    /// A GET URL for `key` signed as of `signed_at`, that works until `expires` after it: the
    /// same arguments give the same URL, so a page that asks again within a window can keep
    /// what its browser cached (thumbnails in a list that refreshes every few seconds).
    pub async fn presigned_get_from(
        &self,
        profile: &StorageProfile,
        key: &str,
        signed_at: SystemTime,
        expires: Duration,
    ) -> Result<Url, StorageError> {
        let config = PresigningConfig::builder()
            .start_time(signed_at)
            .expires_in(expires)
            .build()
            .ok()
            .filter(|_| expires <= MAX_PRESIGN)
            .ok_or(StorageError::PresignTooLong(expires))?;
        let request = self
            .client_for(profile)
            .get_object()
            .bucket(&profile.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|error| classify("presign GET", profile, key, error, false))?;
        Url::parse(request.uri()).map_err(|error| StorageError::Unavailable {
            operation: "presign GET",
            bucket: profile.bucket.clone(),
            key: key.to_owned(),
            reason: "the client built an invalid URL".to_owned(),
            source: Box::new(error),
        })
    }

    /// Deletes `key`; deleting what is not there is success (S3 answers 204 either way).
    pub async fn delete(&self, profile: &StorageProfile, key: &str) -> Result<(), StorageError> {
        self.client_for(profile)
            .delete_object()
            .bucket(&profile.bucket)
            .key(key)
            .send()
            .await
            .map(drop)
            .map_err(|error| classify("DELETE", profile, key, error, false))
    }

    fn client_for(&self, profile: &StorageProfile) -> aws_sdk_s3::Client {
        match self.entries.iter().find(|(p, _)| p.name == profile.name) {
            Some((_, client)) => client.clone(),
            // A profile from elsewhere (the caller's own settings): a client of its own.
            None => client(profile),
        }
    }
}

/// The public URL of `key` in `profile`: under the public base if there is one, else
/// path-style on the endpoint. Each key segment is percent-encoded. `None` for a key no URL
/// can name ([`key_problem`]): a link to it would open another object.
pub fn public_url(profile: &StorageProfile, key: &str) -> Option<Url> {
    if key_problem(key).is_some() {
        return None;
    }
    let mut url = profile.public_base_url.clone().unwrap_or_else(|| {
        let mut url = profile.endpoint.clone();
        push_segments(&mut url, [profile.bucket.as_str()]);
        url
    });
    push_segments(&mut url, key.split('/'));
    Some(url)
}

/// The origins (`scheme://host[:port]`) a browser fetches `profile`'s objects from: its public
/// base URL's, and its endpoint's, path-style or with the bucket as a subdomain (what presigned
/// links use when path style is off). What the console's Content-Security-Policy allows.
pub fn origins(profile: &StorageProfile) -> Vec<String> {
    let mut origins: Vec<String> = profile
        .public_base_url
        .iter()
        .chain([&profile.endpoint])
        .map(|url| url.origin().ascii_serialization())
        .collect();
    if !profile.force_path_style {
        let mut virtual_host = profile.endpoint.clone();
        let host = format!(
            "{}.{}",
            profile.bucket,
            profile.endpoint.host_str().unwrap_or_default()
        );
        if virtual_host.set_host(Some(&host)).is_ok() {
            origins.push(virtual_host.origin().ascii_serialization());
        }
    }
    origins.retain(|origin| origin != "null");
    origins.dedup();
    origins
}

fn push_segments<'a>(url: &mut Url, segments: impl IntoIterator<Item = &'a str>) {
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
}

fn classify<E>(
    operation: &'static str,
    profile: &StorageProfile,
    key: &str,
    error: SdkError<E>,
    not_found: bool,
) -> StorageError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let status = error.raw_response().map(|r| r.status().as_u16());
    if not_found || status == Some(404) {
        return StorageError::NotFound {
            bucket: profile.bucket.clone(),
            key: key.to_owned(),
        };
    }
    let reason = match status {
        Some(status) => format!("HTTP {status}"),
        None => DisplayErrorContext(&error).to_string(),
    };
    StorageError::Unavailable {
        operation,
        bucket: profile.bucket.clone(),
        key: key.to_owned(),
        reason,
        source: Box::new(error),
    }
}

#[cfg(test)]
mod tests;
