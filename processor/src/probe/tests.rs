//! The probe on the fixtures (tests/fixtures/media, made by its make-media.sh), in memory:
//! what it reads agrees with Debian's ffprobe (ffprobe.json), and every cut is found.

use serde_json::Value;

use super::*;

const FASTSTART: &[u8] = include_bytes!("../../../cli/assets/test-video.mp4");
const MOOV_LAST: &[u8] = include_bytes!("../../../tests/fixtures/media/moov-last.mp4");
const FRAGMENTED: &[u8] = include_bytes!("../../../tests/fixtures/media/fragmented.mp4");
const AUDIO_MP4: &[u8] = include_bytes!("../../../tests/fixtures/media/audio-only.mp4");
const WEBM: &[u8] = include_bytes!("../../../tests/fixtures/media/video.webm");
const OGG: &[u8] = include_bytes!("../../../tests/fixtures/media/audio.ogg");
const FFPROBE: &str = include_str!("../../../tests/fixtures/media/ffprobe.json");

const FILES: [(&str, &[u8]); 6] = [
    ("test-video.mp4", FASTSTART),
    ("moov-last.mp4", MOOV_LAST),
    ("fragmented.mp4", FRAGMENTED),
    ("audio-only.mp4", AUDIO_MP4),
    ("video.webm", WEBM),
    ("audio.ogg", OGG),
];

async fn probe(bytes: &[u8]) -> ProbeResult<MediaReport> {
    probe_file(&mut MemorySource(bytes.to_vec())).await
}

async fn unplayable_why(bytes: &[u8]) -> String {
    match probe(bytes).await {
        Err(ProbeError::Unplayable(why)) => why,
        other => panic!("expected unplayable, got {other:?}"),
    }
}

fn stream<'a>(ffprobe: &'a Value, kind: &str) -> Option<&'a Value> {
    ffprobe["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["codec_type"] == kind))
}

#[tokio::test]
async fn every_fixture_reads_as_ffprobe_reads_it() {
    let expected: Value = serde_json::from_str(FFPROBE).expect("ffprobe.json");
    for (name, bytes) in FILES {
        let report = probe(bytes)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let ffprobe = &expected[name];
        let ffprobe_seconds = ffprobe["duration_seconds"].as_f64().expect("duration");
        assert!(
            (report.duration_seconds - ffprobe_seconds).abs() <= 0.1,
            "{name}: {} s, ffprobe {ffprobe_seconds} s",
            report.duration_seconds
        );
        match (stream(ffprobe, "video"), &report.video) {
            (Some(video), Some(found)) => {
                assert_eq!(video["codec_name"], found.codec.as_str(), "{name}");
                assert_eq!(video["width"], found.width.expect("width"), "{name}");
                assert_eq!(video["height"], found.height.expect("height"), "{name}");
            }
            (None, None) => {}
            (video, found) => panic!("{name}: ffprobe {video:?}, probe {found:?}"),
        }
        match (stream(ffprobe, "audio"), &report.audio) {
            (Some(audio), Some(found)) => {
                assert_eq!(audio["codec_name"], found.codec.as_str(), "{name}");
                assert_eq!(
                    audio["sample_rate"],
                    found.sample_rate.expect("rate"),
                    "{name}"
                );
                assert_eq!(
                    audio["channels"],
                    found.channels.expect("channels"),
                    "{name}"
                );
            }
            (None, None) => {}
            (audio, found) => panic!("{name}: ffprobe {audio:?}, probe {found:?}"),
        }
        let bits = bytes.len() as f64 * 8.0 / report.duration_seconds;
        assert_eq!(report.bit_rate, Some(bits.round() as u64), "{name}");
    }
}

#[tokio::test]
async fn a_file_cut_anywhere_is_unplayable_and_says_where() {
    for (name, bytes) in FILES {
        for percent in [10, 60, 99] {
            let cut = &bytes[..bytes.len() * percent / 100];
            let why = unplayable_why(cut).await;
            assert!(
                why.contains("cut short") || why.contains("no moov"),
                "{name} at {percent} %: {why}"
            );
        }
    }
    let why = unplayable_why(&FASTSTART[..FASTSTART.len() * 6 / 10]).await;
    assert!(why.contains("the mdat box at byte"), "{why}");
    assert!(why.contains("past the end of the object"), "{why}");
    let why = unplayable_why(&MOOV_LAST[..MOOV_LAST.len() * 6 / 10]).await;
    assert!(why.contains("mdat"), "{why}");
}

#[tokio::test]
async fn padding_in_a_top_level_free_box_is_still_whole() {
    for bytes in [FASTSTART, MOOV_LAST] {
        let mut padded = bytes.to_vec();
        padded.extend_from_slice(&4096u32.to_be_bytes());
        padded.extend_from_slice(b"free");
        padded.resize(padded.len() + 4088, 0);
        let report = probe(&padded).await.expect("padded");
        assert!((report.duration_seconds - 4.0).abs() < 0.1);
    }
}

#[tokio::test]
async fn bytes_after_the_last_box_or_page_are_found() {
    let mut trailing = FASTSTART.to_vec();
    trailing.extend_from_slice(b"junk");
    let why = unplayable_why(&trailing).await;
    assert!(why.contains("cut short or damaged"), "{why}");
    let mut trailing = OGG.to_vec();
    trailing.extend_from_slice(&[0; 100]);
    let why = unplayable_why(&trailing).await;
    assert!(why.contains("does not end with a whole Ogg page"), "{why}");
    let mut trailing = WEBM.to_vec();
    trailing.extend_from_slice(&[0x42, 0x86, 0x81]);
    let why = unplayable_why(&trailing).await;
    assert!(why.contains("past the end of the object"), "{why}");
}

#[tokio::test]
async fn what_is_no_container_says_what_it_starts_with() {
    let why = unplayable_why(b"recorded").await;
    assert_eq!(
        why,
        "not an MP4, WebM or Ogg file (it starts with 7265636f72646564)"
    );
    let why = unplayable_why(b"").await;
    assert!(why.starts_with("not an MP4"), "{why}");
}

#[tokio::test]
async fn a_damaged_ogg_page_fails_its_checksum() {
    let mut damaged = OGG.to_vec();
    let last = damaged.len() - 1;
    damaged[last] ^= 0xFF;
    let why = unplayable_why(&damaged).await;
    assert!(why.contains("does not end with a whole Ogg page"), "{why}");
}

#[test]
fn the_first_segment_names_its_codecs() {
    let segment = include_bytes!("../../../tests/fixtures/media/hls/rec_00000.ts");
    assert_eq!(ts::codecs(segment), Some((Some("h264"), Some("aac"))));
    assert_eq!(ts::codecs(&segment[188 * 3..]), None);
}
