//! Where a probe reads from: an object in a bucket, read in ranged GETs of at least
//! [`WINDOW`] bytes (a box or element header and what follows it usually come in one), or
//! bytes in memory (unit tests).

use std::future::Future;

use roomtape_shared::config::StorageProfile;
use roomtape_shared::storage::{ObjectStore, StorageError};

/// The smallest ranged GET: enough for the first headers and, in a faststart MP4 or a WebM
/// file, the index after them (a few KB for minutes of recording). Larger reads cost the
/// bucket more for bytes the probe skips (docs/benchmarks.md, "The recording probe").
pub const WINDOW: u64 = 16 * 1024;

/// Bytes of one object, read by offset.
pub trait Source {
    /// The object's size.
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes `offset..offset + len`, fewer where the object ends (none past its end).
    fn read(
        &mut self,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = Result<&[u8], StorageError>> + Send;
}

/// An object in a bucket; the last range read is kept, and reads inside it cost nothing.
#[derive(Debug)]
pub struct ObjectSource<'a> {
    objects: &'a ObjectStore,
    profile: &'a StorageProfile,
    key: &'a str,
    size: u64,
    window_start: u64,
    window: Vec<u8>,
    /// How many GETs were sent.
    pub gets: u32,
}

impl<'a> ObjectSource<'a> {
    /// `key` of `size` bytes (as its HEAD said).
    pub fn new(
        objects: &'a ObjectStore,
        profile: &'a StorageProfile,
        key: &'a str,
        size: u64,
    ) -> Self {
        Self {
            objects,
            profile,
            key,
            size,
            window_start: 0,
            window: Vec::new(),
            gets: 0,
        }
    }

    /// The same, with the object's first bytes already read (the read that stood for its HEAD).
    pub fn with_start(mut self, first_bytes: Vec<u8>) -> Self {
        self.window_start = 0;
        self.window = first_bytes;
        self
    }
}

impl Source for ObjectSource<'_> {
    fn len(&self) -> u64 {
        self.size
    }

    async fn read(&mut self, offset: u64, len: u64) -> Result<&[u8], StorageError> {
        let end = offset.saturating_add(len).min(self.size);
        if offset >= end {
            return Ok(&[]);
        }
        let cached =
            offset >= self.window_start && end <= self.window_start + self.window.len() as u64;
        if !cached {
            let want = (end - offset).max(WINDOW).min(self.size - offset);
            self.window = self
                .objects
                .get_range(self.profile, self.key, offset, want)
                .await?
                .bytes;
            self.window_start = offset;
            self.gets += 1;
        }
        let from = usize::try_from(offset - self.window_start).unwrap_or(usize::MAX);
        let to = usize::try_from(end - self.window_start).unwrap_or(usize::MAX);
        // A server that sent fewer bytes than asked: what it sent (the walk then sees a cut).
        let to = to.min(self.window.len());
        Ok(self.window.get(from.min(to)..to).unwrap_or_default())
    }
}

/// A whole file in memory.
#[derive(Debug, Clone)]
pub struct MemorySource(pub Vec<u8>);

impl Source for MemorySource {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    async fn read(&mut self, offset: u64, len: u64) -> Result<&[u8], StorageError> {
        let size = self.0.len();
        let from = usize::try_from(offset).unwrap_or(size).min(size);
        let to = usize::try_from(offset.saturating_add(len))
            .unwrap_or(size)
            .min(size);
        Ok(&self.0[from..to])
    }
}
