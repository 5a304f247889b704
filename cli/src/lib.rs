//! `roomtape`: the operator tool. `record start` and `record stop` publish a command to
//! `roomtape.commands`, wait for the processor's reply and print it; `dlq replay` moves dead
//! letters back to the queue they failed on.

mod command;
mod dlq;

pub use command::{execute, Cli};
