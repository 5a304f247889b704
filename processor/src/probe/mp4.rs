//! MP4 (ISO BMFF). The top-level boxes must tile the object exactly, `moov` first (faststart)
//! or last; in a fragmented file each `moof` is read as the walk passes it (it is in the same
//! ranged read as its header) for the fragments' durations. `moov` is read whole: it is the
//! index, with each track's handler, codec, picture size and sample rate, and the chunk
//! offsets, which must all lie inside the object.

use std::collections::BTreeMap;

use super::source::Source;
use super::{
    be_u16, be_u32, be_u64, fourcc, unplayable, AudioTrack, MediaReport, ProbeResult, VideoTrack,
};

/// Top-level box types a file may start with.
const FIRST_BOXES: [&[u8; 4]; 7] = [
    b"ftyp", b"styp", b"moov", b"free", b"skip", b"wide", b"mdat",
];
/// An index larger than this is not read (an hour at 60 fps is a few MB).
const MAX_INDEX_BYTES: u64 = 64 * 1024 * 1024;
/// A walk that finds more top-level boxes than this stops.
const MAX_BOXES: usize = 1_000_000;

/// Whether `head` starts like an MP4: a known first box type.
pub fn sniff(head: &[u8]) -> bool {
    head.get(4..8)
        .is_some_and(|kind| FIRST_BOXES.iter().any(|b| b.as_slice() == kind))
}

/// One box: where it starts, its type, its header's and its whole size.
#[derive(Debug, Clone, Copy)]
struct Header {
    kind: [u8; 4],
    header: u64,
    size: u64,
}

/// The header at the start of `data`, a box of `room` bytes at most (size 0: all of it).
fn header(data: &[u8], room: u64) -> Result<Header, String> {
    let (Some(size32), Some(kind)) = (be_u32(data, 0), data.get(4..8)) else {
        return Err(format!("{} bytes where a box header should be", data.len()));
    };
    let kind: [u8; 4] = kind.try_into().unwrap_or_default();
    let (size, header) = match size32 {
        0 => (room, 8),
        1 => match be_u64(data, 8) {
            Some(size) => (size, 16),
            None => return Err(format!("the {} box's 64-bit size is cut", fourcc(&kind))),
        },
        size => (u64::from(size), 8),
    };
    if size < header {
        return Err(format!(
            "the {} box has an impossible size ({size})",
            fourcc(&kind)
        ));
    }
    Ok(Header { kind, header, size })
}

/// Boxes in memory: each one's type and contents.
type Boxes<'d> = Vec<([u8; 4], &'d [u8])>;

/// The boxes inside `data`, which they must fill exactly.
fn children<'d>(data: &'d [u8], parent: &str) -> Result<Boxes<'d>, String> {
    let mut at = 0usize;
    let mut boxes = Vec::new();
    while at < data.len() {
        let room = (data.len() - at) as u64;
        let found = header(&data[at..], room).map_err(|why| format!("inside {parent}: {why}"))?;
        if found.size > room {
            return Err(format!(
                "the {} box inside {parent} runs {} bytes past it",
                fourcc(&found.kind),
                found.size - room
            ));
        }
        let (from, to) = (at + found.header as usize, at + found.size as usize);
        boxes.push((found.kind, &data[from..to]));
        at = to;
    }
    Ok(boxes)
}

fn child<'d>(boxes: &[([u8; 4], &'d [u8])], kind: &[u8; 4]) -> Option<&'d [u8]> {
    boxes.iter().find(|(k, _)| k == kind).map(|(_, data)| *data)
}

/// One track of `moov`.
#[derive(Debug, Default)]
struct Track {
    id: u32,
    handler: [u8; 4],
    timescale: u32,
    codec: Option<[u8; 4]>,
    width: Option<u32>,
    height: Option<u32>,
    channels: Option<u16>,
    sample_rate: Option<u32>,
    last_chunk: Option<u64>,
}

/// What `moov` says.
#[derive(Debug, Default)]
struct Movie {
    timescale: u32,
    duration: u64,
    /// `mvex/mehd`: a fragmented file's whole duration, when the muxer wrote it.
    fragment_duration: Option<u64>,
    /// `mvex/trex`: each track's default sample duration in fragments.
    default_durations: BTreeMap<u32, u32>,
    tracks: Vec<Track>,
}

fn version(data: &[u8]) -> u8 {
    data.first().copied().unwrap_or_default()
}

