//! HLS: the media playlist is read whole (it is small), every segment it names is HEADed (8 at
//! once) and must be there and not empty, their `#EXTINF` durations add up to the recording's,
//! and the first segment's program map table names the codecs.

use futures_util::{stream, StreamExt};
use roomtape_shared::config::StorageProfile;
use roomtape_shared::hls::{self, segment_key, segments, ReadError};
use roomtape_shared::storage::ObjectStore;

use super::source::WINDOW;
use super::{ts, unplayable, AudioTrack, MediaReport, ProbeResult, VideoTrack};

/// Segments HEADed at once.
const HEADS_AT_ONCE: usize = 8;

pub async fn probe(
    objects: &ObjectStore,
    profile: &StorageProfile,
    key: &str,
) -> ProbeResult<MediaReport> {
    let text = match hls::read(objects, profile, key).await {
        Ok(text) => text,
        Err(ReadError::Invalid(why)) => return unplayable(why),
        Err(ReadError::Storage(error)) => return Err(error.into()),
    };
    let segments = segments(&text).or_else(unplayable)?;
    let keys: Vec<(String, String)> = segments
        .iter()
        .filter_map(|s| segment_key(key, &s.uri).map(|k| (s.uri.clone(), k)))
        .collect();
    // Owned items: a closure over borrowed ones makes the future not `Send` for every lifetime.
    let answers: Vec<_> = stream::iter(keys.clone())
        .map(|(uri, key)| async move { (uri, objects.head(profile, &key).await.0) })
        .buffered(HEADS_AT_ONCE)
        .collect()
        .await;
    let mut bytes = 0u64;
    for (uri, answer) in answers {
        // Missing (not uploaded yet?) or the bucket not answering: tried again, like a HEAD.
        let size = answer?.size_bytes;
        if size <= 0 {
            return unplayable(format!("segment {uri} is empty (0 bytes)"));
        }
        bytes += size.unsigned_abs();
    }
    let (video, audio) = match keys.first() {
        Some((uri, first)) => {
            let start = objects.get_range(profile, first, 0, WINDOW).await?.bytes;
            match ts::codecs(&start) {
                Some(codecs) => codecs,
                None => {
                    return unplayable(format!(
                        "segment {uri} is not MPEG-TS with a program map table"
                    ))
                }
            }
        }
        None => (None, None),
    };
    let report = MediaReport {
        container: "hls",
        duration_seconds: segments.iter().map(|s| s.duration_seconds).sum(),
        bit_rate: None,
        video: video.map(|codec| VideoTrack {
            codec: codec.to_owned(),
            width: None,
            height: None,
        }),
        audio: audio.map(|codec| AudioTrack {
            codec: codec.to_owned(),
            sample_rate: None,
            channels: None,
        }),
        segment_count: Some(segments.len()),
    };
    Ok(report.with_bit_rate(bytes))
}
