//! `roomtape.commands`: start and stop recordings through LiveKit's Egress API; the reply goes
//! back to the requester (CONTRACTS §4). This module parses each command, hands it to `start`
//! or `stop`, decides whether a failed one may be retried, and answers it; `reply` words the
//! answers, `request` builds LiveKit's request, and `sent` measures a start's deadline.

pub mod reply;
pub mod request;
pub mod sent;
mod start;
mod stop;

use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use roomtape_shared::clock::Clock;
use roomtape_shared::config::StorageProfiles;
use roomtape_shared::livekit::EgressClient;
use roomtape_shared::queue::topology::COMMANDS_QUEUE;
use roomtape_shared::Chain;
use serde_json::Value;

use crate::db::commands as progress;
use crate::error::HandleError;
use crate::thumbnail::Thumbnails;
use crate::worker::{Handled, Handler, Message, Outbox};
use roomtape_shared::commands::{self as model, Command, FilepathTemplate};
use sent::SentAt;

/// Handles `roomtape.commands`.
#[derive(Debug)]
pub struct CommandProcessor {
    pool: Pool,
    egress: EgressClient,
    storage: StorageProfiles,
    /// `COMMAND_FILEPATH_TEMPLATE`: where a start's recording may be written.
    filepath_template: FilepathTemplate,
    /// `COMMAND_REPLY_QUEUES`: where replies may go besides direct reply-to.
    reply_queues: Vec<glob::Pattern>,
    /// `COMMAND_START_DEADLINE`: how long after it was sent a start may still reach LiveKit.
    deadline: Duration,
    /// "Now" for deadlines and stops: `Clock::System` reads the database's clock, the one every
    /// processor shares and first-seen times are written with; a fixed clock stands in for it in
    /// tests.
    clock: Clock,
    /// Asks LiveKit for the image output a video recording's thumbnail comes from; `None`: no
    /// image output.
    thumbnails: Option<Thumbnails>,
}

impl Handler for CommandProcessor {
    fn queue(&self) -> &'static str {
        COMMANDS_QUEUE
    }

    async fn handle<O: Outbox>(
        &self,
        message: &Message,
        _outbox: &O,
    ) -> Result<Handled, HandleError> {
        let kind = command_kind(message);
        let reply = match model::parse(kind, &message.body, &self.storage, &self.filepath_template)
        {
            // Nobody to tell: keep it where an operator will see it.
            Err(invalid) if message.reply_to.is_none() => return Err(invalid.into()),
            Err(invalid) => {
                tracing::warn!(error = %invalid, "invalid command");
                reply::error("invalid_command", invalid)
            }
            Ok(Command::Start(start)) => match command_id(message) {
                Some(id) => self.start(id, &start, SentAt::of(message)).await?,
                None => reply::error(
                    "invalid_command",
                    "message_id is required: it is the command's idempotency key",
                ),
            },
            Ok(Command::Stop(stop)) => self.stop(&stop, SentAt::of(message)).await?,
        };
        Ok(self.answered(message, kind, reply))
    }

    /// A start is not retried past its deadline, stamped or not: it is answered now instead.
    async fn retry_allowed(&self, message: &Message, delay: Duration) -> bool {
        let (Some(id), "recording.start") = (command_id(message), command_kind(message)) else {
            return true;
        };
        match self.time_left(id, SentAt::of(message)).await {
            Ok(left) => left.is_some_and(|left| delay < left),
            Err(error) => {
                // The retry measures its deadline again before it calls LiveKit.
                tracing::warn!(error = %Chain(&error), "cannot tell how much of the start's deadline is left; retrying");
                true
            }
        }
    }

    /// LiveKit refused the command, or could not be reached before the start's deadline (or
    /// through every retry): the requester gets an error reply, stored for a start so that it
    /// is never carried out afterwards and a repeat gets the same answer.
    async fn give_up<O: Outbox>(
        &self,
        message: &Message,
        error: &HandleError,
        _outbox: &O,
    ) -> Result<Option<Handled>, HandleError> {
        let kind = command_kind(message);
        let start = match model::parse(kind, &message.body, &self.storage, &self.filepath_template)
        {
            Ok(Command::Start(start)) => Some(start),
            // It parsed when it was first handled, unless the configuration changed since.
            _ => None,
        };
        let reply = match (error, start, command_id(message)) {
            (HandleError::LiveKit(error), Some(start), Some(id)) => {
                tracing::warn!(error = %Chain(error), attempt = message.attempt.number, "LiveKit refused the command");
                // Retries were left: the deadline is what stopped them.
                let reply = match error.is_transient() && message.attempt.can_retry() {
                    true => self.deadline_exceeded(Chain(error)),
                    false => reply::error(reply::start_error_code(error), Chain(error)),
                };
                self.store_start_failure(id, &start, reply).await?
            }
            (HandleError::LiveKit(error), _, _) => reply::error("egress_error", Chain(error)),
            (HandleError::StartUnconfirmed, Some(start), Some(id)) => {
                self.last_look(id, &start).await?
            }
            _ => return Ok(None),
        };
        Ok(Some(self.answered(message, kind, reply)))
    }
}

/// RabbitMQ rewrites direct reply-to addresses to this prefix plus a token.
const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

fn command_id(message: &Message) -> Option<&str> {
    message.message_id.as_deref().filter(|id| !id.is_empty())
}

/// The routing key names the command; sent straight to the queue, the AMQP `type` does.
fn command_kind(message: &Message) -> &str {
    let key = message.routing_key.as_str();
    if key.starts_with("recording.") {
        return key;
    }
    message.kind.as_deref().unwrap_or(key)
}

impl CommandProcessor {
    pub fn new(
        pool: Pool,
        egress: EgressClient,
        storage: StorageProfiles,
        filepath_template: FilepathTemplate,
        reply_queues: Vec<glob::Pattern>,
        deadline: Duration,
        clock: Clock,
    ) -> Self {
        Self {
            pool,
            egress,
            storage,
            filepath_template,
            reply_queues,
            deadline,
            clock,
            thumbnails: None,
        }
    }

    /// Starts ask for the image output `thumbnails` says (`RECORDING_THUMBNAILS`).
    pub fn with_thumbnails(self, thumbnails: Thumbnails) -> Self {
        Self {
            thumbnails: Some(thumbnails),
            ..self
        }
    }

    /// The command handled, with its reply if `reply_to` is a queue replies may go to: direct
    /// reply-to, or one `COMMAND_REPLY_QUEUES` names. Anything else gets no reply (logged), so a
    /// publisher cannot make the processor write into other queues.
    fn answered(&self, message: &Message, kind: &str, reply: Value) -> Handled {
        let outcome = if reply["ok"] == true { "ok" } else { "error" };
        let handled = Handled::new(kind, outcome);
        match message.reply_to.as_deref() {
            Some(queue)
                if queue.starts_with(DIRECT_REPLY_TO)
                    || self.reply_queues.iter().any(|p| p.matches(queue)) =>
            {
                handled.with_reply(reply)
            }
            Some(queue) => {
                tracing::warn!(
                    reply_to = queue,
                    "reply not sent: the queue is not in COMMAND_REPLY_QUEUES"
                );
                handled
            }
            None => handled,
        }
    }

    /// "Now", in milliseconds since the epoch (see [`CommandProcessor::clock`]).
    async fn now_ms(&self, client: &impl GenericClient) -> Result<u64, tokio_postgres::Error> {
        match self.clock {
            Clock::System => progress::now_ms(client).await,
            clock => Ok(clock.now_unix_ms()),
        }
    }
}
