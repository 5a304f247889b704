//! `roomtape-api`: the HTTP API over the recording library (list, details, download links,
//! delete), starting and stopping recordings through the processor, and the rooms table, with bearer tokens (static scopes or LiveKit access tokens and their grants), CORS, metrics and its OpenAPI document.

pub mod auth;
pub mod config;
pub mod console;
pub mod control;
pub mod db;
pub mod error;
pub mod grants;
pub mod livekit_egress;
pub mod me;
pub mod metrics;
pub mod notifications;
pub mod openapi;
pub mod query;
pub mod recordings;
pub mod rooms;
pub mod startup;
pub mod usage;
