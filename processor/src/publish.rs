//! Everything the processor publishes (retries, dead letters, replies, auto-record commands,
//! reconciled events) goes through here: confirmed by the broker, within a deadline, so a
//! blocked broker (a memory or disk alarm) cannot hang a handler or the shutdown.

use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel};

/// How long the broker gets to confirm a publish.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Broker(#[from] lapin::Error),
    #[error("the broker refused the message (nack)")]
    Nacked,
    #[error("no queue is bound for {0:?}")]
    Unroutable(String),
    #[error("no confirm from the broker within {CONFIRM_TIMEOUT:?}")]
    Timeout,
}

/// Publishes and waits for the confirm (`channel` must be in confirm mode). With `mandatory`,
/// a message no queue takes is an error.
pub async fn confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    mandatory: bool,
    body: &[u8],
    properties: BasicProperties,
) -> Result<(), PublishError> {
    let options = BasicPublishOptions {
        mandatory,
        ..BasicPublishOptions::default()
    };
    let publish = async {
        channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                options,
                body,
                properties,
            )
            .await?
            .await
    };
    let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, publish)
        .await
        .map_err(|_| PublishError::Timeout)??;
    if confirmation.is_nack() {
        return Err(PublishError::Nacked);
    }
    if mandatory && confirmation.take_message().is_some() {
        return Err(PublishError::Unroutable(routing_key.to_owned()));
    }
    Ok(())
}
