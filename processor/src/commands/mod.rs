//! `roomtape.commands`: start and stop recordings through LiveKit's Egress API; the reply goes
//! back to the requester (CONTRACTS §4).

pub mod reply;
pub mod request;
pub mod sent;

use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use roomtape_shared::clock::Clock;
use roomtape_shared::config::StorageProfiles;
use roomtape_shared::db::recordings::{self, Requested};
use roomtape_shared::events::proto::{EgressInfo, EgressStatus, ListEgressRequest};
use roomtape_shared::livekit::{EgressClient, EgressError};
use roomtape_shared::queue::topology::COMMANDS_QUEUE;
use roomtape_shared::Chain;
use serde_json::{json, Value};

use crate::db::commands::{self as progress, CommandLock, Progress, Stored};
use crate::egress::plan;
use crate::error::HandleError;
use crate::worker::{Handled, Handler, Message, Outbox};
use roomtape_shared::commands::{self as model, Command, FilepathTemplate, Start, Stop};
use sent::{time_left, SentAt};

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
}

/// How long after a start is given up its egress is looked up a second time: LiveKit may list
/// an egress only once the call that started it, cut off on our side, has finished on its.
const SECOND_LOOK_AFTER: Duration = Duration::from_secs(5);

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
                    false => reply::error(start_error_code(error), Chain(error)),
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

/// How long a start past its deadline may still wait for LiveKit to list its egresses: the
/// answer is due within a second of the deadline.
const LATE_LOOK: Duration = Duration::from_secs(1);

/// Why a start whose earlier call may have reached LiveKit is given up.
const NEVER_CONFIRMED: &str =
    "LiveKit never confirmed the start nor listed its egress, and a start is never sent twice";

/// An egress LiveKit started for the command `command_id` in `room_name`, if it lists one.
async fn started_earlier(
    egress: &EgressClient,
    command_id: &str,
    room_name: &str,
) -> Result<Option<EgressInfo>, EgressError> {
    let request = ListEgressRequest {
        room_name: room_name.to_owned(),
        ..ListEgressRequest::default()
    };
    let egresses = egress.list(&request).await?;
    Ok(egresses
        .into_iter()
        .find(|info| request::started_by(info, command_id)))
}

