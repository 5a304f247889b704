//! Acks of a channel whose messages are handled in batches, sent as few `basic.ack` frames as
//! the order of settling allows: one `multiple` ack covers every delivery up to a tag, so a
//! batch of 256 messages costs the broker one settle (one quorum-queue log entry) instead of
//! 256. A delivery is acked only once it is settled, and only once every delivery before it on
//! the channel is settled too (a batch finishing early waits for the batches before it: their
//! ack covers it).
//!
//! Settled deliveries wait up to [`ACK_DELAY`] for the next batches to settle, so that at a
//! steady rate, where batches are one or two events, one frame acks several of them: every
//! quorum-queue settle is a raft command the broker writes and syncs, and every ack wakes
//! lapin's I/O thread. An ack only ever follows its commit; a crash in the delay redelivers
//! those events, which the `webhook_events` record makes no-ops. A stopping worker acks what
//! is settled at once ([`Acks::flush`]).
//!
//! A message that is nacked (returned to its queue) is sent on its own and marked done; a
//! `multiple` ack never names a delivery that is not outstanding, so it never fails on one.
//! A flush dropped before its frame left (a timeout, a stop) loses nothing: the next flush's
//! `multiple` ack covers those deliveries too, and without one the channel's close returns them
//! to the queue, where dedupe makes the redelivery harmless.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::options::BasicAckOptions;
use lapin::Channel;

use super::settle::SETTLE_TIMEOUT;

/// How long settled deliveries wait for the next to be acked with them.
pub const ACK_DELAY: Duration = Duration::from_millis(10);

/// Where each delivery of the channel stands, oldest first, from the first that is not acked.
#[derive(Debug, Default)]
struct Window {
    deliveries: VecDeque<(u64, Mark)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// Received, not settled yet.
    Open,
    /// Settled, to be acked.
    Ack,
    /// Settled without an ack from here (nacked on its own).
    Done,
}

impl Window {
    fn received(&mut self, tag: u64) {
        self.deliveries.push_back((tag, Mark::Open));
    }

    fn mark(&mut self, tag: u64, mark: Mark) {
        // Tags only grow: a binary search finds the entry.
        if let Ok(at) = self.deliveries.binary_search_by_key(&tag, |(t, _)| *t) {
            self.deliveries[at].1 = mark;
        }
    }

    /// Takes the settled deliveries at the front; the tag a `multiple` ack is to name for them,
    /// if any of them wants an ack (the newest such).
    fn take_settled(&mut self) -> Option<u64> {
        let mut upto = None;
        while let Some(&(tag, mark)) = self.deliveries.front() {
            match mark {
                Mark::Open => break,
                Mark::Ack => upto = Some(tag),
                Mark::Done => {}
            }
            self.deliveries.pop_front();
        }
        upto
    }
}

/// The ack window of one consuming channel.
#[derive(Debug)]
pub struct Acks {
    channel: Channel,
    window: Mutex<Window>,
    /// The last tag acked: held across the send, so `multiple` acks leave in tag order (an
    /// older one after a newer would name a delivery already acked, which closes the channel).
    sent: tokio::sync::Mutex<u64>,
    /// Whether a delayed flush is on its way.
    scheduled: AtomicBool,
}

impl Acks {
    pub fn new(channel: Channel) -> Self {
        Self {
            channel,
            window: Mutex::new(Window::default()),
            sent: tokio::sync::Mutex::new(0),
            scheduled: AtomicBool::new(false),
        }
    }

    /// A delivery came in (in tag order, as the consumer hands them out).
    pub fn received(&self, tag: u64) {
        self.lock().received(tag);
    }

    /// `tag` is settled and wants an ack; sent by the next [`Acks::flush`] that reaches it.
    pub fn settled(&self, tag: u64) {
        self.lock().mark(tag, Mark::Ack);
    }

    /// `tag` was nacked on its own.
    pub fn done(&self, tag: u64) {
        self.lock().mark(tag, Mark::Done);
    }

    /// Flushes in [`ACK_DELAY`], unless a flush is already on its way (it will take these too).
    pub fn flush_soon(self: &Arc<Self>) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let acks = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ACK_DELAY).await;
            acks.scheduled.store(false, Ordering::Release);
            acks.flush().await;
        });
    }

    /// Acks every settled delivery that nothing older holds back, in one frame, within
    /// [`SETTLE_TIMEOUT`] (a failure is logged: the channel's close returns those deliveries).
    pub async fn flush(&self) {
        match tokio::time::timeout(SETTLE_TIMEOUT, self.send_settled()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "could not ack settled deliveries"),
            Err(_) => {
                tracing::warn!(timeout = ?SETTLE_TIMEOUT, "could not ack settled deliveries: lapin never completed the ack")
            }
        }
    }

    async fn send_settled(&self) -> lapin::Result<()> {
        let mut sent = self.sent.lock().await;
        let Some(upto) = self.lock().take_settled() else {
            return Ok(());
        };
        if upto <= *sent {
            return Ok(());
        }
        let multiple = BasicAckOptions { multiple: true };
        self.channel.basic_ack(upto, multiple).await?;
        *sent = upto;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        // A panic while holding this lock leaves a consistent window: every method changes it
        // in one step.
        self.window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiving(tags: std::ops::RangeInclusive<u64>) -> Window {
        let mut window = Window::default();
        tags.for_each(|tag| window.received(tag));
        window
    }

    #[test]
    fn settled_deliveries_are_acked_up_to_the_first_open_one() {
        let mut window = receiving(1..=5);
        window.mark(2, Mark::Ack);
        window.mark(3, Mark::Ack);
        assert_eq!(window.take_settled(), None, "1 is still open");
        window.mark(1, Mark::Ack);
        assert_eq!(
            window.take_settled(),
            Some(3),
            "1 to 3 in one ack; 4 is open"
        );
        window.mark(5, Mark::Ack);
        assert_eq!(window.take_settled(), None);
        window.mark(4, Mark::Ack);
        assert_eq!(window.take_settled(), Some(5));
        assert!(window.deliveries.is_empty());
    }

    #[test]
    fn a_nacked_delivery_is_passed_over_and_never_named() {
        let mut window = receiving(1..=3);
        window.mark(1, Mark::Ack);
        window.mark(2, Mark::Ack);
        window.mark(3, Mark::Done);
        assert_eq!(
            window.take_settled(),
            Some(2),
            "the ack names 2, not the nacked 3"
        );
        let mut window = receiving(4..=5);
        window.mark(4, Mark::Done);
        window.mark(5, Mark::Done);
        assert_eq!(window.take_settled(), None, "nothing to ack");
        assert!(window.deliveries.is_empty());
    }
}
