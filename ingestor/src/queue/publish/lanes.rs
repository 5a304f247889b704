//! The lanes' bookkeeping: which confirm channels exist, which HTTP worker keeps which, and in
//! what order a publish tries them.
//!
//! Each HTTP worker (one thread, one single-threaded runtime) keeps one broker connection with
//! its share of the channels (channel `i` belongs to worker `i % workers`). A keeper task per
//! worker opens its channels, replaces one that fails while the connection lives, and reconnects
//! with backoff when the connection dies; meanwhile the other workers' channels serve. A
//! publish takes its worker's channels in turn; when none is usable it takes any other worker's.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amqprs::connection::Connection;
use prometheus_client::metrics::counter::Counter;
use roomtape_shared::queue::reconnect::{run_reconnecting, Backoff, Established};
use roomtape_shared::queue::{self, topology};
use roomtape_shared::shutdown::Shutdown;
use tokio::sync::Notify;

use super::Publisher;
use crate::queue::confirm::{self, ChannelError, ConfirmChannel};

/// At most a second between tries: every second without the broker is a second of 503s, and a
/// refused connect costs next to nothing.
const RECONNECT: Backoff = Backoff {
    min: Duration::from_millis(100),
    max: Duration::from_secs(1),
};
/// How long connecting, or opening a channel, may take before trying again.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long closing a lost connection may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a keeper looks at its channels when nothing woke it.
const HEALTH_POLL: Duration = Duration::from_secs(1);

thread_local! {
    /// The pool slot of the HTTP worker on this thread (`None` off the workers), and its turn
    /// among its channels. A thread-local rather than a shared counter: a counter every worker
    /// bumps on every publish bounces its cache line between cores.
    static WORKER: Cell<(Option<usize>, usize)> = const { Cell::new((None, 0)) };
}

/// Why a keeper's connection ended.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("cannot connect or open a channel")]
    Connect(#[from] ChannelError),
    #[error("cannot declare the topology")]
    Topology(#[from] lapin::Error),
    #[error("no answer within {CONNECT_TIMEOUT:?}")]
    ConnectTimeout,
    #[error("the connection closed")]
    Lost,
}

/// One confirm channel of the pool.
pub(super) struct Lane {
    channel: Mutex<Option<Arc<ConfirmChannel>>>,
    /// Publishes tried on it, for the metrics.
    pub(super) publishes: Counter,
}

impl Lane {
    pub(super) fn new(publishes: Counter) -> Self {
        Self {
            channel: Mutex::new(None),
            publishes,
        }
    }

    /// The channel, if it can publish now.
    pub(super) fn usable(&self) -> Option<Arc<ConfirmChannel>> {
        let channel = self.channel.lock().ok()?.clone()?;
        channel.is_open().then_some(channel)
    }

    fn set(&self, channel: Option<Arc<ConfirmChannel>>) {
        if let Ok(mut slot) = self.channel.lock() {
            *slot = channel;
        }
    }

    fn take(&self) -> Option<Arc<ConfirmChannel>> {
        self.channel.lock().ok()?.take()
    }
}

/// One HTTP worker's share of the pool: whether a keeper holds it, and how to wake that keeper.
#[derive(Default)]
pub(super) struct Slot {
    kept: AtomicBool,
    /// Wakes the keeper to look at its channels now: a publish saw one fail.
    pub(super) wake: Notify,
}

/// Frees a slot when its keeper ends, so a restarted worker can take it again.
struct SlotClaim<'a>(&'a Slot);

impl Drop for SlotClaim<'_> {
    fn drop(&mut self) {
        self.0.kept.store(false, Ordering::Release);
    }
}

impl Publisher {
    /// The indexes of the channels that belong to worker slot `slot`.
    fn lanes_of(&self, slot: usize) -> impl Iterator<Item = usize> {
        (slot..self.lanes.len()).step_by(self.slots.len())
    }

    /// Called on each HTTP worker's thread as it starts (in its app factory): takes a free slot
    /// and keeps its connection and channels on this thread's runtime.
    ///
    /// The keeper ends with its worker. A worker stops once it has answered its last request,
    /// so every publish it answered 2xx is confirmed by then; its connection then goes without
    /// a close handshake (RabbitMQ logs "client unexpectedly closed TCP connection"), which
    /// loses nothing. Closing it first would turn the requests still arriving on kept-alive
    /// connections into 503s.
    pub fn attach_worker(self: &Arc<Self>) {
        let Some(slot) = self.slots.iter().position(|slot| {
            slot.kept
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        }) else {
            // Every slot is kept: actix restarted a failed service on a worker that keeps one
            // already (its thread-local still names it).
            return;
        };
        WORKER.with(|worker| worker.set((Some(slot), 0)));
        let publisher = self.clone();
        tokio::spawn(async move {
            let _claim = SlotClaim(&publisher.slots[slot]);
            let what = format!(
                "publisher connection {slot} to {}",
                publisher.settings.address()
            );
            let until_the_worker_ends = Shutdown::new();
            run_reconnecting(&what, RECONNECT, &until_the_worker_ends, |established| {
                publisher.keep_connection(slot, established)
            })
            .await;
        });
    }

