//! ffmpeg, for the one thing roomtape cannot do in its own code: decode a video frame. The
//! processor takes a thumbnail from a recording it did not start (LiveKit's image output makes
//! the others'); `roomtape doctor` checks that the binary runs. ffmpeg reads the recording
//! over a presigned URL (ranged reads, as a player would) and writes the JPEG to its standard
//! output: nothing is written to disk, so the processor's file system may stay read-only.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::redact::redact;

/// How long taking one frame may take, reads over the network included.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `ffmpeg -version` may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long ffmpeg waits for the bucket on one read, in microseconds: a stalled read fails
/// rather than holding the frame until [`FRAME_TIMEOUT`].
const READ_TIMEOUT_US: &str = "15000000";
/// The most of ffmpeg's error output an error keeps.
const STDERR_KEPT: usize = 400;

/// Why ffmpeg did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum FfmpegError {
    #[error(
        "ffmpeg not found at {}: install it (Debian: apt-get install ffmpeg) or set FFMPEG_PATH",
        .0.display()
    )]
    NotFound(PathBuf),
    #[error("cannot run ffmpeg at {}", .path.display())]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// ffmpeg exited with an error; `stderr` is its last words, credentials redacted.
    #[error("ffmpeg failed ({status}): {stderr}")]
    Failed { status: String, stderr: String },
    #[error("ffmpeg did not finish within {0:?}")]
    TimedOut(Duration),
    #[error("ffmpeg wrote no JPEG")]
    NoJpeg,
}

/// The first line of `ffmpeg -version` (`ffmpeg version 5.1.6-0+deb12u1 …`).
pub async fn version(ffmpeg: &Path) -> Result<String, FfmpegError> {
    let out = run(ffmpeg, &["-hide_banner", "-version"], VERSION_TIMEOUT).await?;
    let text = String::from_utf8_lossy(&out);
    Ok(text.lines().next().unwrap_or_default().trim().to_owned())
}

/// How ffmpeg gets to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    /// Through the container's index (MP4, WebM): it reads the index, then only what decoding
    /// from the key frame before the time takes.
    Index,
    /// By decoding from the start, for a short MPEG-TS segment: that demuxer seeks by bytes,
    /// and in a segment of a few seconds lands past every frame.
    Decode,
}

/// The frame at `at_seconds` of the video at `url`, as a JPEG at the video's own size.
pub async fn frame(
    ffmpeg: &Path,
    url: &str,
    at_seconds: f64,
    seek: Seek,
) -> Result<Vec<u8>, FfmpegError> {
    let at = format!("{:.3}", at_seconds.max(0.0));
    let mut args = vec!["-nostdin", "-hide_banner", "-loglevel", "error"];
    args.extend(["-rw_timeout", READ_TIMEOUT_US]);
    // Before the input, `-ss` seeks it; after, frames before the time are decoded and dropped.
    if seek == Seek::Index {
        args.extend(["-ss", &at]);
    }
    args.extend(["-i", url]);
    if seek == Seek::Decode {
        args.extend(["-ss", &at]);
    }
    args.extend([
        "-map",
        "0:v:0",
        "-frames:v",
        "1",
        "-f",
        "image2pipe",
        "-c:v",
        "mjpeg",
        "-q:v",
        "3",
        "pipe:1",
    ]);
    let jpeg = run(ffmpeg, &args, FRAME_TIMEOUT).await?;
    match jpeg.starts_with(&[0xFF, 0xD8]) {
        true => Ok(jpeg),
        false => Err(FfmpegError::NoJpeg),
    }
}

/// Runs ffmpeg with `args`; its standard output if it exits 0 within `timeout` (it is killed
/// otherwise).
async fn run(ffmpeg: &Path, args: &[&str], timeout: Duration) -> Result<Vec<u8>, FfmpegError> {
    let child = Command::new(ffmpeg)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => FfmpegError::NotFound(ffmpeg.to_owned()),
            _ => FfmpegError::Spawn {
                path: ffmpeg.to_owned(),
                source,
            },
        })?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| FfmpegError::TimedOut(timeout))?
        .map_err(|source| FfmpegError::Spawn {
            path: ffmpeg.to_owned(),
            source,
        })?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail = last_chars(stderr.trim(), STDERR_KEPT);
    Err(FfmpegError::Failed {
        status: output.status.to_string(),
        // ffmpeg names the URL it could not read, signature and all.
        stderr: redact(tail).into_owned(),
    })
}

/// The last `count` characters of `text`.
fn last_chars(text: &str, count: usize) -> &str {
    let skip = text.chars().count().saturating_sub(count);
    text.char_indices()
        .nth(skip)
        .map_or(text, |(at, _)| &text[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_ffmpeg_says_how_to_get_one() {
        let missing = Path::new("/nonexistent/roomtape/ffmpeg");
        let error = version(missing).await.expect_err("not there");
        assert!(matches!(error, FfmpegError::NotFound(_)), "{error:?}");
        assert!(error.to_string().contains("FFMPEG_PATH"), "{error}");
    }

    #[test]
    fn only_the_end_of_a_long_error_is_kept() {
        assert_eq!(last_chars("abcdef", 3), "def");
        assert_eq!(last_chars("ab", 3), "ab");
        assert_eq!(last_chars("éèà", 2), "èà");
    }
}
