//! `roomtape-processor`: consumes LiveKit events (and recording commands) from RabbitMQ and
//! keeps `recordings`, `assets`, `rooms` and `webhook_events` in PostgreSQL.
//!
//! `worker` runs a queue and settles each message, by the `error` a handler fails with;
//! `events` and `commands` are the two queues' handlers; `egress` is the recording lifecycle
//! (it fails with its own error, which `error` takes in) and `probe` opens a finished egress's
//! files before it is `ready`, `thumbnail` picks or takes a picture of it; `reconcile` asks
//! LiveKit about
//! recordings whose webhooks never came; `db` holds the queries on the processor's own tables;
//! `config` its settings.

pub mod commands;
pub mod config;
pub mod db;
pub mod egress;
pub mod error;
pub mod events;
pub mod gauges;
pub mod metrics;
pub mod notify;
pub mod probe;
pub mod reconcile;
pub mod recording_retention;
pub mod retention;
pub mod startup;
pub mod thumbnail;
pub mod worker;
