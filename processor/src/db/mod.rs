//! The processor's own tables (`rooms`, `recording_commands`, `webhook_events`): one module per
//! table, each a few statements that are safe to repeat. `recordings` and `assets`, which the
//! CLI and the API read too, are in `roomtape_shared::db`. [`transaction`] begins a transaction with
//! its first statements.

pub mod commands;
pub mod rooms;
pub mod transaction;
pub mod webhook_events;