fn cut(what: &str) -> String {
    format!("the {what} box is too short")
}

fn movie(moov: &[u8]) -> Result<Movie, String> {
    let boxes = children(moov, "moov")?;
    let mvhd = child(&boxes, b"mvhd").ok_or("moov has no movie header (mvhd)")?;
    let (timescale, duration) = match version(mvhd) {
        1 => (be_u32(mvhd, 20), be_u64(mvhd, 24)),
        _ => (be_u32(mvhd, 12), be_u32(mvhd, 16).map(u64::from)),
    };
    let mut movie = Movie {
        timescale: timescale.ok_or_else(|| cut("mvhd"))?,
        duration: duration.ok_or_else(|| cut("mvhd"))?,
        ..Movie::default()
    };
    if let Some(mvex) = child(&boxes, b"mvex") {
        for (kind, data) in children(mvex, "mvex")? {
            match &kind {
                b"mehd" => {
                    movie.fragment_duration = match version(data) {
                        1 => be_u64(data, 4),
                        _ => be_u32(data, 4).map(u64::from),
                    }
                }
                b"trex" => {
                    if let (Some(id), Some(duration)) = (be_u32(data, 4), be_u32(data, 12)) {
                        movie.default_durations.insert(id, duration);
                    }
                }
                _ => {}
            }
        }
    }
    for (kind, trak) in &boxes {
        if kind == b"trak" {
            movie.tracks.push(track(trak)?);
        }
    }
    Ok(movie)
}

fn track(trak: &[u8]) -> Result<Track, String> {
    let boxes = children(trak, "trak")?;
    let mut track = Track::default();
    if let Some(tkhd) = child(&boxes, b"tkhd") {
        track.id = match version(tkhd) {
            1 => be_u32(tkhd, 20),
            _ => be_u32(tkhd, 12),
        }
        .ok_or_else(|| cut("tkhd"))?;
    }
    let mdia = children(
        child(&boxes, b"mdia").ok_or("a track has no mdia box")?,
        "mdia",
    )?;
    if let Some(mdhd) = child(&mdia, b"mdhd") {
        track.timescale = match version(mdhd) {
            1 => be_u32(mdhd, 20),
            _ => be_u32(mdhd, 12),
        }
        .ok_or_else(|| cut("mdhd"))?;
    }
    if let Some(handler) = child(&mdia, b"hdlr").and_then(|h| h.get(8..12)) {
        track.handler = handler.try_into().unwrap_or_default();
    }
    let Some(minf) = child(&mdia, b"minf") else {
        return Ok(track);
    };
    let minf = children(minf, "minf")?;
    let Some(stbl) = child(&minf, b"stbl") else {
        return Ok(track);
    };
    let stbl = children(stbl, "stbl")?;
    if let Some(entry) = child(&stbl, b"stsd").and_then(|stsd| stsd.get(8..)) {
        let found = header(entry, entry.len() as u64)?;
        let data = entry.get(8..).unwrap_or_default();
        track.codec = Some(found.kind);
        match &track.handler {
            b"vide" => {
                track.width = be_u16(data, 24).map(u32::from);
                track.height = be_u16(data, 26).map(u32::from);
            }
            b"soun" => {
                // AAC's real channel count is in its decoder config (the entry often says 2).
                let configured = data
                    .get(28..)
                    .and_then(|boxes| children(boxes, "the sample entry").ok())
                    .and_then(|boxes| child(&boxes, b"esds").and_then(aac_channels));
                track.channels = configured.or_else(|| be_u16(data, 16));
                track.sample_rate = be_u32(data, 24).map(|rate| rate >> 16);
            }
            _ => {}
        }
    }
    let offsets = |data: &[u8], width: usize| -> Option<u64> {
        let count = be_u32(data, 4)? as usize;
        (0..count)
            .filter_map(|i| match width {
                8 => be_u64(data, 8 + i * 8),
                _ => be_u32(data, 8 + i * 4).map(u64::from),
            })
            .max()
    };
    track.last_chunk = child(&stbl, b"stco")
        .and_then(|stco| offsets(stco, 4))
        .or_else(|| child(&stbl, b"co64").and_then(|co64| offsets(co64, 8)));
    Ok(track)
}

