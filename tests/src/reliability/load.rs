//! Steady signed traffic through the ingestor, as LiveKit sends it: recordings' lifecycles
//! (started, active, ended with an uploaded file) and rooms with viewers joining and leaving.
//! Like LiveKit, a webhook that is not answered 2xx is sent again; every id answered 2xx is
//! remembered, to be found in `webhook_events` at the end.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::{stream, StreamExt};
use roomtape_shared::auth::WebhookSigner;
use roomtape_shared::config::StorageProfile;

use crate::fixtures::{participant_event_in, room_event, Egress, STARTED_NS};
use crate::livekit::webhook_request;

/// What one phase sends.
#[derive(Debug, Clone)]
pub struct Traffic {
    pub phase: String,
    /// How long the phase's traffic is spread over (a steady flow, for faults to land in).
    pub spread: Duration,
    pub recordings: usize,
    pub rooms: usize,
    pub viewers_per_room: usize,
}

impl Traffic {
    pub fn egresses(&self, profile: &StorageProfile) -> Vec<Egress> {
        (0..self.recordings)
            .map(|n| {
                let room = format!("{}-room{}", self.phase, n % self.rooms.max(1));
                Egress::new(&format!("EG_{}_{n}", self.phase), &room, profile)
            })
            .collect()
    }

    pub fn room_names(&self) -> Vec<String> {
        (0..self.rooms)
            .map(|n| format!("{}-hall{n}", self.phase))
            .collect()
    }
}

/// Sends webhooks and keeps count.
pub struct Webhooks {
    http: reqwest::Client,
    url: String,
    signer: WebhookSigner,
    accepted: Mutex<HashSet<String>>,
    /// Answers other than 2xx (and failed connections), by phase and status.
    refused: Mutex<BTreeMap<(String, String), u64>>,
    /// Webhooks still not accepted after [`GIVE_UP_AFTER`].
    pub abandoned: Mutex<Vec<String>>,
}

/// LiveKit itself gives up much sooner; the suite insists so that every event has to arrive.
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);
/// A room's joins (or leaves) in flight at once.
const VIEWERS_AT_ONCE: usize = 8;

