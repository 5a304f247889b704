//! `roomtape.commands`: start and stop recordings through LiveKit's Egress API, and reply.

pub mod model;
pub mod reply;
pub mod request;

use deadpool_postgres::{GenericClient, Pool};
use lapin::message::Delivery;
use lapin::Channel;
use roomtape_shared::config::StorageProfiles;
use roomtape_shared::events::proto::{EgressInfo, ListEgressRequest};
use roomtape_shared::queue::topology::COMMANDS_QUEUE;
use serde_json::{json, Value};

use crate::consume::{original_routing_key, Attempt, Handled, Handler};
use crate::error::HandleError;
use crate::events::egress;
use crate::livekit::{EgressClient, EgressError};
use crate::store::commands::{self as progress, CommandLock, Progress};
use crate::store::recordings::{self, Requested};
use model::{Command, Start, Stop};

/// Handles `roomtape.commands`.
#[derive(Debug)]
pub struct CommandProcessor {
    pool: Pool,
    egress: EgressClient,
    storage: StorageProfiles,
}

impl Handler for CommandProcessor {
    fn queue(&self) -> &'static str {
        COMMANDS_QUEUE
    }

    async fn handle(
        &self,
        delivery: &Delivery,
        attempt: Attempt,
        publisher: &Channel,
    ) -> Result<Handled, HandleError> {
        let kind = command_kind(delivery);
        let message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str());
        let reply = match model::parse(kind, &delivery.data, &self.storage) {
            // Nobody to tell: keep it where an operator will see it.
            Err(invalid) if delivery.properties.reply_to().is_none() => {
                return Err(HandleError::Poison(format!("invalid command: {invalid}")));
            }
            Err(invalid) => {
                tracing::warn!(error = %invalid, "invalid command");
                reply::error("invalid_command", invalid)
            }
            Ok(Command::Start(start)) => match message_id.filter(|id| !id.is_empty()) {
                Some(id) => self.start(id, &start, attempt).await?,
                None => reply::error(
                    "invalid_command",
                    "message_id is required: it is the command's idempotency key",
                ),
            },
            Ok(Command::Stop(stop)) => self.stop(&stop, attempt).await?,
        };
        reply::send(publisher, delivery, &reply)
            .await
            .map_err(|e| HandleError::Publish(e.to_string()))?;
        let outcome = if reply["ok"] == true { "ok" } else { "error" };
        Ok(Handled::new(kind, outcome))
    }
}

/// The routing key names the command; sent straight to the queue, the AMQP `type` does.
fn command_kind(delivery: &Delivery) -> &str {
    let key = original_routing_key(delivery);
    if key.starts_with("recording.") {
        return key;
    }
    delivery
        .properties
        .kind()
        .as_ref()
        .map_or(key, |kind| kind.as_str())
}

impl CommandProcessor {
    pub fn new(pool: Pool, egress: EgressClient, storage: StorageProfiles) -> Self {
        Self {
            pool,
            egress,
            storage,
        }
    }

    /// Starts the recording at most once per `command_id`, however often the command arrives.
    pub async fn start(
        &self,
        command_id: &str,
        start: &Start,
        attempt: Attempt,
    ) -> Result<Value, HandleError> {
        // One connection holds the command's lock and does the writes: a task never waits for
        // a second connection while holding one.
        let lock = CommandLock::take(self.pool.get().await?, command_id).await?;
        let result = self
            .start_locked(lock.client(), command_id, start, attempt)
            .await;
        lock.release().await;
        result
    }

    async fn start_locked(
        &self,
        client: &impl GenericClient,
        command_id: &str,
        start: &Start,
        attempt: Attempt,
    ) -> Result<Value, HandleError> {
        let earlier = match progress::progress(client, command_id).await? {
            Some(Progress::Done(reply)) => return Ok(reply),
            Some(Progress::Calling) => self.started_earlier(command_id, start).await,
            None => {
                progress::calling(client, command_id, &start.room_name).await?;
                Ok(None)
            }
        };
        let started = match earlier {
            Ok(Some(info)) => Ok(info),
            Ok(None) => {
                let request = request::room_composite(start, command_id);
                self.egress.start_room_composite(&request).await
            }
            Err(error) => Err(error),
        };
        match started {
            Ok(info) => self.record_started(client, command_id, start, &info).await,
            Err(error) => {
                let reply = give_up_or_retry(&error, attempt, start_error_code(&error))?;
                progress::done(client, command_id, None, &reply).await?;
                Ok(reply)
            }
        }
    }

    /// An egress an interrupted delivery of this command started, if LiveKit knows one.
    async fn started_earlier(
        &self,
        command_id: &str,
        start: &Start,
    ) -> Result<Option<EgressInfo>, EgressError> {
        let request = ListEgressRequest {
            room_name: start.room_name.clone(),
            ..ListEgressRequest::default()
        };
        let egresses = self.egress.list(&request).await?;
        Ok(egresses
            .into_iter()
            .find(|info| request::started_by(info, command_id)))
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
        tracing::info!(egress_id = %info.egress_id, room = %start.room_name, "recording started");
        let status = recording["status"].clone();
        let reply = json!({"ok": true, "egress_id": info.egress_id, "status": status, "recording": recording});
        progress::done(client, command_id, Some(&info.egress_id), &reply).await?;
        Ok(reply)
    }

    /// Stops one egress, or every unfinished recording of a room. Stopping what already ended
    /// is success.
    pub async fn stop(&self, stop: &Stop, attempt: Attempt) -> Result<Value, HandleError> {
        let client = self.pool.get().await?;
        let egress_ids = match stop {
            Stop::Egress(id) => vec![id.clone()],
            Stop::Room(room) => recordings::unfinished_in_room(&client, room).await?,
        };
        for egress_id in &egress_ids {
            match self.egress.stop(egress_id).await {
                Ok(info) => {
                    recordings::apply(&client, &egress::plan(&info, None, None).update).await?;
                }
                Err(error) if matches!(error.code(), Some("failed_precondition" | "not_found")) => {
                    tracing::info!(%egress_id, "already ended");
                }
                Err(error) => return give_up_or_retry(&error, attempt, "egress_error"),
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
            Stop::Room(room) => json!({"ok": true, "room_name": room, "egress_ids": egress_ids}),
        })
    }
}

/// A transient LiveKit failure is retried while the schedule allows; anything else, or the
/// last attempt, becomes an error reply with `code`.
fn give_up_or_retry(
    error: &EgressError,
    attempt: Attempt,
    code: &str,
) -> Result<Value, HandleError> {
    if error.is_transient() && !attempt.is_last {
        return Err(HandleError::LiveKit(error.to_string()));
    }
    tracing::warn!(%error, attempt = attempt.number, "LiveKit refused the command");
    Ok(reply::error(code, error))
}

fn start_error_code(error: &EgressError) -> &'static str {
    match error.code() {
        Some("not_found") => "room_not_found",
        _ => "egress_error",
    }
}
