//! The baseline: the same messages published straight to `livekit.events`, with the same
//! properties the ingestor sets (persistent, mandatory, publisher confirms), each task awaiting
//! its own confirm. Channels are shared round-robin; with one channel (the default) this is the
//! ingestor's own arrangement, one confirm channel for all requests.

use std::time::Duration;

use anyhow::Context;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection};
use roomtape_shared::config::AmqpSettings;
use roomtape_shared::events::routing_key;
use roomtape_shared::queue::{self, topology};

use crate::event::{Message, Source};
use crate::load::Target;

/// The ingestor's default `RETRY_DELAYS`, so declaring the topology here matches its queues.
const RETRY_DELAYS_SECS: [u64; 5] = [1, 5, 30, 120, 600];

/// One connection, `channels` confirm-mode channels.
#[derive(Debug)]
pub struct Direct<S> {
    connection: Connection,
    channels: Vec<Channel>,
    events: S,
    api_key: String,
}

impl<S: Source> Direct<S> {
    /// Connects, puts each channel in confirm mode, and declares the topology (idempotent).
    pub async fn connect(
        url: &str,
        channels: usize,
        events: S,
        api_key: &str,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(channels > 0, "need at least one channel");
        let settings = AmqpSettings {
            url: url.to_owned().into(),
            retry_delays: RETRY_DELAYS_SECS
                .iter()
                .map(|secs| Duration::from_secs(*secs))
                .collect(),
        };
        let connection = queue::connect(&settings, "roomtape-bench")
            .await
            .context("connecting to RabbitMQ")?;
        let mut opened = Vec::with_capacity(channels);
        for _ in 0..channels {
            let channel = connection.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            opened.push(channel);
        }
        if let Some(channel) = opened.first() {
            topology::declare(channel, &settings.retry_delays)
                .await
                .context("declaring the topology")?;
        }
        Ok(Self {
            connection,
            channels: opened,
            events,
            api_key: api_key.to_owned(),
        })
    }

    pub async fn close(&self) -> anyhow::Result<()> {
        self.connection.close(200, "benchmark done".into()).await?;
        Ok(())
    }

    /// What the ingestor sets for the same event (`publish.rs`).
    fn properties(&self, message: &Message, created_at: u64) -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert(
            "x-livekit-key".into(),
            AMQPValue::LongString(LongString::from(self.api_key.as_str())),
        );
        BasicProperties::default()
            .with_message_id(message.id.as_str().into())
            .with_type(message.event.into())
            .with_timestamp(created_at)
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_headers(headers)
    }
}

impl<S: Source> Target for Direct<S> {
    async fn send(&self, n: u64) -> anyhow::Result<()> {
        let index = usize::try_from(n).unwrap_or(0) % self.channels.len();
        let channel = &self.channels[index];
        let message = self.events.message(n);
        let properties = self.properties(&message, crate::event::now_unix());
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let confirmation = channel
            .basic_publish(
                topology::EVENTS_EXCHANGE.into(),
                routing_key(message.event).as_str().into(),
                options,
                &message.body,
                properties,
            )
            .await?
            .await?;
        anyhow::ensure!(!confirmation.is_nack(), "broker nacked the message");
        anyhow::ensure!(
            confirmation.take_message().is_none(),
            "message returned unroutable"
        );
        Ok(())
    }
}
