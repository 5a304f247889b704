//! `roomtape.events`: LiveKit events → rows. An event's effects and its `webhook_events` row
//! commit in one transaction, so a redelivered or re-sent event changes nothing. What the
//! prefetch holds is one batch: its egress events first come to a verdict each, at once (a
//! finished egress's HEADs and probe outside any transaction); then the whole batch is one
//! transaction: every event recorded in one statement, room and participant events applied a
//! room at a time, then the egress changes. A batch that fails is split: a room at a time and
//! an egress event at a time, and a room that fails alone an event at a time.

pub mod auto_record;
pub mod rooms;

use crate::config::AutoRecordSettings;
use deadpool_postgres::Pool;
use roomtape_shared::db::from_secs;
use roomtape_shared::events::parse::{self, ParsedEvent};
use roomtape_shared::events::proto::WebhookEvent;
use roomtape_shared::events::{event_id, EventKind};
use roomtape_shared::queue::topology::EVENTS_QUEUE;

use std::collections::{BTreeMap, HashSet};

use futures_util::future::try_join;
use futures_util::{stream, StreamExt};

use roomtape_shared::Chain;

use crate::db;
use crate::db::transaction::Transaction;
use crate::db::webhook_events::{self, JsonText, Recorded};
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

/// A parsed event, its id and its body.
struct Event<'m> {
    id: String,
    parsed: ParsedEvent,
    /// The body as it came: stored as the payload as it is (not serialized again).
    body: &'m [u8],
}

impl<'m> Event<'m> {
    fn read(message: &'m Message) -> Result<Self, HandleError> {
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
        Ok(Self {
            id,
            parsed,
            body: &message.body,
        })
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
            payload: JsonText(self.body),
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
        let mut by_room: BTreeMap<String, Vec<(usize, Event<'_>)>> = BTreeMap::new();
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
        // An `egress_ended` may wait on its bucket (HEADs, the probe): those come to their
        // verdicts and commit beside the rest of the batch, so no room event waits on a bucket.
        let (ended, quick): (Vec<_>, Vec<_>) = egress
            .iter()
            .partition(|(_, event)| event.parsed.kind == EventKind::EgressEnded);
        let no_rooms = BTreeMap::new();
        let (batch, ended) = futures_util::join!(
            self.with_verdicts(&by_room, &quick, outbox),
            self.with_verdicts(&no_rooms, &ended, outbox),
        );
        results.extend(batch);
        results.extend(ended);
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
        outbox: &O,
    ) -> Result<Option<Handled>, HandleError> {
        let event = Event::read(message)?;
        let (Some(egress), HandleError::Files(unconfirmed)) = (event.egress(), error) else {
            return Ok(None);
        };
        let attempts = message.attempt.number;
        match self.egress.given_up(egress, unconfirmed, attempts).await? {
            Some(change) => self
                .commit_egress(&event, Some(change), outbox)
                .await
                .map(Some),
            None => Ok(None),
        }
    }
}

/// A room's events of a batch, in delivery order.
type RoomGroup<'a> = (&'a str, Vec<&'a Event<'a>>);

/// An egress event to record, and what it changes (none: only recorded).
struct EgressWrite<'a> {
    event: &'a Event<'a>,
    change: Option<RecordingChange>,
}

fn group<'a>(room: &'a str, events: &'a [(usize, Event<'a>)]) -> RoomGroup<'a> {
    (room, events.iter().map(|(_, event)| event).collect())
}

