//! How recordings get their thumbnail: read by the processor, which makes them, and by
//! `roomtape doctor`, which checks the ffmpeg they need.

use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, Env};

/// `THUMBNAIL_INTERVAL`'s default: about 120 images an hour of recording, the thumbnail half a
/// minute in.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// `RECORDING_THUMBNAILS`, `THUMBNAIL_INTERVAL`, `FFMPEG_PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThumbnailSettings {
    /// `RECORDING_THUMBNAILS` (default on): a video recording started by roomtape asks LiveKit
    /// for an image output, and one started elsewhere gets a frame of its file (ffmpeg); off,
    /// neither.
    pub enabled: bool,
    /// `THUMBNAIL_INTERVAL` (default `30s`, whole seconds, at least `1s`): how often the image
    /// output writes a JPEG. The thumbnail is its second image, this far into the recording
    /// (the first is taken as the recorder's page loads, often black).
    pub capture_interval_secs: u32,
    /// `FFMPEG_PATH` (default `ffmpeg`, found on `PATH`): the ffmpeg that takes frames.
    pub ffmpeg: PathBuf,
}

impl ThumbnailSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        crate::settings!(Self {
            enabled: env.flag_or("RECORDING_THUMBNAILS", true),
            capture_interval_secs: interval(env),
            ffmpeg: Ok(PathBuf::from(env.get("FFMPEG_PATH").unwrap_or("ffmpeg"))),
        })
    }
}

/// LiveKit's `capture_interval` is whole seconds.
fn interval(env: &Env) -> Result<u32, ConfigError> {
    const VAR: &str = "THUMBNAIL_INTERVAL";
    let interval = env.duration_or(VAR, DEFAULT_INTERVAL)?;
    let invalid = |reason: &str| ConfigError::invalid(VAR, reason);
    if interval.subsec_nanos() != 0 {
        return Err(invalid(
            "must be whole seconds (LiveKit's capture interval)",
        ));
    }
    match u32::try_from(interval.as_secs()) {
        Ok(0) => Err(invalid("must be at least 1s")),
        Ok(secs) => Ok(secs),
        Err(_) => Err(invalid("is longer than LiveKit takes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<ThumbnailSettings, ConfigError> {
        ThumbnailSettings::from_env(&Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn thumbnails_are_on_every_30_seconds_with_the_ffmpeg_on_path_by_default() {
        assert_eq!(
            settings(&[]),
            Ok(ThumbnailSettings {
                enabled: true,
                capture_interval_secs: 30,
                ffmpeg: PathBuf::from("ffmpeg"),
            })
        );
        let set = settings(&[
            ("RECORDING_THUMBNAILS", "off"),
            ("THUMBNAIL_INTERVAL", "2m"),
            ("FFMPEG_PATH", "/opt/ffmpeg/bin/ffmpeg"),
        ])
        .expect("valid");
        assert!(!set.enabled);
        assert_eq!(set.capture_interval_secs, 120);
        assert_eq!(set.ffmpeg, PathBuf::from("/opt/ffmpeg/bin/ffmpeg"));
    }

    #[test]
    fn an_interval_livekit_cannot_take_names_the_variable() {
        for (value, why) in [
            ("0s", "at least 1s"),
            ("1500ms", "whole seconds"),
            ("ten", "THUMBNAIL_INTERVAL"),
            ("200years", "longer than LiveKit takes"),
        ] {
            let error = settings(&[("THUMBNAIL_INTERVAL", value)])
                .expect_err(value)
                .to_string();
            assert!(error.contains("THUMBNAIL_INTERVAL"), "{value}: {error}");
            assert!(error.contains(why), "{value}: {error}");
        }
        let error = settings(&[("RECORDING_THUMBNAILS", "maybe")]).expect_err("maybe");
        assert!(error.to_string().contains("RECORDING_THUMBNAILS"));
    }
}
