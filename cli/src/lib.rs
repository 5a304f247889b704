//! `roomtape`: the operator tool. `record start` and `record stop` publish a command to
//! `roomtape.commands`, wait for the processor's reply and print it.

mod command;

pub use command::{execute, Cli};
