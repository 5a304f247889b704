//! Walking `roomtape.dead` without losing or ageing what is in it (see the module above).

use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions, ConfirmSelectOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use roomtape_shared::config::{AmqpSettings, Env};
use roomtape_shared::queue::topology::{self, DEAD_QUEUE};
use roomtape_shared::queue::CONFIRM_TIMEOUT;
use roomtape_shared::queue::{self, headers, publish_confirmed, Outgoing};

use crate::error::CliError;

/// Headers the broker adds to a delivery, which are not part of the message: a copy must not
/// carry them (RabbitMQ 4 treats `x-` headers as its own).
const DELIVERY_HEADERS: [&str; 2] = ["x-delivery-count", "x-acquired-count"];

/// `roomtape.dead` on a confirm-mode channel, and how many messages were ready in it when it
/// was opened: a walk takes no more than that, so it never meets its own copies.
pub(super) struct DeadLetters {
    pub(super) connection: Connection,
    pub(super) channel: Channel,
    pub(super) ready: u32,
}

impl DeadLetters {
    pub(super) async fn open(env: &Env) -> Result<Self, CliError> {
        let settings = AmqpSettings::from_env(env)?;
        let connection = queue::connect(&settings, "roomtape-cli").await?;
        let ready = match topology::inspect(&connection, DEAD_QUEUE).await {
            Ok(counts) => counts.messages,
            Err(error) if is_not_found(&error) => {
                let _ = connection.close(200, "no dead-letter queue".into()).await;
                return Err(CliError::NoDeadQueue);
            }
            Err(error) => return Err(error.into()),
        };
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self {
            connection,
            channel,
            ready,
        })
    }

    /// The message at the head of the queue, unacked.
    pub(super) async fn take(&self) -> Result<Option<BasicGetMessage>, CliError> {
        let message = self
            .channel
            .basic_get(DEAD_QUEUE.into(), BasicGetOptions::default())
            .await?;
        Ok(message)
    }

    /// Puts a copy of `message` at the back of the queue, then acks the original.
    pub(super) async fn keep(&self, message: &BasicGetMessage) -> Result<(), CliError> {
        self.copy_to(DEAD_QUEUE, message, &[]).await
    }

    /// Sends a copy of `message` to `queue`, without the headers of its last retry schedule,
    /// then acks the original.
    pub(super) async fn move_to(
        &self,
        queue: &str,
        message: &BasicGetMessage,
    ) -> Result<(), CliError> {
        self.copy_to(queue, message, &headers::RETRY_STATE).await
    }

    async fn copy_to(
        &self,
        queue: &str,
        message: &BasicGetMessage,
        dropped: &[&str],
    ) -> Result<(), CliError> {
        let delivery = &message.delivery;
        let kept = headers_without(&delivery.properties, dropped);
        let properties = delivery.properties.clone().with_headers(kept);
        let copy = Outgoing::to_queue(queue, &delivery.data, properties);
        publish_confirmed(&self.channel, copy, CONFIRM_TIMEOUT).await?;
        message.ack(BasicAckOptions::default()).await?;
        Ok(())
    }

    pub(super) async fn close(self) {
        let _ = self.connection.close(200, "done".into()).await;
    }
}

/// The message's headers as published (without [`DELIVERY_HEADERS`]), less `dropped`.
pub(super) fn headers_without(properties: &BasicProperties, dropped: &[&str]) -> FieldTable {
    let mut kept = FieldTable::default();
    if let Some(found) = properties.headers() {
        for (key, value) in found.inner() {
            let name = key.as_str();
            if !DELIVERY_HEADERS.contains(&name) && !dropped.contains(&name) {
                kept.insert(key.clone(), value.clone());
            }
        }
    }
    kept
}

fn is_not_found(error: &lapin::Error) -> bool {
    matches!(
        error.kind(),
        lapin::ErrorKind::ProtocolError(error)
            if matches!(error.kind(), AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND))
    )
}
