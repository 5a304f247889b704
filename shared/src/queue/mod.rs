//! RabbitMQ: connecting, and the topology every process declares (CONTRACTS §3).

pub mod topology;

use lapin::{Connection, ConnectionProperties};
use secrecy::ExposeSecret;

use crate::config::AmqpSettings;

/// Opens a connection named after the process, so operators can tell connections apart in the
/// management UI.
pub async fn connect(settings: &AmqpSettings, name: &str) -> lapin::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(settings.url.expose_secret(), properties).await
}
