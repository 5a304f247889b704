//! Event ids confirmed recently, so LiveKit's retries of an event already queued are answered
//! 200 without a second publish. Memory is bounded: ids are kept as 16-byte fingerprints, and
//! past `capacity` the oldest are forgotten (the processor dedupes by event id anyway). The
//! window is measured on tokio's clock, which tests pause and advance.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use sha2::{Digest, Sha256};

/// What an id is remembered by; computed once per request with [`RecentIds::key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key([u8; 16]);

#[derive(Debug)]
pub struct RecentIds {
    window: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    seen: HashMap<Key, Instant>,
    order: VecDeque<(Instant, Key)>,
}

impl RecentIds {
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self {
            window,
            capacity,
            inner: Mutex::default(),
        }
    }

    /// The 16-byte fingerprint `id` is remembered by.
    pub fn key(id: &str) -> Key {
        let digest = Sha256::digest(id.as_bytes());
        let mut key = [0; 16];
        key.copy_from_slice(&digest[..16]);
        Key(key)
    }

    pub fn contains(&self, key: Key) -> bool {
        let now = Instant::now();
        let Ok(inner) = self.inner.lock() else {
            return false;
        };
        inner
            .seen
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < self.window)
    }

    pub fn insert(&self, key: Key) {
        let now = Instant::now();
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.seen.insert(key, now);
        inner.order.push_back((now, key));
        while let Some(&(at, oldest)) = inner.order.front() {
            let expired = now.duration_since(at) >= self.window;
            if !expired && inner.order.len() <= self.capacity {
                break;
            }
            inner.order.pop_front();
            // Only forget the id if this entry is its latest sighting.
            if inner.seen.get(&oldest) == Some(&at) {
                inner.seen.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_ids_within_the_window() {
        let recent = RecentIds::new(Duration::from_secs(60), 10);
        let (one, two) = (RecentIds::key("EV_1"), RecentIds::key("EV_2"));
        assert!(!recent.contains(one));
        recent.insert(one);
        assert!(recent.contains(one));
        assert!(!recent.contains(two));
    }

    #[tokio::test(start_paused = true)]
    async fn forgets_exactly_when_the_window_ends() {
        let recent = RecentIds::new(Duration::from_secs(300), 10);
        let id = RecentIds::key("EV_1");
        recent.insert(id);
        tokio::time::advance(Duration::from_secs(299)).await;
        assert!(recent.contains(id), "still inside the window");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!recent.contains(id), "the window has passed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_sighting_restarts_the_window() {
        let recent = RecentIds::new(Duration::from_secs(300), 10);
        let id = RecentIds::key("EV_1");
        recent.insert(id);
        tokio::time::advance(Duration::from_secs(200)).await;
        recent.insert(id);
        tokio::time::advance(Duration::from_secs(200)).await;
        // The first sighting's entry expires from the order queue without forgetting the id.
        recent.insert(RecentIds::key("EV_2"));
        assert!(recent.contains(id));
    }

    #[test]
    fn stays_within_capacity() {
        let recent = RecentIds::new(Duration::from_secs(60), 3);
        for i in 0..10 {
            recent.insert(RecentIds::key(&format!("EV_{i}")));
        }
        assert!(!recent.contains(RecentIds::key("EV_0")));
        assert!(recent.contains(RecentIds::key("EV_9")));
        let inner = recent.inner.lock().expect("lock");
        assert!(inner.seen.len() <= 3 && inner.order.len() <= 3);
    }
}
