//! One confirm-mode channel on an `amqprs` connection, and the bookkeeping that turns the
//! broker's `basic.ack` / `basic.nack` / `basic.return` frames back into an answer per publish.
//!
//! In confirm mode the broker numbers a channel's publishes 1, 2, 3… in the order it receives
//! them; an ack or nack names one of those numbers (or all up to it, `multiple`). The channel
//! therefore hands out the numbers in the order its frames are queued for the socket, under one
//! lock. A mandatory message no queue takes comes back as `basic.return` just before its ack; the
//! return carries the message, not its number, so it is matched by its `message_id`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use amqprs::callbacks::ChannelCallback;
use amqprs::channel::{BasicPublishArguments, Channel, ConfirmSelectArguments};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::tls::TlsAdaptor;
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, Nack, Return};
use lapin::uri::{AMQPScheme, AMQPUri};
use roomtape_shared::config::AmqpSettings;
use secrecy::ExposeSecret;
use tokio::sync::oneshot;

/// What the broker said about one publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// Stored in every queue it was routed to.
    Ack,
    /// Mandatory and routed to no queue (acked after the return).
    Returned,
    /// The broker could not take it.
    Nack,
}

/// Why a publish on a channel has no confirm.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("the channel is closed")]
    Closed,
    #[error("broker error")]
    Broker(#[from] amqprs::error::Error),
}

struct Pending {
    message_id: String,
    returned: bool,
    answer: oneshot::Sender<Confirm>,
}

/// Publishes awaiting their confirm, by delivery tag.
#[derive(Default)]
struct Confirms {
    last_tag: u64,
    pending: BTreeMap<u64, Pending>,
    closed: bool,
}

type SharedConfirms = Arc<Mutex<Confirms>>;

fn lock(confirms: &SharedConfirms) -> std::sync::MutexGuard<'_, Confirms> {
    // A panic elsewhere never leaves the map half-updated: every change is one call.
    confirms.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Confirms {
    /// Answers every publish up to `tag` (or only `tag`).
    fn settle(&mut self, tag: u64, multiple: bool, nack: bool) {
        let tags: Vec<u64> = if multiple {
            self.pending.range(..=tag).map(|(&t, _)| t).collect()
        } else {
            vec![tag]
        };
        for tag in tags {
            if let Some(pending) = self.pending.remove(&tag) {
                let confirm = match (nack, pending.returned) {
                    (true, _) => Confirm::Nack,
                    (false, true) => Confirm::Returned,
                    (false, false) => Confirm::Ack,
                };
                let _ = pending.answer.send(confirm);
            }
        }
    }

    /// Marks the oldest unanswered publish of `message_id` as returned.
    fn returned(&mut self, message_id: &str) {
        if let Some(pending) = self
            .pending
            .values_mut()
            .find(|p| !p.returned && p.message_id == message_id)
        {
            pending.returned = true;
        }
    }

    /// Fails every unanswered publish (their senders dropped) and refuses new ones.
    fn close(&mut self) {
        self.closed = true;
        self.pending.clear();
    }
}

/// Receives the channel's asynchronous frames from `amqprs` (on the connection's own task).
struct ConfirmCallback(SharedConfirms);

#[async_trait::async_trait]
impl ChannelCallback for ConfirmCallback {
    async fn close(
        &mut self,
        _: &Channel,
        close: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        tracing::warn!(%close, "the broker closed a publish channel");
        lock(&self.0).close();
        Ok(())
    }

    async fn cancel(&mut self, _: &Channel, _: Cancel) -> Result<(), amqprs::error::Error> {
        Ok(()) // no consumers on a publish channel
    }

    async fn flow(&mut self, _: &Channel, active: bool) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }

    async fn publish_ack(&mut self, _: &Channel, ack: Ack) {
        lock(&self.0).settle(ack.delivery_tag(), ack.mutiple(), false);
    }

    async fn publish_nack(&mut self, _: &Channel, nack: Nack) {
        lock(&self.0).settle(nack.delivery_tag(), nack.multiple(), true);
    }

    async fn publish_return(&mut self, _: &Channel, _: Return, props: BasicProperties, _: Vec<u8>) {
        if let Some(message_id) = props.message_id() {
            lock(&self.0).returned(message_id);
        }
    }
}

/// A confirm-mode channel; publishes from any task or thread.
pub struct ConfirmChannel {
    channel: Channel,
    confirms: SharedConfirms,
    /// Held from numbering a publish until its frames are queued, so numbers follow the wire.
    send_order: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for ConfirmChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfirmChannel")
            .field("channel", &self.channel.channel_id())
            .field("awaiting", &lock(&self.confirms).pending.len())
            .finish_non_exhaustive()
    }
}

impl ConfirmChannel {
    pub async fn open(connection: &Connection) -> Result<Self, ChannelError> {
        let channel = connection.open_channel(None).await?;
        let confirms = SharedConfirms::default();
        channel
            .register_callback(ConfirmCallback(confirms.clone()))
            .await?;
        channel
            .confirm_select(ConfirmSelectArguments::default())
            .await?;
        Ok(Self {
            channel,
            confirms,
            send_order: tokio::sync::Mutex::new(()),
        })
    }

    /// Whether a publish could go out now.
    pub fn is_open(&self) -> bool {
        self.channel.is_open() && !lock(&self.confirms).closed
    }

    /// Fails every publish still awaiting its confirm and refuses new ones: the connection is
    /// gone, or the channel's numbering can no longer be trusted. Its keeper replaces it.
    pub fn retire(&self) {
        lock(&self.confirms).close();
    }

