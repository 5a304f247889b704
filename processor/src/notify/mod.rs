//! Notifications out (CONTRACTS §8). The relay ([`relay`]) takes what the outbox holds after
//! its transaction committed, publishes it to `roomtape.notifications` and, in the same
//! transaction, adds one delivery per HTTP endpoint that wants it; each endpoint's workers
//! ([`deliver`]) POST those, signed as Standard Webhooks, on the retry schedule.

pub mod deliver;
pub mod relay;

use std::collections::HashMap;
use std::sync::Arc;

use roomtape_shared::notify::NotifySettings;
use tokio::sync::Notify;

pub use deliver::Deliveries;
pub use relay::Relay;

/// The endpoints and how the relay wakes each one's workers when it has added deliveries, so
/// a notification is POSTed right after it is relayed rather than at the next poll.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    pub settings: Arc<NotifySettings>,
    wakers: Arc<HashMap<String, Arc<Notify>>>,
}

impl Endpoints {
    pub fn new(settings: NotifySettings) -> Self {
        let wakers = settings
            .endpoints
            .iter()
            .map(|e| (e.name.clone(), Arc::new(Notify::new())))
            .collect();
        Self {
            settings: Arc::new(settings),
            wakers: Arc::new(wakers),
        }
    }

    /// The names of the endpoints that want a notification of this type.
    pub fn wanting<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.settings
            .endpoints
            .iter()
            .filter(move |e| e.wants(kind))
            .map(|e| e.name.as_str())
    }

    /// Tells `endpoint`'s workers there is something new (kept if none is waiting right now).
    pub fn wake(&self, endpoint: &str) {
        if let Some(waker) = self.wakers.get(endpoint) {
            waker.notify_one();
        }
    }

    fn waker(&self, endpoint: &str) -> Arc<Notify> {
        self.wakers.get(endpoint).cloned().unwrap_or_default()
    }
}
