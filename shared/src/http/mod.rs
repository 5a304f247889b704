//! HTTP: the one server shell every binary runs, and the operational endpoints each serves.

mod ops;
mod server;

pub use ops::{configure, OpsState, ReadinessCheck};
pub use server::{HttpService, ServerOptions};
