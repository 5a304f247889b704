//! `roomtape-processor`: consumes LiveKit events and recording commands from RabbitMQ and keeps
//! `recordings`, `assets`, `rooms` and `webhook_events` in PostgreSQL.

pub mod startup;
