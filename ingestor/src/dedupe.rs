//! Event ids confirmed recently, so LiveKit's retries of an event already queued are answered
//! 200 without a second publish. Memory is bounded: ids are kept as 16-byte fingerprints, and
//! past `capacity` the oldest are forgotten (the processor dedupes by event id anyway).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

type Fingerprint = [u8; 16];

#[derive(Debug)]
pub struct RecentIds {
    window: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    seen: HashMap<Fingerprint, Instant>,
    order: VecDeque<(Instant, Fingerprint)>,
}

impl RecentIds {
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self {
            window,
            capacity,
            inner: Mutex::default(),
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        let now = Instant::now();
        let Ok(inner) = self.inner.lock() else {
            return false;
        };
        inner
            .seen
            .get(&fingerprint(id))
            .is_some_and(|at| now.duration_since(*at) < self.window)
    }

    pub fn insert(&self, id: &str) {
        let now = Instant::now();
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let key = fingerprint(id);
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

fn fingerprint(id: &str) -> Fingerprint {
    let digest = Sha256::digest(id.as_bytes());
    let mut out = [0; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_ids_within_the_window() {
        let recent = RecentIds::new(Duration::from_secs(60), 10);
        assert!(!recent.contains("EV_1"));
        recent.insert("EV_1");
        assert!(recent.contains("EV_1"));
        assert!(!recent.contains("EV_2"));
    }

    #[test]
    fn forgets_after_the_window() {
        let recent = RecentIds::new(Duration::ZERO, 10);
        recent.insert("EV_1");
        assert!(!recent.contains("EV_1"));
    }

    #[test]
    fn stays_within_capacity() {
        let recent = RecentIds::new(Duration::from_secs(60), 3);
        for i in 0..10 {
            recent.insert(&format!("EV_{i}"));
        }
        assert!(!recent.contains("EV_0"));
        assert!(recent.contains("EV_9"));
        let inner = recent.inner.lock().expect("lock");
        assert!(inner.seen.len() <= 3 && inner.order.len() <= 3);
    }
}
