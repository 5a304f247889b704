//! RabbitMQ, as every roomtape process uses it: connecting, the topology (CONTRACTS §3), the
//! confirmed publish, the `x-roomtape-*` headers, sending commands and awaiting their replies,
//! and reconnecting with backoff.

pub mod commands;
pub mod headers;
pub mod publish;
pub mod reconnect;
pub mod topology;

pub use publish::{publish_confirmed, Outgoing, PublishError, CONFIRM_TIMEOUT};

use lapin::{Connection, ConnectionProperties};
use secrecy::ExposeSecret;

use crate::config::AmqpSettings;

/// Opens a connection named after the process, so operators can tell connections apart in the
/// management UI.
pub async fn connect(settings: &AmqpSettings, name: &str) -> lapin::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(settings.url.expose_secret(), properties).await
}