impl Webhooks {
    pub fn new(ingestor_url: &str, api_key: &str, api_secret: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("HTTP client"),
            url: format!("{ingestor_url}/webhooks/livekit"),
            signer: WebhookSigner::new(api_key, api_secret),
            accepted: Mutex::new(HashSet::new()),
            refused: Mutex::new(BTreeMap::new()),
            abandoned: Mutex::new(Vec::new()),
        }
    }

    /// Sends one webhook until it is answered 2xx.
    pub async fn deliver(&self, phase: &str, id: &str, body: &str) {
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        while started.elapsed() < GIVE_UP_AFTER {
            let token = self.signer.sign(body.as_bytes());
            let answer = webhook_request(&self.http, &self.url, body.to_owned(), &token)
                .send()
                .await;
            let outcome = match answer {
                Ok(response) if response.status().is_success() => {
                    self.lock_accepted().insert(id.to_owned());
                    return;
                }
                Ok(response) => response.status().as_u16().to_string(),
                Err(_) => "no answer".to_owned(),
            };
            *self
                .refused
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry((phase.to_owned(), outcome))
                .or_default() += 1;
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
        self.abandoned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(id.to_owned());
    }

    /// Sends one room event once: its status and error code (`503 broker_blocked`).
    pub async fn answer_once(&self, id: &str) -> String {
        let body = room_event("room_started", id, "probe", "RM_probe");
        let token = self.signer.sign(body.as_bytes());
        let answer = webhook_request(&self.http, &self.url, body, &token)
            .send()
            .await;
        match answer {
            Ok(response) => {
                let status = response.status().as_u16();
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                let code = body["error"]["code"]
                    .as_str()
                    .unwrap_or("accepted")
                    .to_owned();
                format!("{status} {code}")
            }
            Err(error) => format!("no answer ({error})"),
        }
    }

    fn lock_accepted(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.accepted.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts what `other` got accepted as accepted here too.
    pub fn adopt(&self, other: &Webhooks) {
        let theirs = other.accepted();
        self.lock_accepted().extend(theirs);
    }

    pub fn accepted(&self) -> HashSet<String> {
        self.lock_accepted().clone()
    }

    /// Non-2xx answers of `phase`, as `status×count`.
    pub fn refused_in(&self, phase: &str) -> String {
        let refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        let parts: Vec<String> = refused
            .iter()
            .filter(|((p, _), _)| p == phase)
            .map(|((_, status), count)| format!("{status}×{count}"))
            .collect();
        match parts.is_empty() {
            true => "none".into(),
            false => parts.join(" "),
        }
    }

    /// Everything `traffic` sends: each recording's lifecycle in order, each room's
    /// start, joins, leaves and end in order; recordings and rooms side by side.
    pub async fn send(&self, traffic: &Traffic, profile: &StorageProfile) {
        let phase = traffic.phase.as_str();
        // Futures made up front: closures in the streams would not be `Send` for every
        // lifetime, and the load runs on a task of its own.
        let egresses = traffic.egresses(profile);
        let pace = |n: usize, of: usize| traffic.spread.mul_f64(n as f64 / of.max(1) as f64);
        let lifecycles: Vec<_> = (egresses.iter().enumerate())
            .map(|(n, e)| self.after(pace(n, egresses.len()), self.lifecycle(phase, e)))
            .collect();
        let rooms = traffic.room_names();
        let viewers = traffic.viewers_per_room;
        let rooms: Vec<_> = (rooms.iter().enumerate())
            .map(|(n, r)| self.after(pace(n, rooms.len()), self.room(phase, r, viewers)))
            .collect();
        // Every one is waiting its turn: no cap on how many wait at once.
        tokio::join!(all(lifecycles, usize::MAX), all(rooms, usize::MAX));
    }

    async fn after(&self, delay: Duration, work: impl std::future::Future<Output = ()>) {
        tokio::time::sleep(delay).await;
        work.await
    }

    async fn lifecycle(&self, phase: &str, egress: &Egress) {
        let id = |step: &str| format!("EV_{}_{step}", egress.egress_id);
        let active = egress.updated(&id("active"), "EGRESS_ACTIVE", STARTED_NS + 1);
        self.deliver(phase, &id("started"), &egress.started(&id("started")))
            .await;
        self.deliver(phase, &id("active"), &active).await;
        self.deliver(phase, &id("ended"), &egress.ended(&id("ended")))
            .await;
    }

    /// A room session: started, every viewer joins, every viewer leaves, finished, each step a
    /// second after the one before (the room's peak is read from those times).
    async fn room(&self, phase: &str, room: &str, viewers: usize) {
        let sid = format!("RM_{room}");
        let start = crate::livekit::now_unix();
        let started = format!("EV_{room}_started");
        let body = at(&room_event("room_started", &started, room, &sid), start);
        self.deliver(phase, &started, &body).await;
        for (offset, step) in [(1, "participant_joined"), (2, "participant_left")] {
            let events: Vec<(String, String)> = (0..viewers)
                .map(|n| {
                    let id = format!("EV_{room}_{step}_{n}");
                    let viewer = format!("viewer{n}");
                    let body = participant_event_in(step, &id, (room, &sid), &viewer, "STANDARD");
                    (id, at(&body, start + offset))
                })
                .collect();
            let sends: Vec<_> = events
                .iter()
                .map(|(id, body)| self.deliver(phase, id, body))
                .collect();
            all(sends, VIEWERS_AT_ONCE).await;
        }
        let finished = format!("EV_{room}_finished");
        let body = at(
            &room_event("room_finished", &finished, room, &sid),
            start + 3,
        );
        self.deliver(phase, &finished, &body).await;
    }
}

/// `body` with its `createdAt` set to `unix` seconds.
fn at(body: &str, unix: u64) -> String {
    let mut event: serde_json::Value = serde_json::from_str(body).expect("a fixture is JSON");
    event["createdAt"] = unix.to_string().into();
    event.to_string()
}

/// Runs `futures`, `at_once` at a time.
async fn all<F: std::future::Future<Output = ()>>(futures: Vec<F>, at_once: usize) {
    stream::iter(futures)
        .buffer_unordered(at_once)
        .collect::<Vec<()>>()
        .await;
}
