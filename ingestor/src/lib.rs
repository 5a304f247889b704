//! `roomtape-ingestor`: LiveKit's webhook target. It verifies each webhook, publishes it to
//! RabbitMQ with a publisher confirm, and answers 2xx only once the broker has it.

pub mod admission;
pub mod config;
pub mod dedupe;
pub mod metrics;
pub mod queue;
pub mod startup;
pub mod webhook;
