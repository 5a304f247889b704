//! Ogg (Opus, Vorbis). The first pages (beginning of stream) name each stream's codec; the
//! object must end with a whole page, its checksum right and its end-of-stream flag set: a
//! file cut anywhere ends mid-page or without that flag. The duration is the audio stream's
//! last granule position. Only the head and the last 64 KiB are read (pages are contiguous:
//! walking them all would read the whole file).

use super::source::Source;
use super::{unplayable, AudioTrack, MediaReport, ProbeResult, VideoTrack};

const CAPTURE: &[u8; 4] = b"OggS";
const BEGINNING: u8 = 0x02;
const END_OF_STREAM: u8 = 0x04;
/// The largest page: header, 255 lacing values, 255 × 255 bytes.
const MAX_PAGE: u64 = 27 + 255 + 255 * 255;

pub fn sniff(head: &[u8]) -> bool {
    head.starts_with(CAPTURE)
}

/// One page's header fields.
#[derive(Debug, Clone, Copy)]
struct Page {
    flags: u8,
    granule: i64,
    serial: u32,
    /// Header and body.
    len: usize,
    header: usize,
}

/// The page at the start of `data`, if a whole one is there (`Err`: how long it claims to be).
fn page(data: &[u8]) -> Result<Page, Option<usize>> {
    if !data.starts_with(CAPTURE) || data.get(4) != Some(&0) {
        return Err(None);
    }
    let Some(fixed) = data.get(..27) else {
        return Err(Some(27));
    };
    let segments = usize::from(fixed[26]);
    let Some(lacing) = data.get(27..27 + segments) else {
        return Err(Some(27 + segments));
    };
    let header = 27 + segments;
    let len = header + lacing.iter().map(|l| usize::from(*l)).sum::<usize>();
    if data.len() < len {
        return Err(Some(len));
    }
    let le = |at: usize, n: usize| {
        data[at..at + n]
            .iter()
            .rev()
            .fold(0u64, |v, b| (v << 8) | u64::from(*b))
    };
    Ok(Page {
        flags: fixed[5],
        granule: le(6, 8) as i64,
        serial: le(14, 4) as u32,
        len,
        header,
    })
}

