//! `roomtape.events`: LiveKit events → rows. An event's effects and its `webhook_events` row
//! commit in one transaction, so a redelivered or re-sent event changes nothing. Egress events
//! go through the egress lifecycle one at a time (their HEADs outside any transaction); room
//! and participant events are applied a room at a time: what the prefetch holds is grouped by
//! room and each group is one transaction, split into single events if it fails.

pub mod auto_record;
pub mod rooms;

use crate::config::AutoRecordSettings;
use deadpool_postgres::Pool;
use roomtape_shared::db::from_secs;
use roomtape_shared::events::parse::{self, ParsedEvent};
use roomtape_shared::events::proto::WebhookEvent;
use roomtape_shared::events::{event_id, EventKind};
use roomtape_shared::queue::topology::EVENTS_QUEUE;

use std::collections::BTreeMap;

use futures_util::{stream, StreamExt};

use roomtape_shared::Chain;

use crate::db::webhook_events::{self, Recorded};
use crate::egress::{EgressEvent, EgressLifecycle, RecordingChange, Verdict};
use crate::error::HandleError;
use crate::worker::{Handled, Handler, Message, Outbox};

/// Handles `roomtape.events`.
#[derive(Debug)]
pub struct EventProcessor {
    pool: Pool,
    egress: EgressLifecycle,
    auto_record: AutoRecordSettings,
    /// Egress events of a batch handled at once (`PROCESSOR_CONCURRENCY`): each HEADs.
    egress_concurrency: usize,
}

/// A parsed event and its id.
struct Event {
    id: String,
    parsed: ParsedEvent,
}

impl Event {
    fn read(message: &Message) -> Result<Self, HandleError> {
        let parsed = parse::parse(&message.body)?;
        let event = &parsed.event;
        let id = event_id(
            Some(event.id.as_str())
                .filter(|id| !id.is_empty())
                .or(message.message_id.as_deref()),
            &message.body,
        );
        record_span_fields(&id, event);
        if !parsed.dropped.is_empty() {
            tracing::warn!(dropped = ?parsed.dropped, "ignored values this build does not know");
        }
        Ok(Self { id, parsed })
    }

    fn name(&self) -> &str {
        &self.parsed.event.event
    }

    /// The room a room or participant event is about (`""` when it names none).
    fn room_name(&self) -> &str {
        self.parsed
            .event
            .room
            .as_ref()
            .map_or("", |room| room.name.as_str())
    }

    fn recorded(&self) -> Recorded<'_> {
        Recorded {
            event_id: &self.id,
            event: self.name(),
            created_at: from_secs(self.parsed.event.created_at),
            payload: &self.parsed.raw,
        }
    }

    /// The egress part, for an egress event that carries one.
    fn egress(&self) -> Option<EgressEvent<'_>> {
        let event = &self.parsed.event;
        let info = event.egress_info.as_ref()?;
        self.parsed.kind.is_egress().then(|| EgressEvent {
            event_id: &self.id,
            info,
            room_sid: event.room.as_ref().map(|r| r.sid.as_str()),
            raw_info: self.parsed.raw.get("egressInfo"),
        })
    }
}

