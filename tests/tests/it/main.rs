//! Integration tests: one binary, real RabbitMQ, PostgreSQL and S3 (see `roomtape_tests`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod api_control;
mod broker;
mod cli;
mod commands;
mod config;
mod console;
mod dlq;
mod doctor;
mod handlers;
mod health;
mod ingestor_body;
mod ingestor_broker;
mod ingestor_pool;
mod ingestor_vectors;
mod ingestor_webhooks;
mod migrations;
mod processor_lifecycle;
mod processor_reliability;
mod processor_rooms;
mod reconcile;
mod recordings;
mod simulate;
mod storage;
mod worker;
