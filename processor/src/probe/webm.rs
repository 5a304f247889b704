//! WebM (Matroska). The EBML header, then the Segment, whose children (SeekHead, Info,
//! Tracks, Clusters, Cues, …) must run to its end, and it to the object's end, with no element
//! running past. Children of unknown size (a live-written Cluster) end where an element that
//! cannot be inside them starts. Info gives the duration (else the last Cluster's last block),
//! Tracks the codecs, picture size and sample rate.

use super::source::Source;
use super::{be_u64, hex, unplayable, AudioTrack, MediaReport, ProbeResult, VideoTrack};

const EBML: u32 = 0x1A45_DFA3;
const DOC_TYPE: u32 = 0x4282;
const SEGMENT: u32 = 0x1853_8067;
const INFO: u32 = 0x1549_A966;
const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
const DURATION: u32 = 0x4489;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_TYPE: u32 = 0x83;
const CODEC_ID: u32 = 0x86;
const VIDEO: u32 = 0xE0;
const PIXEL_WIDTH: u32 = 0xB0;
const PIXEL_HEIGHT: u32 = 0xBA;
const AUDIO: u32 = 0xE1;
const SAMPLING_FREQUENCY: u32 = 0xB5;
const CHANNELS: u32 = 0x9F;
const CLUSTER: u32 = 0x1F43_B675;
const TIMESTAMP: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;
const BLOCK_GROUP: u32 = 0xA0;
const BLOCK: u32 = 0xA1;
/// What may be inside a Cluster (Timestamp, SilentTracks, Position, PrevSize, SimpleBlock,
/// BlockGroup, EncryptedBlock, CRC-32, Void): anything else ends one of unknown size.
const CLUSTER_CHILDREN: [u32; 9] = [0xE7, 0x5854, 0xA7, 0xAB, 0xA3, 0xA0, 0xAF, 0xBF, 0xEC];
/// Info, Tracks or a Cluster larger than this is not read.
const MAX_ELEMENT_BYTES: u64 = 64 * 1024 * 1024;

pub fn sniff(head: &[u8]) -> bool {
    head.starts_with(&EBML.to_be_bytes())
}

/// An element's ID (its marker bits kept, as the spec writes IDs) and the length of it.
fn element_id(data: &[u8]) -> Option<(u32, usize)> {
    let first = *data.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 4 {
        return None;
    }
    let bytes = data.get(..len)?;
    Some((bytes.iter().fold(0, |id, b| (id << 8) | u32::from(*b)), len))
}

/// A data size (`None` inside: unknown, all ones) and the length of it.
fn data_size(data: &[u8]) -> Option<(Option<u64>, usize)> {
    let first = *data.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let bytes = data.get(..len)?;
    let mask = if len == 8 { 0 } else { 0xFFu8 >> len };
    let value = bytes[1..]
        .iter()
        .fold(u64::from(first & mask), |v, b| (v << 8) | u64::from(*b));
    let unknown = value == (1u64 << (7 * len)) - 1;
    Some(((!unknown).then_some(value), len))
}

/// One element header: its ID, header length and data size (`None`: unknown).
#[derive(Debug, Clone, Copy)]
struct Header {
    id: u32,
    header: u64,
    size: Option<u64>,
}

fn header(data: &[u8]) -> Option<Header> {
    let (id, id_len) = element_id(data)?;
    let (size, size_len) = data_size(data.get(id_len..)?)?;
    Some(Header {
        id,
        header: (id_len + size_len) as u64,
        size,
    })
}

/// The elements inside `data` (all of known size), which they must fill.
fn elements(data: &[u8]) -> Result<Vec<(u32, &[u8])>, String> {
    let mut at = 0usize;
    let mut found = Vec::new();
    while at < data.len() {
        let element = header(&data[at..]).ok_or_else(|| {
            format!(
                "an unreadable element header ({})",
                hex(&data[at..data.len().min(at + 8)])
            )
        })?;
        let size = element
            .size
            .ok_or("an element of unknown size inside another")?;
        let from = at + element.header as usize;
        let to = from
            .checked_add(usize::try_from(size).unwrap_or(usize::MAX))
            .filter(|to| *to <= data.len())
            .ok_or_else(|| format!("element {:#x} runs past its parent", element.id))?;
        found.push((element.id, &data[from..to]));
        at = to;
    }
    Ok(found)
}

fn unsigned(data: &[u8]) -> u64 {
    data.iter().take(8).fold(0, |v, b| (v << 8) | u64::from(*b))
}

fn float(data: &[u8]) -> Option<f64> {
    match data.len() {
        4 => Some(f64::from(f32::from_be_bytes(data.try_into().ok()?))),
        8 => Some(f64::from_bits(be_u64(data, 0)?)),
        _ => None,
    }
}