    /// Opens worker `slot`'s connection and channels and keeps them until the connection
    /// breaks; then its channels leave the pool, failing the publishes that await a confirm.
    async fn keep_connection(
        &self,
        slot: usize,
        established: Established,
    ) -> Result<(), LinkError> {
        let name = format!("roomtape-ingestor-publish-{slot}");
        let connection =
            tokio::time::timeout(CONNECT_TIMEOUT, confirm::connect(&self.settings, &name))
                .await
                .map_err(|_| LinkError::ConnectTimeout)??;
        let error = self.serve(slot, &connection, established).await;
        for lane in self.lanes_of(slot) {
            if let Some(channel) = self.lanes[lane].take() {
                channel.retire();
            }
        }
        self.refresh_usable();
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, connection.close()).await;
        Err(error)
    }

    /// Serves until the connection breaks, replacing channels that fail meanwhile.
    async fn serve(
        &self,
        slot: usize,
        connection: &Connection,
        established: Established,
    ) -> LinkError {
        match self.open_lanes(slot, connection).await {
            Ok(()) => {
                established.mark();
                self.watch_lanes(slot, connection).await
            }
            Err(error) => error,
        }
    }

    async fn open_lanes(&self, slot: usize, connection: &Connection) -> Result<(), LinkError> {
        self.declare_topology().await?;
        for lane in self.lanes_of(slot) {
            let channel = open_channel(connection).await?;
            self.lanes[lane].set(Some(Arc::new(channel)));
        }
        self.refresh_usable();
        tracing::info!(
            connection = slot,
            channels = self.lanes_of(slot).count(),
            "connected to the broker"
        );
        Ok(())
    }

    async fn watch_lanes(&self, slot: usize, connection: &Connection) -> LinkError {
        loop {
            tokio::select! {
                () = self.slots[slot].wake.notified() => {}
                _ = connection.listen_network_io_failure() => {}
                () = tokio::time::sleep(HEALTH_POLL) => {}
            }
            if !connection.is_open() {
                return LinkError::Lost;
            }
            for lane in self.lanes_of(slot) {
                if self.lanes[lane].usable().is_some() {
                    continue;
                }
                if let Err(error) = self.replace_lane(slot, lane, connection).await {
                    return error;
                }
            }
            self.refresh_usable();
        }
    }

    /// The connection lives: only this channel failed (a channel error). Replaces it and
    /// leaves the worker's other channels serving.
    async fn replace_lane(
        &self,
        slot: usize,
        lane: usize,
        connection: &Connection,
    ) -> Result<(), LinkError> {
        tracing::warn!(
            connection = slot,
            channel = lane,
            "pool channel lost; opening another"
        );
        if let Some(lost) = self.lanes[lane].take() {
            lost.retire();
        }
        // A channel error is often the topology gone (an exchange deleted by hand): declaring
        // it again lets publishing recover without a restart.
        self.declare_topology().await?;
        let channel = open_channel(connection).await?;
        self.lanes[lane].set(Some(Arc::new(channel)));
        self.metrics.channel_replaced();
        Ok(())
    }

    /// Declares the exchanges and queues (idempotent) over a short-lived lapin connection, with
    /// the one topology definition the processor and the CLI use too.
    async fn declare_topology(&self) -> Result<(), LinkError> {
        let declare = async {
            let connection = queue::connect(&self.settings, "roomtape-ingestor-topology").await?;
            let channel = connection.create_channel().await?;
            topology::declare(&channel, &self.settings.retry_delays).await?;
            let _ = channel.close(200, "declared".into()).await;
            connection.close(200, "declared".into()).await
        };
        tokio::time::timeout(CONNECT_TIMEOUT, declare)
            .await
            .map_err(|_| LinkError::ConnectTimeout)??;
        Ok(())
    }

    /// The lanes in the order a publish on this thread tries them: first one of its worker's
    /// own (in turn), then on round the rest.
    pub(super) fn lane_order(&self) -> impl Iterator<Item = usize> {
        let count = self.lanes.len();
        let workers = self.slots.len();
        let (slot, turn) = WORKER.with(|worker| {
            let (slot, turn) = worker.get();
            worker.set((slot, turn.wrapping_add(1)));
            (slot, turn)
        });
        let first = match slot {
            Some(slot) if slot < count => {
                let own = (count - slot).div_ceil(workers);
                slot + (turn % own) * workers
            }
            _ => turn % count,
        };
        (0..count).map(move |offset| (first + offset) % count)
    }
}

async fn open_channel(connection: &Connection) -> Result<ConfirmChannel, LinkError> {
    tokio::time::timeout(CONNECT_TIMEOUT, ConfirmChannel::open(connection))
        .await
        .map_err(|_| LinkError::ConnectTimeout)?
        .map_err(LinkError::from)
}
