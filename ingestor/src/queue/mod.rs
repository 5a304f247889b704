//! The ingestor's side of RabbitMQ: a pool of confirmed publishing channels, kept alive.

pub mod publish;