/// Ogg's CRC-32 (polynomial 0x04C11DB7, not reflected), with the checksum field as zeros.
fn checksum_ok(page: &[u8]) -> bool {
    let mut crc = 0u32;
    for (i, byte) in page.iter().enumerate() {
        let byte = if (22..26).contains(&i) { 0 } else { *byte };
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    page.get(22..26)
        .is_some_and(|stored| stored == crc.to_le_bytes())
}

/// A stream, from its first packet.
#[derive(Debug, Clone)]
enum Stream {
    Opus {
        serial: u32,
        channels: u16,
        pre_skip: u64,
    },
    Vorbis {
        serial: u32,
        channels: u16,
        rate: u32,
    },
    Video {
        codec: &'static str,
    },
    Other,
}

fn stream(serial: u32, packet: &[u8]) -> Stream {
    if packet.starts_with(b"OpusHead") {
        Stream::Opus {
            serial,
            channels: u16::from(packet.get(9).copied().unwrap_or_default()),
            pre_skip: u64::from(
                packet
                    .get(10..12)
                    .map_or(0, |b| u16::from_le_bytes([b[0], b[1]])),
            ),
        }
    } else if packet.starts_with(b"\x01vorbis") {
        Stream::Vorbis {
            serial,
            channels: u16::from(packet.get(11).copied().unwrap_or_default()),
            rate: packet
                .get(12..16)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        }
    } else if packet.starts_with(b"\x80theora") {
        Stream::Video { codec: "theora" }
    } else if packet.starts_with(b"OVP80") {
        Stream::Video { codec: "vp8" }
    } else {
        Stream::Other
    }
}

pub async fn probe<S: Source>(source: &mut S) -> ProbeResult<MediaReport> {
    let size = source.len();
    let head = source.read(0, MAX_PAGE).await?.to_vec();
    let mut streams = Vec::new();
    let mut at = 0usize;
    while let Ok(found) = page(&head[at..]) {
        if found.flags & BEGINNING == 0 {
            break;
        }
        let page_bytes = &head[at..at + found.len];
        if !checksum_ok(page_bytes) {
            return unplayable(format!("the Ogg page at byte {at} has a wrong checksum"));
        }
        streams.push(stream(found.serial, &page_bytes[found.header..]));
        at += found.len;
    }
    if streams.is_empty() {
        return unplayable("the first Ogg page does not begin a stream");
    }
    let tail_start = size.saturating_sub(MAX_PAGE);
    let tail = source.read(tail_start, size - tail_start).await?.to_vec();
    last_page(&tail, tail_start, size)?;
    let audio = streams
        .iter()
        .find(|s| matches!(s, Stream::Opus { .. } | Stream::Vorbis { .. }));
    let granule_of = |serial: u32| {
        pages_in(&tail)
            .filter(|p| p.serial == serial && p.granule >= 0)
            .map(|p| p.granule as u64)
            .last()
    };
    let (duration_seconds, audio_track) = match audio {
        Some(Stream::Opus {
            serial,
            channels,
            pre_skip,
        }) => (
            granule_of(*serial).map_or(0.0, |g| g.saturating_sub(*pre_skip) as f64 / 48_000.0),
            Some(AudioTrack {
                codec: "opus".into(),
                sample_rate: Some(48_000),
                channels: Some(*channels),
            }),
        ),
        Some(Stream::Vorbis {
            serial,
            channels,
            rate,
        }) => (
            granule_of(*serial).map_or(0.0, |g| match rate {
                0 => 0.0,
                rate => g as f64 / f64::from(*rate),
            }),
            Some(AudioTrack {
                codec: "vorbis".into(),
                sample_rate: Some(*rate),
                channels: Some(*channels),
            }),
        ),
        _ => (0.0, None),
    };
    let video = streams.iter().find_map(|s| match s {
        Stream::Video { codec } => Some(VideoTrack {
            codec: (*codec).to_owned(),
            width: None,
            height: None,
        }),
        _ => None,
    });
    Ok(MediaReport {
        container: "ogg",
        duration_seconds,
        bit_rate: None,
        video,
        audio: audio_track,
        segment_count: None,
    })
}

/// Every whole page with a right checksum in `tail`, wherever they start.
fn pages_in(tail: &[u8]) -> impl Iterator<Item = Page> + '_ {
    (0..tail.len().saturating_sub(3))
        .filter(|at| tail[*at..].starts_with(CAPTURE))
        .filter_map(|at| {
            page(&tail[at..])
                .ok()
                .filter(|p| checksum_ok(&tail[at..at + p.len]))
        })
}

/// Whether the object ends with a whole page, its checksum right, ending its stream.
fn last_page(tail: &[u8], tail_start: u64, size: u64) -> ProbeResult<()> {
    let starts: Vec<usize> = (0..tail.len().saturating_sub(3))
        .filter(|at| tail[*at..].starts_with(CAPTURE))
        .collect();
    for at in starts.iter().rev() {
        match page(&tail[*at..]) {
            Ok(found) if at + found.len == tail.len() && checksum_ok(&tail[*at..]) => {
                if found.flags & END_OF_STREAM == 0 {
                    return unplayable(format!(
                        "the last Ogg page (byte {}) does not end its stream: the file is cut short",
                        tail_start + *at as u64
                    ));
                }
                return Ok(());
            }
            Err(Some(claimed)) => {
                return unplayable(format!(
                    "the last Ogg page (byte {}) runs {} bytes past the end of the object ({size} bytes): the file is cut short",
                    tail_start + *at as u64,
                    claimed - (tail.len() - at)
                ));
            }
            // A capture pattern inside a packet, or a page that does not end the object.
            _ => {}
        }
    }
    unplayable("the object does not end with a whole Ogg page: the file is cut short or damaged")
}