impl Handler for EventProcessor {
    fn queue(&self) -> &'static str {
        EVENTS_QUEUE
    }

    /// Room events of a storm arrive together: one transaction takes many of them.
    fn batch_limit(&self) -> usize {
        BATCH_LIMIT
    }

    /// Few batches at once, so that what arrives meanwhile waits in the prefetch and makes the
    /// next batch large: many small batches of the same rooms would only queue on their locks.
    /// Egress events still run `PROCESSOR_CONCURRENCY` at once, inside a batch.
    fn tasks(&self, configured: usize) -> usize {
        configured.min(BATCHES_IN_FLIGHT)
    }

    async fn handle<O: Outbox>(
        &self,
        message: &Message,
        outbox: &O,
    ) -> Result<Handled, HandleError> {
        let event = Event::read(message)?;
        match event.egress() {
            Some(_) => self.handle_egress(&event, outbox).await,
            None => self.one_room_event(&event, outbox).await,
        }
    }

    async fn handle_batch<O: Outbox>(
        &self,
        messages: &[Message],
        outbox: &O,
    ) -> Vec<Result<Handled, HandleError>> {
        let mut results = Vec::with_capacity(messages.len());
        let mut by_room: BTreeMap<String, Vec<(usize, Event)>> = BTreeMap::new();
        let mut egress = Vec::new();
        for (index, message) in messages.iter().enumerate() {
            match Event::read(message) {
                Err(error) => results.push((index, Err(error))),
                Ok(event) if event.egress().is_some() => egress.push((index, event)),
                Ok(event) => by_room
                    .entry(event.room_name().to_owned())
                    .or_default()
                    .push((index, event)),
            }
        }
        // Futures made up front: a closure in the stream would not be `Send` for every lifetime.
        let egress_work: Vec<_> = egress
            .iter()
            .map(|(index, event)| self.indexed_egress(*index, event, outbox))
            .collect();
        let handled: Vec<(usize, Result<Handled, HandleError>)> = stream::iter(egress_work)
            .buffer_unordered(self.egress_concurrency)
            .collect()
            .await;
        results.extend(handled);
        if !by_room.is_empty() {
            results.extend(self.room_batch(&by_room, outbox).await);
        }
        results.sort_by_key(|(index, _)| *index);
        results.into_iter().map(|(_, result)| result).collect()
    }

    /// A finished egress whose files never showed up fails its recording; one whose bucket did
    /// not answer or is not configured is noted on its recording and dead-lettered, like
    /// anything else that is given up.
    async fn give_up<O: Outbox>(
        &self,
        message: &Message,
        error: &HandleError,
        _outbox: &O,
    ) -> Result<Option<Handled>, HandleError> {
        let event = Event::read(message)?;
        let (Some(egress), HandleError::Files(unconfirmed)) = (event.egress(), error) else {
            return Ok(None);
        };
        let attempts = message.attempt.number;
        match self.egress.given_up(egress, unconfirmed, attempts).await? {
            Some(change) => self.commit(&event, Some(&change)).await.map(Some),
            None => Ok(None),
        }
    }
}

/// A room's events of a batch, in delivery order.
type RoomGroup<'a> = (&'a str, Vec<&'a Event>);

fn group<'a>(room: &'a str, events: &'a [(usize, Event)]) -> RoomGroup<'a> {
    (room, events.iter().map(|(_, event)| event).collect())
}

/// Where each event stands in its batch.
fn indices(events: &[(usize, Event)]) -> impl Iterator<Item = usize> + '_ {
    events.iter().map(|(index, _)| *index)
}

/// The most events one batch takes.
const BATCH_LIMIT: usize = 256;
/// Batches handled at once by one processor.
const BATCHES_IN_FLIGHT: usize = 4;

impl EventProcessor {
    pub fn new(
        pool: Pool,
        egress: EgressLifecycle,
        auto_record: AutoRecordSettings,
        egress_concurrency: usize,
    ) -> Self {
        Self {
            pool,
            egress,
            auto_record,
            egress_concurrency: egress_concurrency.max(1),
        }
    }

    /// The room events of a batch, all rooms in one transaction; if that fails, a room at a
    /// time, and a room that fails alone, an event at a time: one poison event holds back no
    /// other. Results by the events' index in the batch.
    async fn room_batch<O: Outbox>(
        &self,
        by_room: &BTreeMap<String, Vec<(usize, Event)>>,
        outbox: &O,
    ) -> Vec<(usize, Result<Handled, HandleError>)> {
        let all: Vec<RoomGroup<'_>> = by_room.iter().map(|(r, e)| group(r, e)).collect();
        let error = match self.commit_rooms(&all, outbox).await {
            Ok(handled) => {
                let order = by_room.values().flat_map(|events| indices(events));
                return order.zip(handled.into_iter().map(Ok)).collect();
            }
            Err(error) => error,
        };
        tracing::warn!(error = %Chain(&error), rooms = by_room.len(), "a batch of room events failed; applying it a room, then an event, at a time");
        let mut results = Vec::new();
        for (room, events) in by_room {
            // A lone room has just failed: straight to its events.
            let one_room = match by_room.len() {
                1 => None,
                _ => self.commit_rooms(&[group(room, events)], outbox).await.ok(),
            };
            match one_room {
                Some(handled) => results.extend(indices(events).zip(handled.into_iter().map(Ok))),
                None => {
                    for (index, event) in events {
                        results.push((*index, self.one_room_event(event, outbox).await));
                    }
                }
            }
        }
        results
    }

    async fn indexed_egress<O: Outbox>(
        &self,
        index: usize,
        event: &Event,
        outbox: &O,
    ) -> (usize, Result<Handled, HandleError>) {
        (index, self.handle_egress(event, outbox).await)
    }

