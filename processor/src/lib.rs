//! `roomtape-processor`: consumes LiveKit events (and recording commands) from RabbitMQ and
//! keeps `recordings`, `assets`, `rooms` and `webhook_events` in PostgreSQL.

pub mod commands;
pub mod consume;
pub mod error;
pub mod events;
pub mod livekit;
pub mod metrics;
pub mod publish;
pub mod reconcile;
pub mod startup;
pub mod storage;
pub mod store;