    /// Publishes a mandatory, persistent message and waits for the broker's answer.
    ///
    /// Cancel-safe: dropped while its frames wait for room in the connection's outgoing queue
    /// (a broker that stopped reading, as under a resource alarm), the publish has taken a
    /// number that no frame will carry, so every later number would be one ahead of the
    /// broker's and each publish would be answered by the next one's confirm. The channel is
    /// therefore retired: its waiters fail (and are tried on another channel or answered 503).
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<Confirm, ChannelError> {
        let message_id = properties.message_id().cloned().unwrap_or_default();
        let (answer, confirmed) = oneshot::channel();
        {
            let _order = self.send_order.lock().await;
            {
                let mut confirms = lock(&self.confirms);
                if confirms.closed {
                    return Err(ChannelError::Closed);
                }
                confirms.last_tag += 1;
                let tag = confirms.last_tag;
                let pending = Pending {
                    message_id,
                    returned: false,
                    answer,
                };
                confirms.pending.insert(tag, pending);
            }
            let args = BasicPublishArguments {
                mandatory: true,
                ..BasicPublishArguments::new(exchange, routing_key)
            };
            let numbered = NumberedUntilSent(Some(self));
            let sent = self
                .channel
                .basic_publish(properties, body.to_vec(), args)
                .await;
            numbered.sent();
            if let Err(error) = sent {
                // Its number may be taken or not: the numbering cannot be trusted any more.
                self.retire();
                return Err(error.into());
            }
        }
        confirmed.await.map_err(|_| ChannelError::Closed)
    }
}

/// Alive from a publish taking its number until its frames are queued: dropped in between (the
/// publish cancelled), it retires the channel, whose numbering is now off by one.
struct NumberedUntilSent<'a>(Option<&'a ConfirmChannel>);

impl NumberedUntilSent<'_> {
    fn sent(mut self) {
        self.0 = None;
    }
}

impl Drop for NumberedUntilSent<'_> {
    fn drop(&mut self) {
        if let Some(channel) = self.0 {
            tracing::warn!(
                channel = channel.channel.channel_id(),
                "a publish was cancelled before its frames were queued; retiring the channel"
            );
            channel.retire();
        }
    }
}

/// Opens a connection from `AMQP_URL`, named `name` in the broker's connection list. The URL
/// is parsed as lapin parses it everywhere else (percent-decoded user, password and vhost).
pub async fn connect(settings: &AmqpSettings, name: &str) -> Result<Connection, ChannelError> {
    let uri: AMQPUri = settings
        .url
        .expose_secret()
        .parse()
        .map_err(|error: String| amqprs::error::Error::UriError(error))?;
    let authority = &uri.authority;
    let mut args = OpenConnectionArguments::new(
        &authority.host,
        authority.port,
        &authority.userinfo.username,
        &authority.userinfo.password,
    );
    args.virtual_host(&uri.vhost).connection_name(name);
    if let Some(heartbeat) = uri.query.heartbeat {
        args.heartbeat(heartbeat);
    }
    if uri.scheme == AMQPScheme::AMQPS {
        let tls = TlsAdaptor::without_client_auth(None, authority.host.clone())
            .map_err(|error| amqprs::error::Error::UriError(error.to_string()))?;
        args.tls_adaptor(tls);
    }
    Ok(Connection::open(&args).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Confirms with publishes 1..=n awaiting, ids `m1`…, and their answer receivers.
    fn awaiting(n: u64) -> (Confirms, Vec<oneshot::Receiver<Confirm>>) {
        let mut confirms = Confirms::default();
        let receivers = (1..=n)
            .map(|tag| {
                let (answer, confirmed) = oneshot::channel();
                confirms.last_tag = tag;
                let pending = Pending {
                    message_id: format!("m{tag}"),
                    returned: false,
                    answer,
                };
                confirms.pending.insert(tag, pending);
                confirmed
            })
            .collect();
        (confirms, receivers)
    }

    #[test]
    fn an_ack_answers_its_publish_and_a_multiple_one_every_publish_up_to_it() {
        let (mut confirms, mut answers) = awaiting(4);
        confirms.settle(2, false, false);
        assert_eq!(answers[1].try_recv(), Ok(Confirm::Ack));
        assert!(answers[0].try_recv().is_err(), "1 still awaits");

        confirms.settle(3, true, false);
        assert_eq!(answers[0].try_recv(), Ok(Confirm::Ack));
        assert_eq!(answers[2].try_recv(), Ok(Confirm::Ack));
        assert!(
            answers[3].try_recv().is_err(),
            "4 is above the multiple ack"
        );
        assert_eq!(confirms.pending.keys().copied().collect::<Vec<_>>(), [4]);
    }

    #[test]
    fn a_nack_refuses_and_a_return_before_the_ack_marks_only_that_message() {
        let (mut confirms, mut answers) = awaiting(3);
        confirms.returned("m2");
        confirms.returned("not-published-here");
        confirms.settle(3, true, false);
        assert_eq!(answers[0].try_recv(), Ok(Confirm::Ack));
        assert_eq!(answers[1].try_recv(), Ok(Confirm::Returned));
        assert_eq!(answers[2].try_recv(), Ok(Confirm::Ack));

        let (mut confirms, mut answers) = awaiting(2);
        confirms.settle(2, true, true);
        assert_eq!(answers[0].try_recv(), Ok(Confirm::Nack));
        assert_eq!(answers[1].try_recv(), Ok(Confirm::Nack));
    }

    #[test]
    fn closing_fails_every_publish_awaiting_and_an_unknown_tag_changes_nothing() {
        let (mut confirms, mut answers) = awaiting(2);
        confirms.settle(7, false, false);
        assert_eq!(confirms.pending.len(), 2);
        confirms.close();
        assert!(confirms.closed);
        for answer in &mut answers {
            assert_eq!(answer.try_recv(), Err(oneshot::error::TryRecvError::Closed));
        }
    }
}
