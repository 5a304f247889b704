//! A frame of a recording roomtape did not start: ffmpeg reads it over a presigned URL (an HLS
//! recording's segment at that time), and the JPEG is stored beside the file. A time past the
//! file's end takes its first frame.

use std::time::Duration;

use roomtape_shared::config::{StorageProfile, ThumbnailSettings};
use roomtape_shared::ffmpeg::{self, FfmpegError, Seek};
use roomtape_shared::hls;

use super::ThumbnailError;
use crate::egress::plan::ReportedFile;
use roomtape_shared::storage::ObjectStore;

/// How long the link ffmpeg reads from works: longer than ffmpeg may take.
const LINK_LIFETIME: Duration = Duration::from_secs(600);
const JPEG: &str = "image/jpeg";

/// Takes the frame at `at_seconds` of `file` and stores it; its key.
pub async fn take(
    objects: &ObjectStore,
    settings: &ThumbnailSettings,
    profile: &StorageProfile,
    file: &ReportedFile,
    at_seconds: f64,
) -> Result<String, ThumbnailError> {
    let (source, at, seek) = match file.playlist {
        true => {
            let (segment, at) = segment_at(objects, profile, &file.key, at_seconds).await?;
            (segment, at, Seek::Decode)
        }
        false => (file.key.clone(), at_seconds, Seek::Index),
    };
    let url = objects
        .presigned_get(profile, &source, LINK_LIFETIME)
        .await?;
    let jpeg = match ffmpeg::frame(&settings.ffmpeg, url.as_str(), at, seek).await {
        // The time is past the last frame: the length LiveKit reported (the probe off) was
        // longer than the file's. Its first frame, rather than none.
        Err(FfmpegError::NoJpeg) if at > 0.0 => {
            ffmpeg::frame(&settings.ffmpeg, url.as_str(), 0.0, seek).await?
        }
        taken => taken?,
    };
    let key = thumbnail_key(&file.key);
    objects.put(profile, &key, jpeg, JPEG).await?;
    Ok(key)
}

/// The segment of the playlist `key` that plays at `at_seconds`, and the time into it.
async fn segment_at(
    objects: &ObjectStore,
    profile: &StorageProfile,
    key: &str,
    at_seconds: f64,
) -> Result<(String, f64), ThumbnailError> {
    let text = hls::read(objects, profile, key)
        .await
        .map_err(|error| match error {
            hls::ReadError::Storage(error) => ThumbnailError::Storage(error),
            hls::ReadError::Invalid(why) => ThumbnailError::Playlist(why),
        })?;
    let segments = hls::segments(&text).map_err(ThumbnailError::Playlist)?;
    let (segment, into) = hls::segment_at(&segments, at_seconds)
        .ok_or_else(|| ThumbnailError::Playlist("it names no segments".to_owned()))?;
    let segment_key = hls::segment_key(key, &segment.uri).ok_or_else(|| {
        ThumbnailError::Playlist(format!("segment {} is not in the bucket", segment.uri))
    })?;
    Ok((segment_key, into))
}

/// `recordings/r/a.mp4` → `recordings/r/a.thumbnail.jpeg`, beside the file (and, for an HLS
/// playlist, under the stem its segments share, which delete removes).
fn thumbnail_key(file_key: &str) -> String {
    let (dir, name) = match file_key.rsplit_once('/') {
        Some((dir, name)) => (Some(dir), name),
        None => (None, file_key),
    };
    let stem = match name.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => name,
    };
    match dir {
        Some(dir) => format!("{dir}/{stem}.thumbnail.jpeg"),
        None => format!("{stem}.thumbnail.jpeg"),
    }
}

#[cfg(test)]
mod tests {
    use super::thumbnail_key;

    #[test]
    fn a_frame_is_stored_beside_its_file() {
        assert_eq!(
            thumbnail_key("recordings/r/a.mp4"),
            "recordings/r/a.thumbnail.jpeg"
        );
        assert_eq!(thumbnail_key("r/rec.m3u8"), "r/rec.thumbnail.jpeg");
        assert_eq!(thumbnail_key("plain"), "plain.thumbnail.jpeg");
        assert_eq!(thumbnail_key("r/.hidden"), "r/.hidden.thumbnail.jpeg");
    }
}
