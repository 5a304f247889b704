//! HLS: the media playlist is read whole (it is small), every segment it names is HEADed (8 at
//! once) and must be there and not empty, their `#EXTINF` durations add up to the recording's,
//! and the first segment's program map table names the codecs.

use futures_util::{stream, StreamExt};
use roomtape_shared::config::StorageProfile;
use roomtape_shared::storage::ObjectStore;

use super::source::WINDOW;
use super::{ts, unplayable, AudioTrack, MediaReport, ProbeResult, VideoTrack};

/// A playlist larger than this is not read (a day of 2 s segments is about 3 MB).
const MAX_PLAYLIST_BYTES: u64 = 16 * 1024 * 1024;
/// Segments HEADed at once.
const HEADS_AT_ONCE: usize = 8;

/// One segment as the playlist names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub uri: String,
    pub duration_seconds: f64,
}

/// The segments of a media playlist, or why it is not one.
pub fn segments(text: &str) -> Result<Vec<Segment>, String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some("#EXTM3U") {
        return Err("the playlist does not start with #EXTM3U".to_owned());
    }
    let mut found = Vec::new();
    let mut duration = None;
    for line in lines {
        if let Some(value) = line.strip_prefix("#EXTINF:") {
            let seconds = value.split(',').next().unwrap_or_default().trim();
            duration = Some(
                seconds
                    .parse::<f64>()
                    .ok()
                    .filter(|d| d.is_finite() && *d >= 0.0)
                    .ok_or_else(|| format!("#EXTINF:{value} is not a duration"))?,
            );
        } else if line.starts_with("#EXT-X-STREAM-INF") {
            return Err("a master playlist, not the media playlist of a recording".to_owned());
        } else if !line.starts_with('#') {
            let duration_seconds = duration
                .take()
                .ok_or_else(|| format!("segment {line} has no #EXTINF before it"))?;
            found.push(Segment {
                uri: line.to_owned(),
                duration_seconds,
            });
        }
    }
    if found.is_empty() {
        return Err("the playlist names no segments".to_owned());
    }
    Ok(found)
}

/// The object key a relative segment URI names, next to the playlist's key; `None` for an
/// absolute URL (not checked: it may be anywhere).
pub fn segment_key(playlist_key: &str, uri: &str) -> Option<String> {
    if uri.contains("://") {
        return None;
    }
    let path = uri.split(['?', '#']).next().unwrap_or_default();
    let mut parts: Vec<&str> = match path.strip_prefix('/') {
        Some(_) => Vec::new(),
        None => playlist_key
            .rsplit_once('/')
            .map_or_else(Vec::new, |(dir, _)| dir.split('/').collect()),
    };
    for part in path.trim_start_matches('/').split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

pub async fn probe(
    objects: &ObjectStore,
    profile: &StorageProfile,
    key: &str,
    size: u64,
) -> ProbeResult<MediaReport> {
    if size > MAX_PLAYLIST_BYTES {
        return unplayable(format!(
            "the playlist is {size} bytes, more than a recording's"
        ));
    }
    let bytes = objects.get_range(profile, key, 0, size).await?.bytes;
    let Ok(text) = String::from_utf8(bytes) else {
        return unplayable("the playlist is not UTF-8 text");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_media_playlist_lists_its_segments_and_their_durations() {
        let text = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\nrec_00000.ts\n#EXTINF:1.5,\nrec_00001.ts\n#EXT-X-ENDLIST\n";
        let found = segments(text).expect("a playlist");
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].uri, "rec_00001.ts");
        assert_eq!(found[1].duration_seconds, 1.5);
    }

    #[test]
    fn what_is_not_a_media_playlist_says_why() {
        let why = |text: &str| segments(text).expect_err(text);
        assert!(why("<html>").contains("#EXTM3U"));
        assert!(why("#EXTM3U\n").contains("no segments"));
        assert!(why("#EXTM3U\nseg.ts\n").contains("no #EXTINF"));
        assert!(why("#EXTM3U\n#EXTINF:abc,\nseg.ts\n").contains("not a duration"));
        assert!(why("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow.m3u8\n").contains("master"));
    }

    #[test]
    fn segment_uris_resolve_next_to_the_playlist() {
        assert_eq!(
            segment_key("rec/room/a.m3u8", "a_0.ts").as_deref(),
            Some("rec/room/a_0.ts")
        );
        assert_eq!(
            segment_key("a.m3u8", "a_0.ts?x=1").as_deref(),
            Some("a_0.ts")
        );
        assert_eq!(
            segment_key("rec/room/a.m3u8", "../b/a_0.ts").as_deref(),
            Some("rec/b/a_0.ts")
        );
        assert_eq!(
            segment_key("rec/room/a.m3u8", "/other/a_0.ts").as_deref(),
            Some("other/a_0.ts")
        );
        assert_eq!(segment_key("rec/a.m3u8", "https://cdn/x.ts"), None);
    }
}
