//! `recording.start`: at most one egress per command id, however often the command arrives,
//! never after its deadline or after a stop for the room sent later; a start that is given up is
//! answered, and whatever LiveKit may have started for it is stopped.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use roomtape_shared::commands::Start;
use roomtape_shared::db::recordings::{self, Kind, Requested};
use roomtape_shared::events::proto::{EgressInfo, EgressStatus, ListEgressRequest};
use roomtape_shared::livekit::{EgressClient, EgressError, StartRequest};
use roomtape_shared::Chain;
use serde_json::{json, Value};

use super::sent::{time_left, SentAt};
use super::{reply, request, CommandProcessor};
use crate::db::commands::{self as progress, CommandLock, Progress, Stored};
use crate::egress::plan;
use crate::error::HandleError;

/// How long after a start is given up its egress is looked up a second time: LiveKit may list
/// an egress only once the call that started it, cut off on our side, has finished on its.
const SECOND_LOOK_AFTER: Duration = Duration::from_secs(5);

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

/// What two starts must not check `already_recording` for at once: the room's composite, one
/// participant of the room, or the room's tracks (tracks overlap in more ways than one key says).
fn start_scope(start: &Start) -> String {
    let room = &start.room_name;
    match (start.subject.kind, &start.subject.identity) {
        (Kind::Participant, Some(identity)) => format!("{room}/participant/{identity}"),
        (Kind::Track | Kind::TrackComposite, _) => format!("{room}/tracks"),
        _ => room.clone(),
    }
}

impl CommandProcessor {
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
        // A start that may record twice checks nothing another start could change.
        let scope = (!start.allow_concurrent).then(|| start_scope(start));
        let lock = CommandLock::take_scoped(client, command_id, scope.as_deref()).await?;
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
            return Ok(reply::idempotency_conflict(command_id, &seen.progress));
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
            let reply = reply::cancelled(room);
            return self.store_failure(client, command_id, start, reply).await;
        }
        if !start.allow_concurrent {
            let active = recordings::unfinished_like(client, room, &start.subject).await?;
            if !active.is_empty() {
                let reply = reply::already_recording(room, &start.subject, &active);
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
        let now_ms = self.now_ms(client).await?;
        progress::called(client, command_id, true).await?;
        let mut request = request::egress_request(start, command_id);
        // Thumbnails come from a room composite's image output; other kinds may have no video
        // (LiveKit refuses images then), and get a frame from their file once ready instead.
        if let (StartRequest::RoomComposite(request), Some(thumbnails)) =
            (&mut request, self.thumbnails.as_ref())
        {
            let images = thumbnails.image_output(request, now_ms);
            request.image_outputs.extend(images);
        }
        let method = request.method();
        let call = self.egress.start(&request);
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
                let cause = format!("LiveKit did not answer {method} within {left:?}");
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

    /// What is left of the deadline of the start `command_id`, sent at `sent`.
    pub(super) async fn time_left(
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

    pub(super) fn deadline_exceeded(&self, cause: impl std::fmt::Display) -> Value {
        let deadline = humantime::format_duration(self.deadline);
        reply::error(
            "deadline_exceeded",
            format!("the start could not reach LiveKit within COMMAND_START_DEADLINE ({deadline}) and will not be carried out: {cause}"),
        )
    }

    /// A start whose earlier call was never confirmed, at the end of its retries: the egress
    /// is adopted if LiveKit lists it now, else the start is answered `deadline_exceeded`.
    pub(super) async fn last_look(
        &self,
        command_id: &str,
        start: &Start,
    ) -> Result<Value, HandleError> {
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
    pub(super) async fn store_start_failure(
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
    pub(super) fn sweep(&self, command_id: &str, room_name: &str) {
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
                subject: start.subject.clone(),
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
        let reply = json!({"ok": true, "egress_id": info.egress_id, "status": recording.status,
                           "recording": recording});
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
            _ => Ok(reply::cancelled(&start.room_name)),
        }
    }
}