/// The channel configuration in an `esds` box's AudioSpecificConfig (0: not said there).
fn aac_channels(esds: &[u8]) -> Option<u16> {
    // Descriptors: tag, a size of 1 to 4 bytes (7 bits each), contents.
    fn descriptor(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let tag = *data.first()?;
        let (mut size, mut at) = (0usize, 1);
        loop {
            let byte = *data.get(at)?;
            size = (size << 7) | usize::from(byte & 0x7F);
            at += 1;
            if byte & 0x80 == 0 || at == 5 {
                break;
            }
        }
        let body = data.get(at..at + size)?;
        Some((tag, body, &data[at + size..]))
    }
    let (tag, es, _) = descriptor(esds.get(4..)?)?;
    if tag != 0x03 {
        return None;
    }
    let flags = *es.get(2)?;
    let mut at = 3;
    at += if flags & 0x80 != 0 { 2 } else { 0 };
    at += if flags & 0x40 != 0 {
        1 + usize::from(*es.get(at)?)
    } else {
        0
    };
    at += if flags & 0x20 != 0 { 2 } else { 0 };
    let (tag, config, _) = descriptor(es.get(at..)?)?;
    if tag != 0x04 {
        return None;
    }
    let (tag, specific, _) = descriptor(config.get(13..)?)?;
    if tag != 0x05 {
        return None;
    }
    let channels = u16::from((specific.get(1)? >> 3) & 0x0F);
    (channels > 0).then_some(channels)
}

/// Each track's media time covered by the fragments seen so far: the furthest
/// `tfdt + durations` and the sum of durations (for fragments without `tfdt`).
#[derive(Debug, Default)]
struct Fragments {
    end: BTreeMap<u32, u64>,
    sum: BTreeMap<u32, u64>,
}

impl Fragments {
    fn add(&mut self, moof: &[u8], movie: &Movie) -> Result<(), String> {
        for (kind, traf) in children(moof, "moof")? {
            if &kind != b"traf" {
                continue;
            }
            let boxes = children(traf, "traf")?;
            let tfhd = child(&boxes, b"tfhd").ok_or("a track fragment has no tfhd")?;
            let flags = be_u32(tfhd, 0).unwrap_or_default() & 0x00ff_ffff;
            let id = be_u32(tfhd, 4).ok_or_else(|| cut("tfhd"))?;
            let mut at = 8;
            at += if flags & 0x01 != 0 { 8 } else { 0 };
            at += if flags & 0x02 != 0 { 4 } else { 0 };
            let default = match flags & 0x08 != 0 {
                true => be_u32(tfhd, at).ok_or_else(|| cut("tfhd"))?,
                false => movie
                    .default_durations
                    .get(&id)
                    .copied()
                    .unwrap_or_default(),
            };
            let mut duration = 0u64;
            for (kind, trun) in &boxes {
                if kind == b"trun" {
                    duration += run_duration(trun, default)?;
                }
            }
            let start = child(&boxes, b"tfdt").and_then(|tfdt| match version(tfdt) {
                1 => be_u64(tfdt, 4),
                _ => be_u32(tfdt, 4).map(u64::from),
            });
            *self.sum.entry(id).or_default() += duration;
            if let Some(start) = start {
                let end = self.end.entry(id).or_default();
                *end = (*end).max(start + duration);
            }
        }
        Ok(())
    }

    /// The longest track, in seconds.
    fn seconds(&self, movie: &Movie) -> f64 {
        movie
            .tracks
            .iter()
            .filter(|t| t.timescale > 0)
            .map(|t| {
                let end = self.end.get(&t.id).copied().unwrap_or_default();
                let sum = self.sum.get(&t.id).copied().unwrap_or_default();
                end.max(sum) as f64 / f64::from(t.timescale)
            })
            .fold(0.0, f64::max)
    }
}

/// The samples' durations in one `trun`.
fn run_duration(trun: &[u8], default: u32) -> Result<u64, String> {
    let flags = be_u32(trun, 0).unwrap_or_default() & 0x00ff_ffff;
    let count = u64::from(be_u32(trun, 4).ok_or_else(|| cut("trun"))?);
    if flags & 0x100 == 0 {
        return Ok(count * u64::from(default));
    }
    let mut at = 8;
    at += if flags & 0x01 != 0 { 4 } else { 0 };
    at += if flags & 0x04 != 0 { 4 } else { 0 };
    let per_sample = [0x100, 0x200, 0x400, 0x800]
        .iter()
        .filter(|bit| flags & **bit != 0)
        .count()
        * 4;
    let mut total = 0u64;
    for sample in 0..count as usize {
        let duration = be_u32(trun, at + sample * per_sample).ok_or_else(|| cut("trun"))?;
        total += u64::from(duration);
    }
    Ok(total)
}

