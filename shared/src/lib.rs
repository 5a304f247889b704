//! Everything the roomtape binaries share: configuration, the LiveKit event model, the RabbitMQ
//! topology, the database schema, telemetry and the health/metrics endpoints.

pub mod auth;
pub mod config;
pub mod db;
pub mod events;
pub mod http;
pub mod metrics;
pub mod queue;
pub mod shutdown;
pub mod storage;
pub mod telemetry;
