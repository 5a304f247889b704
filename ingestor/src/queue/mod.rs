//! The ingestor's side of RabbitMQ: a pool of confirmed publishing channels, kept alive by the
//! HTTP workers that publish on them.

pub mod confirm;
pub mod publish;
