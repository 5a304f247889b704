//! The one confirmed publish: every message roomtape sends (webhooks, retries, dead letters,
//! replies, commands, reconciled events, replays) waits for the broker's confirm, within a
//! deadline, so a blocked broker (a memory or disk alarm) cannot hang its caller.

use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel};

/// How long the broker gets to confirm a publish, where no setting says otherwise.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a message was not confirmed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("not connected to the broker")]
    NotConnected,
    #[error("broker error")]
    Broker(#[from] lapin::Error),
    #[error("the broker refused the message (nack)")]
    Nacked,
    #[error("no queue is bound for routing key {routing_key:?} on exchange {exchange:?}")]
    Unroutable {
        exchange: String,
        routing_key: String,
    },
    #[error("no confirm from the broker within {0:?}")]
    Timeout(Duration),
}

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    /// `""` is the default exchange, which routes by queue name.
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub body: &'a [u8],
    pub properties: BasicProperties,
    /// A message no queue takes is an error ([`PublishError::Unroutable`]).
    pub mandatory: bool,
}

impl<'a> Outgoing<'a> {
    /// A mandatory message to `exchange` with `routing_key`.
    pub fn to_exchange(
        exchange: &'a str,
        routing_key: &'a str,
        body: &'a [u8],
        properties: BasicProperties,
    ) -> Self {
        Self {
            exchange,
            routing_key,
            body,
            properties,
            mandatory: true,
        }
    }

    /// A mandatory message straight to `queue`, through the default exchange.
    pub fn to_queue(queue: &'a str, body: &'a [u8], properties: BasicProperties) -> Self {
        Self::to_exchange("", queue, body, properties)
    }
}

/// Publishes `message` on `channel` (which must be in confirm mode) and waits up to `timeout`
/// for the broker's confirm.
pub async fn publish_confirmed(
    channel: &Channel,
    message: Outgoing<'_>,
    timeout: Duration,
) -> Result<(), PublishError> {
    let options = BasicPublishOptions {
        mandatory: message.mandatory,
        ..BasicPublishOptions::default()
    };
    let publish = async {
        channel
            .basic_publish(
                message.exchange.into(),
                message.routing_key.into(),
                options,
                message.body,
                message.properties,
            )
            .await?
            .await
    };
    let confirmation = tokio::time::timeout(timeout, publish)
        .await
        .map_err(|_| PublishError::Timeout(timeout))??;
    if confirmation.is_nack() {
        return Err(PublishError::Nacked);
    }
    if message.mandatory && confirmation.take_message().is_some() {
        return Err(PublishError::Unroutable {
            exchange: message.exchange.to_owned(),
            routing_key: message.routing_key.to_owned(),
        });
    }
    Ok(())
}
