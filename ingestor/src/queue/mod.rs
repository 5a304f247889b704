//! The ingestor's side of RabbitMQ: one confirmed publishing channel, kept alive.

pub mod publish;