pub async fn probe<S: Source>(source: &mut S) -> ProbeResult<MediaReport> {
    let size = source.len();
    let mut at = 0u64;
    let mut moov = None;
    let mut media = false;
    let mut fragments = Vec::new();
    let mut boxes = 0usize;
    while at < size {
        boxes += 1;
        if boxes > MAX_BOXES {
            return unplayable(format!("more than {MAX_BOXES} top-level boxes"));
        }
        let room = size - at;
        let found = match header(source.read(at, 16).await?, room) {
            Ok(found) => found,
            Err(why) => {
                return unplayable(format!(
                    "at byte {at} of {size}: {why}: the file is cut short or damaged"
                ))
            }
        };
        let name = fourcc(&found.kind);
        if !found
            .kind
            .iter()
            .all(|b| b.is_ascii_graphic() || *b == b' ')
        {
            return unplayable(format!("at byte {at} of {size}: {name} is not a box type: the boxes do not add up to the object"));
        }
        if found.size > room {
            return unplayable(format!(
                "the {name} box at byte {at} runs {} bytes past the end of the object ({size} bytes): the file is cut short",
                found.size - room
            ));
        }
        match &found.kind {
            b"moov" => moov = Some((at + found.header, found.size - found.header)),
            b"mdat" => media = true,
            b"moof" => {
                if found.size > MAX_INDEX_BYTES {
                    return unplayable(format!("a {} byte moof box", found.size));
                }
                fragments.push(
                    source
                        .read(at + found.header, found.size - found.header)
                        .await?
                        .to_vec(),
                );
            }
            _ => {}
        }
        at += found.size;
    }
    let Some((moov_at, moov_len)) = moov else {
        return unplayable("no moov box: the index a player needs was never written");
    };
    if moov_len > MAX_INDEX_BYTES {
        return unplayable(format!(
            "the moov box is {moov_len} bytes, more than this probe reads"
        ));
    }
    let movie = movie(source.read(moov_at, moov_len).await?).or_else(unplayable)?;
    if !media {
        return unplayable("no mdat box: the file holds no media");
    }
    if let Some(track) = movie
        .tracks
        .iter()
        .find(|t| t.last_chunk.is_some_and(|c| c >= size))
    {
        return unplayable(format!(
            "track {} has a chunk at byte {}, past the end of the object ({size} bytes): the file is cut short",
            track.id,
            track.last_chunk.unwrap_or_default()
        ));
    }
    let mut seconds = match (movie.fragment_duration, movie.timescale) {
        (_, 0) => 0.0,
        (Some(fragmented), timescale) if fragmented > 0 => fragmented as f64 / f64::from(timescale),
        (_, timescale) => movie.duration as f64 / f64::from(timescale),
    };
    if !fragments.is_empty() {
        let mut covered = Fragments::default();
        for moof in &fragments {
            covered.add(moof, &movie).or_else(unplayable)?;
        }
        seconds = seconds.max(covered.seconds(&movie));
    }
    Ok(report(&movie, seconds))
}

fn report(movie: &Movie, duration_seconds: f64) -> MediaReport {
    let video = movie.tracks.iter().find(|t| &t.handler == b"vide");
    let audio = movie.tracks.iter().find(|t| &t.handler == b"soun");
    MediaReport {
        container: "mp4",
        duration_seconds,
        bit_rate: None,
        video: video.map(|t| VideoTrack {
            codec: codec_name(t.codec),
            width: t.width,
            height: t.height,
        }),
        audio: audio.map(|t| AudioTrack {
            codec: codec_name(t.codec),
            sample_rate: t.sample_rate,
            channels: t.channels,
        }),
        segment_count: None,
    }
}

/// A sample entry's type as ffprobe names the codec.
fn codec_name(code: Option<[u8; 4]>) -> String {
    let Some(code) = code else {
        return "unknown".to_owned();
    };
    match &code {
        b"avc1" | b"avc3" => "h264",
        b"hvc1" | b"hev1" => "hevc",
        b"vp08" => "vp8",
        b"vp09" => "vp9",
        b"av01" => "av1",
        b"mp4a" => "aac",
        b"Opus" => "opus",
        b"fLaC" => "flac",
        b"ac-3" => "ac3",
        b"ec-3" => "eac3",
        other => return fourcc(other).to_ascii_lowercase(),
    }
    .to_owned()
}
