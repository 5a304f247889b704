//! `roomtape dlq`: the dead-letter queue, `roomtape.dead`. `list` and `show` read it, `replay`
//! moves dead letters back to the queue they failed on (for another full retry schedule, once
//! the cause is fixed), `purge` deletes them.
//!
//! # Reading a queue without losing or ageing what is in it
//!
//! AMQP 0-9-1 has no way to look at a queue's messages without taking them. The usual browse,
//! `basic.get` then `basic.nack` with `requeue`, counts as a delivery on a quorum queue, and
//! `roomtape.dead` is one:
//!
//! - RabbitMQ 3.x increments `x-delivery-count` on every return but has no default limit;
//! - RabbitMQ 4.0 to 4.2 give every quorum queue a delivery limit of 20 by default, so the
//!   twentieth browse would drop every dead letter (`roomtape.dead` dead-letters nowhere);
//! - RabbitMQ 4.3 counts only failed returns (`basic.reject`, a closed channel), not
//!   `basic.nack`, but a browse that is interrupted still ages every message it held.
//!
//! Switching the limit off is not portable either: RabbitMQ 4 accepts `x-delivery-limit = -1`
//! (argument or policy) as "no limit", but 3.10 accepts the argument and reads it as a limit
//! below one, dropping a message on its first return, and refuses it in a policy; changing the
//! arguments of the existing queue fails with `PRECONDITION_FAILED`, and a policy needs rights
//! on the broker this tool does not have.
//!
//! So every command here takes a message with `basic.get` and either moves it (`replay`) or
//! puts a copy back at the end of `roomtape.dead` (everything else), the copy confirmed by the
//! broker before the original is acked, exactly as the processor moves messages between
//! queues. Nothing is ever returned to the queue: a copy is a new message, delivered zero
//! times, with the same body, properties and headers (less those the broker adds on delivery).
//! A walk takes as many messages as were ready when it started, so a walk over the whole queue
//! leaves it in the order it found it. What this costs: one confirmed publish per message
//! looked at; if the connection drops between a copy's confirm and the original's ack, the
//! message is there twice (never lost); and two walks at once (or a walk and a replay) can
//! show a message twice or miss one, though neither loses any.

//!
//! `queue` holds that walk (`DeadLetters`); `list`, `show`, `replay` and `purge` are the
//! subcommands.

mod letter;
mod list;
mod purge;
mod queue;
mod replay;
mod show;

use roomtape_shared::config::Env;

use crate::error::CliError;
use crate::output::Output;

#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// List dead letters, oldest first: message id, kind, source queue, attempts, when, last
    /// error.
    ///
    /// Reading moves each message to the back of roomtape.dead through a confirmed copy, so
    /// nothing is lost and no delivery is counted; listing the whole queue leaves it in the
    /// same order.
    List {
        /// Show at most this many. With more in the queue, the ones shown end up at its back,
        /// so the next `dlq list` shows the next ones.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Everything about a dead letter: properties, headers, and its body (pretty-printed if
    /// JSON).
    Show(ShowArgs),
    /// Move dead letters back to the queue they failed on, for a fresh retry schedule.
    ///
    /// Each copy is confirmed by the broker before the dead letter is removed. Dead letters that
    /// record no source queue stay in roomtape.dead.
    Replay {
        /// Replay only the dead letter with this message id (see `roomtape dlq list`), and any
        /// copy of it.
        message_id: Option<String>,
        /// At most this many messages.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Delete every dead letter in roomtape.dead, for good.
    Purge {
        /// Do not ask for confirmation (required when there is no terminal to ask on).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct ShowArgs {
    /// The dead letter's message id (see `roomtape dlq list`).
    pub message_id: Option<String>,
    /// Show every dead letter.
    #[arg(long)]
    pub all: bool,
}

pub async fn run(command: &DlqCommand, env: &Env, out: &mut Output<'_>) -> Result<u8, CliError> {
    match command {
        DlqCommand::List { limit } => list::run(env, *limit, out).await,
        DlqCommand::Show(args) => show::run(env, args.message_id.as_deref(), out).await,
        DlqCommand::Replay { message_id, limit } => {
            replay::run(env, message_id.as_deref(), *limit, out).await
        }
        DlqCommand::Purge { yes } => purge::run(env, *yes, out).await,
    }
}