    async fn handle_egress<O: Outbox>(
        &self,
        event: &Event,
        outbox: &O,
    ) -> Result<Handled, HandleError> {
        let Some(egress) = event.egress() else {
            return self.one_room_event(event, outbox).await;
        };
        let change = match self.egress.verdict(egress).await? {
            Verdict::Duplicate => return Ok(Handled::new(event.name(), "duplicate")),
            Verdict::Unchanged => None,
            Verdict::Change(change) => Some(*change),
        };
        self.commit(event, change.as_ref()).await
    }

    /// Records an egress event and applies `change` (none: nothing to write) in one
    /// transaction.
    async fn commit(
        &self,
        event: &Event,
        change: Option<&RecordingChange>,
    ) -> Result<Handled, HandleError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if webhook_events::record_many(&tx, &[event.recorded()])
            .await?
            .is_empty()
        {
            tx.rollback().await?;
            return Ok(Handled::new(event.name(), "duplicate"));
        }
        if let Some(change) = change {
            change.write(&tx).await?;
        }
        tx.commit().await?;
        Ok(Handled::new(event.name(), "applied"))
    }

    async fn one_room_event<O: Outbox>(
        &self,
        event: &Event,
        outbox: &O,
    ) -> Result<Handled, HandleError> {
        let mut handled = self
            .commit_rooms(&[(event.room_name(), vec![event])], outbox)
            .await?;
        Ok(handled.remove(0))
    }

    /// Records the events of a batch's rooms in one statement (duplicates dropped there) and
    /// applies the new ones room by room, in one transaction; one result per event, in the order
    /// of `groups`. Rooms are locked in the order given, sorted by name, so two processors
    /// never wait on each other. Auto-record commands go to `outbox`.
    async fn commit_rooms<O: Outbox>(
        &self,
        groups: &[RoomGroup<'_>],
        outbox: &O,
    ) -> Result<Vec<Handled>, HandleError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let recorded: Vec<Recorded<'_>> = groups
            .iter()
            .flat_map(|(_, events)| events.iter().map(|event| event.recorded()))
            .collect();
        let mut new_ids = webhook_events::record_many(&tx, &recorded).await?;
        let mut handled = Vec::with_capacity(recorded.len());
        let mut fresh: Vec<(&str, Vec<&ParsedEvent>)> = Vec::with_capacity(groups.len());
        for (room, events) in groups {
            let mut new = Vec::with_capacity(events.len());
            for event in events {
                // An id twice in the batch is new only the first time.
                let outcome = match new_ids.remove(&event.id) {
                    true => {
                        new.push(&event.parsed);
                        "applied"
                    }
                    false => "duplicate",
                };
                handled.push(Handled::new(event.name(), outcome));
            }
            if !new.is_empty() {
                fresh.push((room, new));
            }
        }
        if fresh.is_empty() {
            tx.rollback().await?;
            return Ok(handled);
        }
        rooms::apply(&tx, &fresh).await?;
        for (_, events) in &fresh {
            self.auto_record(events, outbox).await?;
        }
        tx.commit().await?;
        Ok(handled)
    }

    /// Asks for the recording of each matching `room_started`, and of each participant the
    /// participant rule names in `participant_joined`, before the commit: if the commit fails,
    /// the redelivery asks again, and the command's id makes that harmless.
    async fn auto_record<O: Outbox>(
        &self,
        events: &[&ParsedEvent],
        outbox: &O,
    ) -> Result<(), HandleError> {
        let rule = &self.auto_record;
        for parsed in events {
            let event = &parsed.event;
            match (parsed.kind, &event.room, &event.participant) {
                (EventKind::RoomStarted, Some(room), _) if auto_record::wanted(rule, room) => {
                    auto_record::request(outbox, room).await?;
                    tracing::info!(room = %room.name, "auto-record requested");
                }
                (EventKind::ParticipantJoined, Some(room), Some(participant))
                    if auto_record::participant_wanted(&rule.participants, participant) =>
                {
                    auto_record::request_participant(outbox, &room.name, participant).await?;
                    tracing::info!(room = %room.name, identity = %participant.identity, "participant auto-record requested");
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn record_span_fields(id: &str, event: &WebhookEvent) {
    let span = tracing::Span::current();
    span.record("event_id", id);
    span.record("event", event.event.as_str());
    if let Some(info) = &event.egress_info {
        span.record("egress_id", info.egress_id.as_str());
    }
    let room = event
        .room
        .as_ref()
        .map(|r| r.name.as_str())
        .or(event.egress_info.as_ref().map(|e| e.room_name.as_str()));
    if let Some(room) = room {
        span.record("room", room);
    }
}