/// Where each event stands in its batch.
fn indices<'a>(events: &'a [(usize, Event<'_>)]) -> impl Iterator<Item = usize> + 'a {
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

    /// Brings `egress` events to their verdicts (`egress_concurrency` at once), then writes
    /// what they change together with `by_room`'s events ([`Self::batch`]). Results by the
    /// events' index in the batch.
    async fn with_verdicts<O: Outbox>(
        &self,
        by_room: &BTreeMap<String, Vec<(usize, Event<'_>)>>,
        egress: &[&(usize, Event<'_>)],
        outbox: &O,
    ) -> Vec<(usize, Result<Handled, HandleError>)> {
        // Futures made up front: a closure in the stream would not be `Send` for every lifetime.
        let verdicts: Vec<_> = egress
            .iter()
            .map(|(index, event)| self.indexed_verdict(*index, event))
            .collect();
        let verdicts: Vec<_> = stream::iter(verdicts)
            .buffer_unordered(self.egress_concurrency)
            .collect()
            .await;
        let mut results = Vec::with_capacity(verdicts.len());
        let mut writes = Vec::with_capacity(verdicts.len());
        for (index, event, verdict) in verdicts {
            let change = match verdict {
                Err(error) => {
                    results.push((index, Err(error)));
                    continue;
                }
                Ok(Verdict::Duplicate) => {
                    results.push((index, Ok(Handled::new(event.name(), DUPLICATE))));
                    continue;
                }
                Ok(Verdict::Unchanged) => None,
                Ok(Verdict::Change(change)) => Some(*change),
            };
            writes.push((index, EgressWrite { event, change }));
        }
        // In delivery order (the verdicts came in as they finished): an egress's events are
        // applied in the order they came.
        writes.sort_by_key(|(index, _)| *index);
        if !by_room.is_empty() || !writes.is_empty() {
            results.extend(self.batch(by_room, writes, outbox).await);
        }
        results
    }

    /// A batch's room events and egress writes in one transaction; if that fails, a room at a
    /// time and an egress event at a time, and a room that fails alone, an event at a time: one
    /// poison event holds back no other. Results by the events' index in the batch.
    async fn batch<O: Outbox>(
        &self,
        by_room: &BTreeMap<String, Vec<(usize, Event<'_>)>>,
        writes: Vec<(usize, EgressWrite<'_>)>,
        outbox: &O,
    ) -> Vec<(usize, Result<Handled, HandleError>)> {
        let all: Vec<RoomGroup<'_>> = by_room.iter().map(|(r, e)| group(r, e)).collect();
        let (write_indices, writes): (Vec<usize>, Vec<EgressWrite<'_>>) =
            writes.into_iter().unzip();
        let error = match self.commit_batch(&all, &writes, outbox).await {
            Ok(handled) => {
                let order = by_room.values().flat_map(|events| indices(events));
                let order = order.chain(write_indices);
                return order.zip(handled.into_iter().map(Ok)).collect();
            }
            Err(error) => error,
        };
        tracing::warn!(error = %Chain(&error), rooms = by_room.len(), egress_events = writes.len(), "a batch of events failed; applying it a room, then an event, at a time");
        let mut results = Vec::new();
        for (index, write) in write_indices.into_iter().zip(writes) {
            let EgressWrite { event, change } = write;
            results.push((index, self.commit_egress(event, change, outbox).await));
        }
        for (room, events) in by_room {
            // A lone room (and nothing else) has just failed: straight to its events.
            let one_room = match by_room.len() + results.len() {
                1 => None,
                _ => self
                    .commit_batch(&[group(room, events)], &[], outbox)
                    .await
                    .ok(),
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

    async fn indexed_verdict<'e>(
        &self,
        index: usize,
        event: &'e Event<'e>,
    ) -> (usize, &'e Event<'e>, Result<Verdict, HandleError>) {
        let verdict = match event.egress() {
            Some(egress) => self.egress.verdict(egress).await.map_err(HandleError::from),
            None => Ok(Verdict::Unchanged),
        };
        (index, event, verdict)
    }

    async fn handle_egress<O: Outbox>(
        &self,
        event: &Event<'_>,
        outbox: &O,
    ) -> Result<Handled, HandleError> {
        let Some(egress) = event.egress() else {
            return self.one_room_event(event, outbox).await;
        };
        let change = match self.egress.verdict(egress).await? {
            Verdict::Duplicate => return Ok(Handled::new(event.name(), DUPLICATE)),
            Verdict::Unchanged => None,
            Verdict::Change(change) => Some(*change),
        };
        self.commit_egress(event, change, outbox).await
    }

    /// Records an egress event and applies `change` (none: nothing to write) in one
    /// transaction.
    async fn commit_egress<O: Outbox>(
        &self,
        event: &Event<'_>,
        change: Option<RecordingChange>,
        outbox: &O,
    ) -> Result<Handled, HandleError> {
        let write = EgressWrite { event, change };
        let mut handled = self.commit_batch(&[], &[write], outbox).await?;
        Ok(handled.remove(0))
    }

    async fn one_room_event<O: Outbox>(
        &self,
        event: &Event<'_>,
        outbox: &O,
    ) -> Result<Handled, HandleError> {
        let mut handled = self
            .commit_batch(&[(event.room_name(), vec![event])], &[], outbox)
            .await?;
        Ok(handled.remove(0))
    }

    /// Records the events of a batch in one statement (duplicates dropped there), applies the
    /// new room events room by room, then the new egress events' changes, in one transaction;
    /// one result per event, the rooms' in the order of `groups`, then the egress writes' in
    /// theirs. Rooms are locked in the order given, sorted by name, and recordings in egress id
    /// order, so two processors never wait on each other in a cycle. Auto-record commands go
    /// to `outbox`.
    async fn commit_batch<O: Outbox>(
        &self,
        groups: &[RoomGroup<'_>],
        writes: &[EgressWrite<'_>],
        outbox: &O,
    ) -> Result<Vec<Handled>, HandleError> {
        let transaction = Transaction::new(self.pool.get().await?);
        let client = transaction.client();
        let room_events = groups.iter().flat_map(|(_, events)| events.iter().copied());
        let recorded: Vec<Recorded<'_>> = room_events
            .chain(writes.iter().map(|write| write.event))
            .map(Event::recorded)
            .collect();
        let sessions = rooms::sessions(
            groups
                .iter()
                .map(|(room, events)| (*room, events.iter().map(|e| &e.parsed))),
        );
        // The rooms are locked beside the record, before it says which events are new (a
        // duplicate's room is locked too): one round trip for BEGIN, the record and the locks.
        let (mut new_ids, ()) = transaction
            .begin_with(try_join(
                webhook_events::record_many(client, &recorded),
                db::rooms::lock(client, &sessions),
            ))
            .await?;
        let mut handled = Vec::with_capacity(recorded.len());
        let mut fresh: Vec<(&str, Vec<&ParsedEvent>)> = Vec::with_capacity(groups.len());
        for (room, events) in groups {
            let mut new = Vec::with_capacity(events.len());
            for event in events {
                if is_new(&mut new_ids, event, &mut handled) {
                    new.push(&event.parsed);
                }
            }
            if !new.is_empty() {
                fresh.push((room, new));
            }
        }
        let mut changes: Vec<&RecordingChange> = Vec::with_capacity(writes.len());
        for write in writes {
            if is_new(&mut new_ids, write.event, &mut handled) {
                changes.extend(write.change.as_ref());
            }
        }
        if handled.iter().all(|h| h.outcome == DUPLICATE) {
            transaction.rollback().await?;
            return Ok(handled);
        }
        if !fresh.is_empty() {
            rooms::apply(client, &fresh).await?;
            for (_, events) in &fresh {
                self.auto_record(events, outbox).await?;
            }
        }
        // Stable: an egress's events keep their delivery order.
        changes.sort_by(|a, b| a.update.egress_id.cmp(&b.update.egress_id));
        for change in changes {
            change.write(client).await?;
        }
        transaction.commit().await?;
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

/// The outcome of an event whose id was recorded before (or earlier in its batch).
const DUPLICATE: &str = "duplicate";

/// Whether `event` is new (an id twice in a batch is new only the first time); its outcome goes
/// to `handled`.
fn is_new(new_ids: &mut HashSet<String>, event: &Event<'_>, handled: &mut Vec<Handled>) -> bool {
    let new = new_ids.remove(&event.id);
    let outcome = if new { "applied" } else { DUPLICATE };
    handled.push(Handled::new(event.name(), outcome));
    new
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
