//! The recording probe: before a recording is `ready`, each finished file is opened the way a
//! player would open it, in ranged reads from its bucket rather than a download.
//!
//! - the container opens and its structure covers the whole object ([`mp4`]: top-level boxes
//!   tile the object, `moov` first or last, fragmented too; [`webm`]: EBML elements run to the
//!   end; [`ogg`]: the object ends with a whole, end-of-stream page; [`hls`]: every segment the
//!   playlist names exists);
//! - its tracks and their codecs, the picture size and the duration are read from the
//!   container's own index ([`MediaReport`], kept in the recording's `metadata.probe`);
//! - [`Expected::check`]: the duration agrees with LiveKit's within max(2 s, 2 %), and the
//!   tracks the request asked for are there.
//!
//! A file that fails is [`ProbeError::Unplayable`] (final); a bucket that cannot be read is
//! [`ProbeError::Storage`], retried like a HEAD.

pub mod hls;
pub mod mp4;
pub mod ogg;
pub mod source;
mod ts;
pub mod webm;

use roomtape_shared::storage::StorageError;
use serde::Serialize;

pub use source::{MemorySource, ObjectSource, Source};

/// Why a probe ended without a report.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The file is not playable as it is: the recording fails with this reason.
    #[error("{0}")]
    Unplayable(String),
    /// The bucket could not be read (or the object went missing): tried again later.
    #[error("reading the recording to probe it failed")]
    Storage(#[from] StorageError),
}

pub type ProbeResult<T> = Result<T, ProbeError>;

pub(crate) fn unplayable<T>(why: impl Into<String>) -> ProbeResult<T> {
    Err(ProbeError::Unplayable(why.into()))
}

/// What a player finds in a recording.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MediaReport {
    /// `mp4`, `webm`, `ogg` or `hls`.
    pub container: &'static str,
    /// From the container's index (the movie header, the segment info, the last granule
    /// position, the playlist's segment durations).
    pub duration_seconds: f64,
    /// The object's bits (all segments' for HLS) over its duration.
    pub bit_rate: Option<u64>,
    pub video: Option<VideoTrack>,
    pub audio: Option<AudioTrack>,
    /// HLS only: how many segments the playlist names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_count: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoTrack {
    /// ffprobe's `codec_name` for it: `h264`, `hevc`, `vp8`, `vp9`, `av1`, …
    pub codec: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AudioTrack {
    /// ffprobe's `codec_name` for it: `aac`, `opus`, `vorbis`, …
    pub codec: String,
    pub sample_rate: Option<u32>,
    pub channels: Option<u16>,
}

impl MediaReport {
    fn with_bit_rate(mut self, bytes: u64) -> Self {
        self.bit_rate = (self.duration_seconds > 0.0)
            .then(|| (bytes as f64 * 8.0 / self.duration_seconds).round() as u64);
        self
    }
}

/// What the recording should be: the tracks its request asked for and LiveKit's length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expected {
    pub video: bool,
    pub audio: bool,
    pub duration_seconds: Option<f64>,
}

/// How far the probed duration may be from LiveKit's: max(2 s, 2 %).
pub fn duration_tolerance(reported_seconds: f64) -> f64 {
    (reported_seconds * 0.02).max(2.0)
}

impl Expected {
    /// Why `report` is not the recording asked for, if it is not.
    pub fn check(&self, report: &MediaReport) -> Result<(), String> {
        if self.video && report.video.is_none() {
            return Err("no video track, and the recording was to have video".to_owned());
        }
        if self.audio && report.audio.is_none() {
            return Err("no audio track, and the recording was audio-only".to_owned());
        }
        if report.video.is_none() && report.audio.is_none() {
            return Err("neither an audio nor a video track".to_owned());
        }
        if let Some(reported) = self.duration_seconds {
            let tolerance = duration_tolerance(reported);
            let found = report.duration_seconds;
            if (found - reported).abs() > tolerance {
                return Err(format!(
                    "it lasts {found:.2} s where LiveKit reported {reported:.2} s (more than {tolerance:.2} s apart)"
                ));
            }
        }
        Ok(())
    }
}

/// Probes one file (not a playlist), whatever its container: told by its first bytes, not its
/// name.
pub async fn probe_file<S: Source>(source: &mut S) -> ProbeResult<MediaReport> {
    let size = source.len();
    let head = source.read(0, 16).await?.to_vec();
    let report = if mp4::sniff(&head) {
        mp4::probe(source).await?
    } else if webm::sniff(&head) {
        webm::probe(source).await?
    } else if ogg::sniff(&head) {
        ogg::probe(source).await?
    } else {
        return unplayable(format!(
            "not an MP4, WebM or Ogg file (it starts with {})",
            hex(&head[..head.len().min(8)])
        ));
    };
    Ok(report.with_bit_rate(size))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A four-character code as text (`moov`), or in hex when it is not printable.
pub(crate) fn fourcc(code: &[u8]) -> String {
    match code.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        true => String::from_utf8_lossy(code).into_owned(),
        false => format!("0x{}", hex(code)),
    }
}

pub(crate) fn be_u16(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

pub(crate) fn be_u32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

pub(crate) fn be_u64(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(data.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(video: bool, audio: bool, duration_seconds: f64) -> MediaReport {
        MediaReport {
            container: "mp4",
            duration_seconds,
            bit_rate: None,
            video: video.then(|| VideoTrack {
                codec: "h264".into(),
                width: Some(320),
                height: Some(240),
            }),
            audio: audio.then(|| AudioTrack {
                codec: "aac".into(),
                sample_rate: Some(44100),
                channels: Some(1),
            }),
            segment_count: None,
        }
    }

    #[test]
    fn the_duration_may_differ_by_two_seconds_or_two_percent() {
        let expected = |seconds| Expected {
            video: false,
            audio: false,
            duration_seconds: Some(seconds),
        };
        assert!(expected(4.0).check(&report(true, true, 5.9)).is_ok());
        assert!(expected(4.0).check(&report(true, true, 6.1)).is_err());
        assert!(expected(1800.0).check(&report(true, true, 1835.0)).is_ok());
        let why = expected(1800.0)
            .check(&report(true, true, 1837.0))
            .expect_err("37 s off");
        assert!(
            why.contains("1837.00 s where LiveKit reported 1800.00 s"),
            "{why}"
        );
        let unknown = Expected {
            duration_seconds: None,
            ..expected(0.0)
        };
        assert!(unknown.check(&report(true, true, 99.0)).is_ok());
    }

    #[test]
    fn the_tracks_asked_for_must_be_there() {
        let video = Expected {
            video: true,
            audio: false,
            duration_seconds: None,
        };
        let why = video
            .check(&report(false, true, 4.0))
            .expect_err("no video");
        assert!(why.contains("no video track"), "{why}");
        assert!(video.check(&report(true, false, 4.0)).is_ok());
        let audio_only = Expected {
            video: false,
            audio: true,
            ..video
        };
        assert!(audio_only.check(&report(true, false, 4.0)).is_err());
        let anything = Expected {
            video: false,
            audio: false,
            ..video
        };
        assert!(anything.check(&report(false, false, 4.0)).is_err());
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod fixture_tests;