/// Stops the egress LiveKit started for `command_id`, if it is still starting or active (best
/// effort: logged when it fails).
async fn stop_started_by(egress: &EgressClient, command_id: &str, room_name: &str) {
    let running = |info: &EgressInfo| info.status < EgressStatus::EgressEnding as i32;
    match started_earlier(egress, command_id, room_name).await {
        Ok(Some(info)) if running(&info) => match egress.stop(&info.egress_id).await {
            Ok(_) => {
                tracing::warn!(egress_id = %info.egress_id, command_id, "stopped the egress of a start that will not be carried out");
            }
            Err(error) => {
                tracing::error!(egress_id = %info.egress_id, error = %Chain(&error), "could not stop the egress of a start that will not be carried out");
            }
        },
        Ok(_) => {}
        Err(error) => {
            tracing::error!(error = %Chain(&error), command_id, "could not look up the egress of a start that will not be carried out");
        }
    }
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

    /// Starts the recording at most once per `command_id`, however often the command arrives,
    /// and never after its deadline (counted from `sent`, else from when the command was first
    /// seen) or after a stop for the room sent later.
    pub async fn start(
        &self,
        command_id: &str,
        start: &Start,
        sent: SentAt,
    ) -> Result<Value, HandleError> {
        // One connection holds the command's lock and does the writes: a task never waits for
        // a second connection while holding one.
        let client = self.pool.get().await?;
        let lock = CommandLock::take_with_room(client, command_id, &start.room_name).await?;
        let result = self
            .start_locked(lock.client(), command_id, start, sent)
            .await;
        lock.release().await;
        result
    }

    async fn start_locked(
        &self,
        client: &impl GenericClient,
        command_id: &str,
        start: &Start,
        sent: SentAt,
    ) -> Result<Value, HandleError> {
        let seen = progress::seen(client, command_id).await?;
        if let Some(seen) = seen
            .as_ref()
            .filter(|seen| !seen.same_body(&start.fingerprint))
        {
            // Not stored: the id keeps the first command's answer.
            tracing::warn!(command_id, "message_id reused with another body");
            return Ok(idempotency_conflict(command_id, &seen.progress));
        }
        let (earlier, first_seen_ms, called) = match seen.map(|seen| seen.progress) {
            Some(Progress::Done(reply)) => return Ok(reply),
            Some(Progress::Calling {
                first_seen_ms,
                called,
            }) => {
                let earlier = self.look_up(client, command_id, start, sent, first_seen_ms);
                (earlier.await?, first_seen_ms, called)
            }
            None => {
                let now_ms = self.now_ms(client).await?;
                let (room, fingerprint) = (&start.room_name, &start.fingerprint);
                let sent_at_ms = sent.latest_ms(now_ms);
                progress::calling(client, command_id, room, fingerprint, sent_at_ms).await?;
                (None, now_ms, false)
            }
        };
        if let Some(info) = earlier {
            return self.record_started(client, command_id, start, &info).await;
        }
        let room = &start.room_name;
        if progress::stopped_since(client, room, sent.latest_ms(first_seen_ms)).await? {
            let reply = cancelled(room);
            return self.store_failure(client, command_id, start, reply).await;
        }
        if !start.allow_concurrent {
            let active = recordings::unfinished_in_room(client, room).await?;
            if !active.is_empty() {
                let reply = already_recording(room, &active);
                return self.store_failure(client, command_id, start, reply).await;
            }
        }
        let sent_ms = sent.earliest_ms(first_seen_ms);
        let now_ms = self.now_ms(client).await?;
        let Some(left) = time_left(sent_ms, self.deadline, now_ms) else {
            let cause = match called {
                true => NEVER_CONFIRMED.to_owned(),
                false => {
                    let waited = now_ms.saturating_sub(sent_ms) / 1000;
                    format!("it waited {waited}s before it could be sent")
                }
            };
            let reply = self.deadline_exceeded(cause);
            return self.store_failure(client, command_id, start, reply).await;
        };
        if called {
            // An earlier call may have started it and the answer was lost: sending it again
            // could start a second egress. Look again later, until the deadline.
            return Err(HandleError::StartUnconfirmed);
        }
        self.call_start(client, command_id, start, left).await
    }

    /// Sends the start, marked as sent first so that a crash mid-call leaves the mark.
    async fn call_start(
        &self,
        client: &impl GenericClient,
        command_id: &str,
        start: &Start,
        left: Duration,
    ) -> Result<Value, HandleError> {
        progress::called(client, command_id, true).await?;
        let request = request::room_composite(start, command_id);
        let call = self.egress.start_room_composite(&request);
        match tokio::time::timeout(left, call).await {
            Ok(Ok(started)) => {
                self.record_started(client, command_id, start, &started)
                    .await
            }
            Ok(Err(error)) => {
                if !error.may_have_acted() {
                    // Nothing was started: the retry may call again.
                    progress::called(client, command_id, false).await?;
                }
                Err(error.into())
            }
            Err(_) => {
                // LiveKit may have stored the egress and still be answering: storing the failure
                // stops what it has.
                let cause =
                    format!("LiveKit did not answer StartRoomCompositeEgress within {left:?}");
                let reply = self.deadline_exceeded(cause);
                self.store_failure(client, command_id, start, reply).await
            }
        }
    }

    /// The egress an interrupted delivery of this command started, if LiveKit lists one. The
    /// look is bounded by what is left of the deadline, or [`LATE_LOOK`] once it has passed, and
    /// one that takes longer finds nothing.
    async fn look_up(
        &self,
        client: &impl GenericClient,
        command_id: &str,
        start: &Start,
        sent: SentAt,
        first_seen_ms: u64,
    ) -> Result<Option<EgressInfo>, HandleError> {
        let now_ms = self.now_ms(client).await?;
        let sent_ms = sent.earliest_ms(first_seen_ms);
        let bound = time_left(sent_ms, self.deadline, now_ms).unwrap_or(LATE_LOOK);
        let look = started_earlier(&self.egress, command_id, &start.room_name);
        match tokio::time::timeout(bound, look).await {
            Ok(found) => Ok(found?),
            Err(_) => {
                tracing::warn!(
                    command_id,
                    ?bound,
                    "LiveKit did not list its egresses in time"
                );
                Ok(None)
            }
        }
    }

    /// "Now", in milliseconds since the epoch (see [`CommandProcessor::clock`]).
    async fn now_ms(&self, client: &impl GenericClient) -> Result<u64, tokio_postgres::Error> {
        match self.clock {
            Clock::System => progress::now_ms(client).await,
            Clock::FixedUnix(seconds) => Ok(seconds.saturating_mul(1000)),
        }
    }

    /// What is left of the deadline of the start `command_id`, sent at `sent`.
    async fn time_left(
        &self,
        command_id: &str,
        sent: SentAt,
    ) -> Result<Option<Duration>, HandleError> {
        let client = self.pool.get().await?;
        let now_ms = self.now_ms(&client).await?;
        let first_seen_ms = match progress::progress(&client, command_id).await? {
            Some(Progress::Calling { first_seen_ms, .. }) => first_seen_ms,
            _ => now_ms,
        };
        Ok(time_left(
            sent.earliest_ms(first_seen_ms),
            self.deadline,
            now_ms,
        ))
    }

    fn deadline_exceeded(&self, cause: impl std::fmt::Display) -> Value {
        let deadline = humantime::format_duration(self.deadline);
        reply::error(
            "deadline_exceeded",
            format!("the start could not reach LiveKit within COMMAND_START_DEADLINE ({deadline}) and will not be carried out: {cause}"),
        )
    }

    /// A start whose earlier call was never confirmed, at the end of its retries: the egress
    /// is adopted if LiveKit lists it now, else the start is answered `deadline_exceeded`.
    async fn last_look(&self, command_id: &str, start: &Start) -> Result<Value, HandleError> {
        let lock = CommandLock::take(self.pool.get().await?, command_id).await?;
        let look = started_earlier(&self.egress, command_id, &start.room_name);
        // One that takes longer finds nothing: the sweep looks again.
        let found = tokio::time::timeout(LATE_LOOK, look)
            .await
            .unwrap_or(Ok(None));
        let result = match found {
            Ok(Some(info)) => {
                self.record_started(lock.client(), command_id, start, &info)
                    .await
            }
            Ok(None) => {
                let reply = self.deadline_exceeded(NEVER_CONFIRMED);
                self.store_failure(lock.client(), command_id, start, reply)
                    .await
            }
            Err(error) => Err(error.into()),
        };
        lock.release().await;
        result
    }

    /// [`Self::store_failure`] under the command's lock.
    async fn store_start_failure(
        &self,
        command_id: &str,
        start: &Start,
        reply: Value,
    ) -> Result<Value, HandleError> {
        let lock = CommandLock::take(self.pool.get().await?, command_id).await?;
        let stored = self
            .store_failure(lock.client(), command_id, start, reply)
            .await;
        lock.release().await;
        stored
    }

    /// The reply a start gets once it is given up, unless an earlier delivery finished it. If a
    /// call to start it may have reached LiveKit, whatever LiveKit started for it is stopped.
    async fn store_failure(
        &self,
        client: &impl GenericClient,
        command_id: &str,
        start: &Start,
        reply: Value,
    ) -> Result<Value, HandleError> {
        match progress::done(client, command_id, None, &reply).await? {
            Stored::Now { called } => {
                if called {
                    self.sweep(command_id, &start.room_name);
                }
                Ok(reply)
            }
            Stored::Earlier => match progress::progress(client, command_id).await? {
                Some(Progress::Done(earlier)) => Ok(earlier),
                _ => Ok(reply),
            },
        }
    }

    /// A start answered "will not be carried out" after a call that may have reached LiveKit:
    /// the egress LiveKit started for it, if any, is looked up by the command's tag and stopped,
    /// now and once more [`SECOND_LOOK_AFTER`], in the background (the reply does not wait).
    fn sweep(&self, command_id: &str, room_name: &str) {
        let (egress, command_id, room_name) = (
            self.egress.clone(),
            command_id.to_owned(),
            room_name.to_owned(),
        );
        tokio::spawn(async move {
            stop_started_by(&egress, &command_id, &room_name).await;
            tokio::time::sleep(SECOND_LOOK_AFTER).await;
            stop_started_by(&egress, &command_id, &room_name).await;
        });
    }

    async fn record_started(
        &self,
        client: &impl GenericClient,
        command_id: &str,
        start: &Start,
        info: &EgressInfo,
    ) -> Result<Value, HandleError> {
        let recording = recordings::requested(
            client,
            &Requested {
                egress_id: info.egress_id.clone(),
                room_name: start.room_name.clone(),
                layout: start.layout.clone(),
                file_format: start.file_format.clone(),
                audio_only: start.audio_only,
                storage_provider: start.profile.provider.clone(),
                storage_bucket: start.profile.bucket.clone(),
                stream_id: start.stream_id.clone(),
                user_id: start.user_id.clone(),
                metadata: start.metadata.clone(),
            },
        )
        .await?;
        let status = recording["status"].clone();
        let reply = json!({"ok": true, "egress_id": info.egress_id, "status": status, "recording": recording});
        if let Stored::Now { .. } =
            progress::done(client, command_id, Some(&info.egress_id), &reply).await?
        {
            tracing::info!(egress_id = %info.egress_id, room = %start.room_name, "recording started");
            return Ok(reply);
        }
        // A stop for the room cancelled the start while LiveKit was starting it.
        tracing::warn!(egress_id = %info.egress_id, "start cancelled while LiveKit started it; stopping the egress");
        let stopped = self.egress.stop(&info.egress_id).await?;
        recordings::apply(client, &plan::plan(&stopped, None, None).update).await?;
        match progress::progress(client, command_id).await? {
            Some(Progress::Done(reply)) => Ok(reply),
            _ => Ok(cancelled(&start.room_name)),
        }
    }

    /// Stops one egress, or every unfinished recording of a room and the starts of it sent
    /// before the stop (`sent`). Stopping what already ended is success.
    pub async fn stop(&self, stop: &Stop, sent: SentAt) -> Result<Value, HandleError> {
        let client = self.pool.get().await?;
        let (egress_ids, cancelled_starts) = match stop {
            Stop::Egress(id) => (vec![id.clone()], Vec::new()),
            Stop::Room(room) => {
                let sent_at_ms = sent.earliest_ms(self.now_ms(&client).await?);
                let reply = cancelled(room);
                let starts = progress::stop_room(&client, room, &reply, sent_at_ms).await?;
                for start in starts.iter().filter(|start| start.called) {
                    self.sweep(&start.message_id, room);
                }
                let ids = starts.into_iter().map(|start| start.message_id);
                (
                    recordings::unfinished_in_room(&client, room).await?,
                    ids.collect(),
                )
            }
        };
        for egress_id in &egress_ids {
            match self.egress.stop(egress_id).await {
                Ok(info) => {
                    recordings::apply(&client, &plan::plan(&info, None, None).update).await?;
                }
                Err(error) if matches!(error.code(), Some("failed_precondition" | "not_found")) => {
                    tracing::info!(%egress_id, "already ended");
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(match stop {
            Stop::Egress(id) => {
                let recording = recordings::snapshot(&client, id).await?;
                let status = recording
                    .as_ref()
                    .map_or(Value::Null, |r| r["status"].clone());
                json!({"ok": true, "egress_id": id, "status": status, "recording": recording})
            }
            Stop::Room(room) => json!({"ok": true, "room_name": room, "egress_ids": egress_ids,
                                        "cancelled_commands": cancelled_starts}),
        })
    }
}

/// The reply of a start that a stop for its room overtook.
fn cancelled(room: &str) -> Value {
    reply::error(
        "cancelled",
        format!("a stop for room {room} arrived while the start was pending; it will not be carried out"),
    )
}

/// The reply of a start for a room that records already.
fn already_recording(room: &str, active: &[String]) -> Value {
    let mut reply = reply::error(
        "already_recording",
        format!("room {room} is already being recorded ({}); send allow_concurrent: true to record it twice", active.join(", ")),
    );
    reply["error"]["egress_ids"] = json!(active);
    reply
}

/// The reply to a `message_id` used again with another body.
fn idempotency_conflict(command_id: &str, first: &Progress) -> Value {
    let state = match first {
        Progress::Done(_) => "was answered",
        Progress::Calling { .. } => "is being carried out",
    };
    reply::error(
        "idempotency_conflict",
        format!("message_id {command_id} was first used with another body, which {state}; use a new id for a new command"),
    )
}

fn start_error_code(error: &EgressError) -> &'static str {
    match error.code() {
        Some("not_found") => "room_not_found",
        _ => "egress_error",
    }
}
