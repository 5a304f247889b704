//! The ingestor's side of RabbitMQ: a pool of confirmed publishing channels, kept alive by the
//! HTTP workers that publish on them, and a watch on the broker's resource alarms.

pub mod alarm;
pub mod confirm;
pub mod linger;
pub mod publish;
