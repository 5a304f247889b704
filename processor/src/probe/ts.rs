//! MPEG-TS, as far as an HLS segment's codecs go: the program map table names each
//! elementary stream's type (no picture size: that is in the H.264 parameter sets).

const PACKET: usize = 188;
const SYNC: u8 = 0x47;

/// The stream types of the first program in `data` (the start of a segment), as ffprobe names
/// their codecs: (video, audio). `None` when no program map table is in `data`.
pub fn codecs(data: &[u8]) -> Option<(Option<&'static str>, Option<&'static str>)> {
    let mut pmt_pid = None;
    for packet in data.chunks_exact(PACKET) {
        if packet[0] != SYNC || packet[1] & 0x40 == 0 {
            continue;
        }
        let pid = (u16::from(packet[1] & 0x1F) << 8) | u16::from(packet[2]);
        let Some(section) = section(packet) else {
            continue;
        };
        if pid == 0 && section.first() == Some(&0x00) {
            // PAT: the first program with a number (0 is the network PID).
            pmt_pid = programs(section)
                .find(|(number, _)| *number != 0)
                .map(|(_, pid)| pid);
        } else if Some(pid) == pmt_pid && section.first() == Some(&0x02) {
            return Some(streams(section));
        }
    }
    None
}

/// The section a packet's payload starts (after the adaptation field and pointer field),
/// cut to its `section_length`.
fn section(packet: &[u8]) -> Option<&[u8]> {
    let control = (packet[3] >> 4) & 0x3;
    let mut at = 4;
    if control == 0b10 || control == 0 {
        return None;
    }
    if control == 0b11 {
        at += 1 + usize::from(*packet.get(4)?);
    }
    let pointer = usize::from(*packet.get(at)?);
    let start = at + 1 + pointer;
    let length =
        (usize::from(packet.get(start + 1)? & 0x0F) << 8) | usize::from(*packet.get(start + 2)?);
    packet.get(start..start + 3 + length)
}

/// (program number, program map PID) of a PAT section.
fn programs(section: &[u8]) -> impl Iterator<Item = (u16, u16)> + '_ {
    let entries = section
        .get(8..section.len().saturating_sub(4))
        .unwrap_or_default();
    entries.chunks_exact(4).map(|e| {
        (
            u16::from_be_bytes([e[0], e[1]]),
            (u16::from(e[2] & 0x1F) << 8) | u16::from(e[3]),
        )
    })
}

fn streams(section: &[u8]) -> (Option<&'static str>, Option<&'static str>) {
    let (mut video, mut audio) = (None, None);
    let info_len = section
        .get(10..12)
        .map_or(0, |b| (usize::from(b[0] & 0x0F) << 8) | usize::from(b[1]));
    let mut at = 12 + info_len;
    let end = section.len().saturating_sub(4);
    while at + 5 <= end {
        let kind = section[at];
        let es_len = (usize::from(section[at + 3] & 0x0F) << 8) | usize::from(section[at + 4]);
        let descriptors = section.get(at + 5..at + 5 + es_len).unwrap_or_default();
        match kind {
            0x1B => video = video.or(Some("h264")),
            0x24 => video = video.or(Some("hevc")),
            0x01 | 0x02 => video = video.or(Some("mpeg2video")),
            0x0F | 0x11 => audio = audio.or(Some("aac")),
            0x03 | 0x04 => audio = audio.or(Some("mp3")),
            0x81 => audio = audio.or(Some("ac3")),
            // Opus is private data with an "Opus" registration descriptor.
            0x06 if descriptors.windows(4).any(|w| w == b"Opus") => audio = audio.or(Some("opus")),
            _ => {}
        }
        at += 5 + es_len;
    }
    (video, audio)
}
