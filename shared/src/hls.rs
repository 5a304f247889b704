//! HLS media playlists as LiveKit writes them: the segments one names and their durations (what
//! the processor's probe checks and takes a thumbnail from), where each segment is in the bucket,
//! and the playlist with every URI it names replaced (what the API signs for private buckets).

/// A playlist larger than this is not read (a day of 2 s segments is about 3 MB).
pub const MAX_PLAYLIST_BYTES: u64 = 16 * 1024 * 1024;

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
/// absolute URL (it may be anywhere).
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

/// The segment playing at `seconds` from the start, and how far into it that is; the last
/// segment for a time past the end.
pub fn segment_at(segments: &[Segment], seconds: f64) -> Option<(&Segment, f64)> {
    let mut start = 0.0;
    for segment in segments {
        if seconds < start + segment.duration_seconds {
            return Some((segment, (seconds - start).max(0.0)));
        }
        start += segment.duration_seconds;
    }
    segments.last().map(|last| (last, 0.0))
}

/// Why a playlist cannot be rewritten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    #[error("the playlist is not a media playlist: {0}")]
    NotMedia(String),
    /// A relative URI that leaves the playlist's folder: the segments of a recording lie beside
    /// its playlist, and signing this one would hand out another object.
    #[error("the playlist names {0:?}, outside its own folder")]
    Outside(String),
}

/// `text` with the key of every relative URI it names (segments, and `URI="…"` attributes such
/// as `#EXT-X-MAP`'s) replaced by what `link` makes of it; absolute URLs are left as they are.
/// Every key must lie in the playlist's own folder.
pub fn rewrite(
    playlist_key: &str,
    text: &str,
    mut link: impl FnMut(&str) -> String,
) -> Result<String, RewriteError> {
    segments(text).map_err(RewriteError::NotMedia)?;
    let folder = playlist_key.rsplit_once('/').map(|(dir, _)| dir);
    let mut key_of = |uri: &str| -> Result<Option<String>, RewriteError> {
        let Some(key) = segment_key(playlist_key, uri) else {
            return Ok(None);
        };
        let inside = match folder {
            Some(folder) => key.starts_with(folder) && key[folder.len()..].starts_with('/'),
            None => !uri.starts_with('/') && !uri.split('/').any(|p| p == ".."),
        };
        match inside {
            true => Ok(Some(link(&key))),
            false => Err(RewriteError::Outside(uri.to_owned())),
        }
    };
    let mut out = String::with_capacity(text.len() * 4);
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || !trimmed.starts_with('#') {
            let linked = match trimmed.is_empty() {
                true => None,
                false => key_of(trimmed)?,
            };
            out.push_str(linked.as_deref().unwrap_or(line));
        } else {
            out.push_str(&with_uri_attribute(line, &mut key_of)?);
        }
        out.push('\n');
    }
    Ok(out)
}

/// A tag line with its `URI="…"` attribute, if any, linked.
fn with_uri_attribute(
    line: &str,
    key_of: &mut impl FnMut(&str) -> Result<Option<String>, RewriteError>,
) -> Result<String, RewriteError> {
    const ATTRIBUTE: &str = "URI=\"";
    let Some(at) = line.find(ATTRIBUTE) else {
        return Ok(line.to_owned());
    };
    let start = at + ATTRIBUTE.len();
    let Some(length) = line[start..].find('"') else {
        return Ok(line.to_owned());
    };
    let uri = &line[start..start + length];
    Ok(match key_of(uri)? {
        Some(linked) => format!("{}{linked}{}", &line[..start], &line[start + length..]),
        None => line.to_owned(),
    })
}

/// Why a playlist could not be read from its bucket.
#[cfg(feature = "storage")]
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The bucket did not answer, or the object is not there.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// The object is not a playlist roomtape reads: too large, or not text.
    #[error("{0}")]
    Invalid(String),
}

/// The text of the playlist `key` in `profile`'s bucket, read in one GET.
#[cfg(feature = "storage")]
pub async fn read(
    objects: &crate::storage::ObjectStore,
    profile: &crate::config::StorageProfile,
    key: &str,
) -> Result<String, ReadError> {
    let read = objects
        .get_range(profile, key, 0, MAX_PLAYLIST_BYTES + 1)
        .await?;
    let size = read.object.size_bytes;
    if size.unsigned_abs() > MAX_PLAYLIST_BYTES {
        return Err(ReadError::Invalid(format!(
            "the playlist is {size} bytes, more than a recording's"
        )));
    }
    String::from_utf8(read.bytes)
        .map_err(|_| ReadError::Invalid("the playlist is not UTF-8 text".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAYLIST: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\nrec_00000.ts\n#EXTINF:1.5,\nrec_00001.ts\n#EXT-X-ENDLIST\n";

    #[test]
    fn a_media_playlist_lists_its_segments_and_their_durations() {
        let found = segments(PLAYLIST).expect("a playlist");
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

    #[test]
    fn the_segment_at_a_time_is_found_with_the_offset_into_it() {
        let found = segments(PLAYLIST).expect("a playlist");
        let at = |seconds| segment_at(&found, seconds).map(|(s, o)| (s.uri.as_str(), o));
        assert_eq!(at(0.35), Some(("rec_00000.ts", 0.35)));
        assert_eq!(at(2.5), Some(("rec_00001.ts", 0.5)));
        assert_eq!(at(99.0), Some(("rec_00001.ts", 0.0)));
        assert_eq!(segment_at(&[], 1.0), None);
    }

    #[test]
    fn a_rewrite_links_every_relative_uri_and_leaves_the_rest() {
        let text = "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2,\nrec_0.ts\n#EXTINF:2,\nhttps://cdn.example.com/x.ts\n#EXT-X-ENDLIST\n";
        let signed = rewrite("r/a/rec.m3u8", text, |key| format!("https://s3/{key}?sig"))
            .expect("rewritten");
        assert_eq!(
            signed,
            "#EXTM3U\n#EXT-X-MAP:URI=\"https://s3/r/a/init.mp4?sig\"\n#EXTINF:2,\nhttps://s3/r/a/rec_0.ts?sig\n#EXTINF:2,\nhttps://cdn.example.com/x.ts\n#EXT-X-ENDLIST\n"
        );
    }

    #[test]
    fn a_rewrite_refuses_uris_outside_the_playlists_folder() {
        for (key, uri) in [
            ("r/a/rec.m3u8", "../b/rec_0.ts"),
            ("r/a/rec.m3u8", "/r/b/rec_0.ts"),
            ("r/a/rec.m3u8", "../ab/rec_0.ts"),
            ("rec.m3u8", "../rec_0.ts"),
            ("rec.m3u8", "/etc/rec_0.ts"),
        ] {
            let text = format!("#EXTM3U\n#EXTINF:2,\n{uri}\n");
            assert_eq!(
                rewrite(key, &text, str::to_owned),
                Err(RewriteError::Outside(uri.to_owned())),
                "{key} {uri}"
            );
        }
        assert!(matches!(
            rewrite("rec.m3u8", "<html>", str::to_owned),
            Err(RewriteError::NotMedia(_))
        ));
    }
}