fn name_of(id: u32) -> String {
    match id {
        SEGMENT => "Segment".to_owned(),
        INFO => "Info".to_owned(),
        TRACKS => "Tracks".to_owned(),
        CLUSTER => "Cluster".to_owned(),
        0x114D_9B74 => "SeekHead".to_owned(),
        0x1C53_BB6B => "Cues".to_owned(),
        0x1254_C367 => "Tags".to_owned(),
        0xEC => "Void".to_owned(),
        other => format!("{other:#x}"),
    }
}

/// What the walk keeps of the Segment.
#[derive(Debug, Default)]
struct Segment {
    timestamp_scale: Option<u64>,
    duration: Option<f64>,
    tracks: Vec<Track>,
    /// Where the last Cluster's data starts and ends.
    last_cluster: Option<(u64, u64)>,
}

#[derive(Debug, Default)]
struct Track {
    kind: u64,
    codec: String,
    width: Option<u32>,
    height: Option<u32>,
    sample_rate: Option<u32>,
    channels: Option<u16>,
}

pub async fn probe<S: Source>(source: &mut S) -> ProbeResult<MediaReport> {
    let size = source.len();
    let Some(ebml) = header(source.read(0, 12).await?) else {
        return unplayable("an unreadable EBML header");
    };
    let ebml_end = ebml.header + ebml.size.unwrap_or(u64::MAX);
    if ebml_end > size {
        return unplayable(
            "the EBML header runs past the end of the object: the file is cut short",
        );
    }
    let doc = source.read(ebml.header, ebml_end - ebml.header).await?;
    let doc_type = elements(doc)
        .ok()
        .and_then(|found| found.into_iter().find(|(id, _)| *id == DOC_TYPE))
        .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
        .unwrap_or_default();
    if doc_type != "webm" && doc_type != "matroska" {
        return unplayable(format!(
            "an EBML file of type {doc_type:?}, not WebM or Matroska"
        ));
    }
    let mut segment = Segment::default();
    let mut at = ebml_end;
    while at < size {
        let Some(top) = header(source.read(at, 12).await?) else {
            return unplayable(format!(
                "an unreadable element at byte {at} of {size}: the file is cut short or damaged"
            ));
        };
        let data_start = at + top.header;
        let end = match top.size {
            Some(data) => data_start.saturating_add(data),
            None if top.id == SEGMENT => size,
            None => {
                return unplayable(format!(
                    "the top-level {} element at byte {at} has an unknown size",
                    name_of(top.id)
                ))
            }
        };
        if end > size {
            return unplayable(format!(
                "the {} element at byte {at} runs {} bytes past the end of the object ({size} bytes): the file is cut short",
                name_of(top.id),
                end - size
            ));
        }
        if top.id == SEGMENT {
            walk_segment(source, data_start, end, &mut segment).await?;
        }
        at = end;
    }
    report(source, segment).await
}

/// Walks the Segment's children from `at` to `end`, reading Info and Tracks.
async fn walk_segment<S: Source>(
    source: &mut S,
    mut at: u64,
    end: u64,
    segment: &mut Segment,
) -> ProbeResult<()> {
    while at < end {
        let Some(element) = header(source.read(at, 12).await?) else {
            return unplayable(format!("an unreadable element at byte {at} of the Segment: the file is cut short or damaged"));
        };
        let data_start = at + element.header;
        let element_end = match element.size {
            Some(data) => data_start.saturating_add(data),
            None if element.id == CLUSTER => cluster_end(source, data_start, end).await?,
            None => {
                return unplayable(format!(
                    "the {} element at byte {at} has an unknown size",
                    name_of(element.id)
                ))
            }
        };
        if element_end > end {
            return unplayable(format!(
                "the {} element at byte {at} runs {} bytes past the end of its Segment: the file is cut short",
                name_of(element.id),
                element_end - end
            ));
        }
        let data_len = element_end - data_start;
        match element.id {
            INFO | TRACKS if data_len > MAX_ELEMENT_BYTES => {
                return unplayable(format!("a {data_len} byte {} element", name_of(element.id)))
            }
            INFO => info(source.read(data_start, data_len).await?, segment).or_else(unplayable)?,
            TRACKS => {
                segment.tracks =
                    tracks(source.read(data_start, data_len).await?).or_else(unplayable)?
            }
            CLUSTER => segment.last_cluster = Some((data_start, element_end)),
            _ => {}
        }
        at = element_end;
    }
    Ok(())
}

/// Where a Cluster of unknown size ends: at the first element that cannot be inside it.
async fn cluster_end<S: Source>(source: &mut S, mut at: u64, end: u64) -> ProbeResult<u64> {
    while at < end {
        let Some(element) = header(source.read(at, 12).await?) else {
            return unplayable(format!(
                "an unreadable element at byte {at}: the file is cut short or damaged"
            ));
        };
        if !CLUSTER_CHILDREN.contains(&element.id) {
            return Ok(at);
        }
        let Some(data) = element.size else {
            return unplayable(format!("a block of unknown size at byte {at}"));
        };
        at = at + element.header + data;
    }
    Ok(at)
}

