//! Delivering the story to the deployment as LiveKit and its egress would: the video written to
//! the bucket, then each webhook signed and posted to the ingestor.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use roomtape_shared::auth::WebhookSigner;
use roomtape_shared::config::StorageProfile;
use roomtape_shared::storage::{ObjectStore, StorageError};

use super::events::Story;
use crate::error::CliError;
use crate::output;

/// The recording: 4 s of test pattern and a 440 Hz tone, H.264 + AAC, made by
/// `cli/assets/make-test-video.sh`.
pub const VIDEO: &[u8] = include_bytes!("../../assets/test-video.mp4");
/// Its length, as ffprobe reports it.
pub const VIDEO_DURATION: Duration = Duration::from_secs(4);
const VIDEO_CONTENT_TYPE: &str = "video/mp4";
/// Where LiveKit posts webhooks, under `ROOMTAPE_INGESTOR_URL`.
pub const WEBHOOK_PATH: &str = "webhooks/livekit";
const WEBHOOK_CONTENT_TYPE: &str = "application/webhook+json";
/// How much of the ingestor's answer a refusal quotes.
const MAX_QUOTED_BODY: usize = 500;

/// Where webhooks go and who signs them.
pub struct Webhooks<'a> {
    pub http: &'a reqwest::Client,
    pub url: &'a Url,
    pub signer: &'a WebhookSigner,
}

/// Uploads the video, then posts the story's webhooks in order, with progress; the first
/// refusal stops it. When not even the first webhook got through, the video is removed again.
pub async fn story(
    story: &Story,
    objects: &ObjectStore,
    profile: &StorageProfile,
    webhooks: &Webhooks<'_>,
) -> Result<(), CliError> {
    let bodies = story.webhooks();
    let steps = output::progress(1 + bodies.len() as u64, "simulate");

    steps.set_message(format!("uploading s3://{}/{}", profile.bucket, story.key));
    upload(objects, profile, &story.key).await?;
    steps.inc(1);

    for (posted, (name, body)) in bodies.into_iter().enumerate() {
        steps.set_message(format!("posting {name}"));
        if let Err(error) = post(webhooks, name, body).await {
            steps.abandon();
            if posted == 0 {
                // Nothing refers to the file: leave the bucket as it was.
                let _ = objects.delete(profile, &story.key).await;
            }
            return Err(error);
        }
        steps.inc(1);
    }
    steps.finish_and_clear();
    Ok(())
}

/// Writes the video where the egress would have; a bucket that is not there is the operator's to
/// create.
async fn upload(
    objects: &ObjectStore,
    profile: &StorageProfile,
    key: &str,
) -> Result<(), CliError> {
    let no_bucket = || CliError::NoBucket {
        bucket: profile.bucket.clone(),
        profile: profile.name.clone(),
        endpoint: profile.endpoint.to_string(),
    };
    // Some S3 servers (s3s-fs) make the bucket on a PUT into one that is not there: ask first.
    if !objects
        .bucket_exists(profile)
        .await
        .map_err(CliError::Storage)?
    {
        return Err(no_bucket());
    }
    match objects
        .put(profile, key, VIDEO.to_vec(), VIDEO_CONTENT_TYPE)
        .await
    {
        Ok(()) => Ok(()),
        // A PUT finds nothing to be missing but the bucket.
        Err(StorageError::NotFound { .. }) => Err(no_bucket()),
        Err(error) => Err(CliError::Storage(error)),
    }
}

/// Posts one webhook as LiveKit does; anything but 2xx stops the simulation.
async fn post(webhooks: &Webhooks<'_>, event: &'static str, body: String) -> Result<(), CliError> {
    let token = webhooks.signer.sign(body.as_bytes());
    let response = webhooks
        .http
        .post(webhooks.url.clone())
        .header(CONTENT_TYPE, WEBHOOK_CONTENT_TYPE)
        .header(AUTHORIZATION, token)
        .body(body)
        .send()
        .await
        .map_err(|e| CliError::IngestorUnreachable(webhooks.url.to_string(), e))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let mut body = response.text().await.unwrap_or_default().trim().to_owned();
    if body.len() > MAX_QUOTED_BODY {
        let mut cut = MAX_QUOTED_BODY;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
        body.push('…');
    }
    let hint = match status.as_u16() {
        401 => " (is LIVEKIT_API_KEY / LIVEKIT_API_SECRET the pair the ingestor verifies with?)",
        _ => "",
    };
    Err(CliError::IngestorRefused {
        url: webhooks.url.to_string(),
        event,
        status,
        body,
        hint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_video_is_a_small_faststart_mp4() {
        assert!(VIDEO.len() < 150 * 1024, "{} bytes", VIDEO.len());
        // ftyp first, then moov before mdat: browsers can start playing at once.
        assert_eq!(&VIDEO[4..8], b"ftyp");
        let boxes: Vec<&[u8]> = {
            let mut at = 0;
            let mut names = Vec::new();
            while at + 8 <= VIDEO.len() {
                let size =
                    u32::from_be_bytes([VIDEO[at], VIDEO[at + 1], VIDEO[at + 2], VIDEO[at + 3]]);
                names.push(&VIDEO[at + 4..at + 8]);
                at += size as usize;
            }
            names
        };
        let position = |name: &[u8]| boxes.iter().position(|b| *b == name);
        assert!(position(b"moov") < position(b"mdat"), "{boxes:?}");
    }
}
