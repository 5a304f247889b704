//! Thumbnails: a picture of each video recording, chosen as it becomes `ready`.
//!
//! - A recording roomtape started asked LiveKit for an image output ([`images`]): its second
//!   image, one capture interval in (the first is taken while the recorder's page loads, often
//!   black).
//! - Otherwise (an egress started elsewhere, or one shorter than the interval) a frame of the
//!   file near 10 % of its length ([`frame`], ffmpeg over a presigned URL), stored beside it as
//!   `<stem>.thumbnail.jpeg`; failing that, the sequence's one image.
//! - An audio-only recording gets none.
//!
//! A thumbnail never holds a recording back: one that cannot be made leaves the recording
//! `ready` without it, the cause in `metadata.thumbnail_error`.

mod frame;
pub mod images;

use roomtape_shared::config::{StorageProfile, ThumbnailSettings};
use roomtape_shared::db::recordings::StoredThumbnail;
use roomtape_shared::ffmpeg::FfmpegError;
use roomtape_shared::storage::{self, ObjectStore, StorageError};

use crate::egress::plan::{EgressPlan, ReportedFile};
use crate::probe::MediaReport;
pub use images::{image_output, ImageSequence};

/// Where in a file (of its length) a frame is taken.
const FRAME_AT: f64 = 0.1;

/// Why a recording got no thumbnail.
#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    #[error("the bucket did not answer")]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Ffmpeg(#[from] FfmpegError),
    #[error("its HLS playlist cannot be read: {0}")]
    Playlist(String),
}

/// Chooses or makes recordings' thumbnails.
#[derive(Debug, Clone)]
pub struct Thumbnails {
    objects: ObjectStore,
    settings: ThumbnailSettings,
}

impl Thumbnails {
    pub fn new(objects: ObjectStore, settings: ThumbnailSettings) -> Self {
        Self { objects, settings }
    }

    /// The image output a start asks LiveKit for, if thumbnails are on (see [`image_output`]).
    pub fn image_output(
        &self,
        request: &roomtape_shared::events::proto::RoomCompositeEgressRequest,
        now_ms: u64,
    ) -> Option<roomtape_shared::events::proto::ImageOutput> {
        let interval = self.settings.capture_interval_secs;
        self.settings
            .enabled
            .then(|| image_output(request, interval, now_ms))
            .flatten()
    }

    /// The thumbnail of the recording `plan` finishes, whose first file is `file` in `profile`'s
    /// bucket (`report`: what the probe found in it, when it ran). `None` when it should have
    /// none: thumbnails are off, or it has no video.
    pub async fn of(
        &self,
        plan: &EgressPlan,
        profile: &StorageProfile,
        file: &ReportedFile,
        report: Option<&MediaReport>,
    ) -> Result<Option<StoredThumbnail>, ThumbnailError> {
        let video = report.map_or(plan.tracks.video, |report| report.video.is_some());
        if !self.settings.enabled || !video {
            return Ok(None);
        }
        let mut first_images = Vec::new();
        for sequence in plan.images.iter().filter(|s| s.count > 0) {
            let under = format!("{}_", sequence.prefix);
            first_images = self.objects.first_keys(profile, &under, 2).await?;
            if !first_images.is_empty() {
                break;
            }
        }
        if let Some(second) = first_images.get(1) {
            return Ok(Some(stored(profile, second)));
        }
        let duration = report
            .map(|r| r.duration_seconds)
            .or(file.duration_seconds)
            .or(plan.update.duration_seconds)
            .unwrap_or_default();
        let taken = frame::take(
            &self.objects,
            &self.settings,
            profile,
            file,
            duration * FRAME_AT,
        );
        match (taken.await, first_images.first()) {
            (Ok(key), _) => Ok(Some(stored(profile, &key))),
            (Err(error), Some(first)) => {
                tracing::warn!(error = %roomtape_shared::Chain(&error), "no frame taken: the thumbnail is the image sequence's only image");
                Ok(Some(stored(profile, first)))
            }
            (Err(error), None) => Err(error),
        }
    }
}

fn stored(profile: &StorageProfile, key: &str) -> StoredThumbnail {
    StoredThumbnail {
        key: key.to_owned(),
        url: storage::public_url(profile, key).map(String::from),
    }
}