fn info(data: &[u8], segment: &mut Segment) -> Result<(), String> {
    for (id, value) in elements(data)? {
        match id {
            TIMESTAMP_SCALE => segment.timestamp_scale = Some(unsigned(value)),
            DURATION => segment.duration = float(value),
            _ => {}
        }
    }
    Ok(())
}

fn tracks(data: &[u8]) -> Result<Vec<Track>, String> {
    let mut found = Vec::new();
    for (id, entry) in elements(data)? {
        if id != TRACK_ENTRY {
            continue;
        }
        let mut track = Track::default();
        for (id, value) in elements(entry)? {
            match id {
                TRACK_TYPE => track.kind = unsigned(value),
                CODEC_ID => {
                    track.codec = String::from_utf8_lossy(value)
                        .trim_end_matches('\0')
                        .to_owned()
                }
                VIDEO => {
                    for (id, value) in elements(value)? {
                        match id {
                            PIXEL_WIDTH => track.width = u32::try_from(unsigned(value)).ok(),
                            PIXEL_HEIGHT => track.height = u32::try_from(unsigned(value)).ok(),
                            _ => {}
                        }
                    }
                }
                AUDIO => {
                    for (id, value) in elements(value)? {
                        match id {
                            SAMPLING_FREQUENCY => {
                                track.sample_rate = float(value).map(|hz| hz.round() as u32)
                            }
                            CHANNELS => track.channels = u16::try_from(unsigned(value)).ok(),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        found.push(track);
    }
    Ok(found)
}

/// The last Cluster's end time, in timestamp units: its Timestamp plus its last block's.
async fn last_block_time<S: Source>(source: &mut S, (from, to): (u64, u64)) -> ProbeResult<u64> {
    if to - from > MAX_ELEMENT_BYTES {
        return unplayable("the last Cluster is too large to read");
    }
    let data = source.read(from, to - from).await?;
    let mut cluster_time = 0u64;
    let mut last = 0i64;
    let block_time = |block: &[u8]| -> Option<i64> {
        let (_, track_len) = data_size(block)?;
        let bytes = block.get(track_len..track_len + 2)?;
        Some(i64::from(i16::from_be_bytes(bytes.try_into().ok()?)))
    };
    for (id, value) in elements(data).or_else(unplayable)? {
        match id {
            TIMESTAMP => cluster_time = unsigned(value),
            SIMPLE_BLOCK => last = last.max(block_time(value).unwrap_or_default()),
            BLOCK_GROUP => {
                let inner = elements(value).or_else(unplayable)?;
                if let Some((_, block)) = inner.iter().find(|(id, _)| *id == BLOCK) {
                    last = last.max(block_time(block).unwrap_or_default());
                }
            }
            _ => {}
        }
    }
    Ok(cluster_time.saturating_add_signed(last))
}

async fn report<S: Source>(source: &mut S, segment: Segment) -> ProbeResult<MediaReport> {
    if segment.tracks.is_empty() {
        return unplayable("no Tracks element: the file has no tracks");
    }
    let scale = segment.timestamp_scale.unwrap_or(1_000_000) as f64 / 1e9;
    let duration_seconds = match (segment.duration, segment.last_cluster) {
        (Some(duration), _) => duration * scale,
        (None, Some(cluster)) => last_block_time(source, cluster).await? as f64 * scale,
        (None, None) => return unplayable("no Clusters: the file holds no media"),
    };
    if segment.last_cluster.is_none() {
        return unplayable("no Clusters: the file holds no media");
    }
    let video = segment.tracks.iter().find(|t| t.kind == 1);
    let audio = segment.tracks.iter().find(|t| t.kind == 2);
    Ok(MediaReport {
        container: "webm",
        duration_seconds,
        bit_rate: None,
        video: video.map(|t| VideoTrack {
            codec: codec_name(&t.codec),
            width: t.width,
            height: t.height,
        }),
        audio: audio.map(|t| AudioTrack {
            codec: codec_name(&t.codec),
            sample_rate: t.sample_rate,
            channels: t.channels,
        }),
        segment_count: None,
    })
}

/// A Matroska CodecID as ffprobe names the codec.
fn codec_name(codec_id: &str) -> String {
    match codec_id {
        "V_VP8" => "vp8",
        "V_VP9" => "vp9",
        "V_AV1" => "av1",
        "V_MPEG4/ISO/AVC" => "h264",
        "V_MPEGH/ISO/HEVC" => "hevc",
        "A_OPUS" => "opus",
        "A_VORBIS" => "vorbis",
        "A_FLAC" => "flac",
        id if id.starts_with("A_AAC") => "aac",
        other => return other.to_ascii_lowercase(),
    }
    .to_owned()
}
