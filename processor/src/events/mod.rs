//! `roomtape.events`: LiveKit events → rows. Each event's effects and its `webhook_events` row
//! commit in one transaction, so a redelivered or re-sent event changes nothing. Egress events
//! go through the egress lifecycle; room and participant events keep `rooms`.

pub mod auto_record;
pub mod parse;
pub mod rooms;

use deadpool_postgres::Pool;
use roomtape_shared::config::AutoRecordSettings;
use roomtape_shared::db::from_secs;
use roomtape_shared::events::event_id;
use roomtape_shared::events::proto::WebhookEvent;
use roomtape_shared::queue::topology::EVENTS_QUEUE;

use crate::egress::{EgressEvent, EgressLifecycle, RecordingChange, Verdict};
use crate::error::HandleError;
use crate::store::webhook_events;
use crate::worker::{Handled, Handler, Message, Outbox};
use parse::ParsedEvent;

/// Handles `roomtape.events`.
#[derive(Debug)]
pub struct EventProcessor {
    pool: Pool,
    egress: EgressLifecycle,
    auto_record: AutoRecordSettings,
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

    /// The egress part, for an `egress_*` event that carries one.
    fn egress(&self) -> Option<EgressEvent<'_>> {
        let event = &self.parsed.event;
        let info = event.egress_info.as_ref()?;
        event.event.starts_with("egress_").then(|| EgressEvent {
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

    async fn handle<O: Outbox>(
        &self,
        message: &Message,
        outbox: &O,
    ) -> Result<Handled, HandleError> {
        let event = Event::read(message)?;
        let change = match event.egress() {
            Some(egress) => match self.egress.verdict(egress).await? {
                Verdict::Duplicate => return Ok(Handled::new(event.name(), "duplicate")),
                Verdict::Unchanged => None,
                Verdict::Change(change) => Some(*change),
            },
            None => None,
        };
        self.commit(&event, change.as_ref(), outbox).await
    }

    /// A finished egress whose files never showed up fails its recording; anything else that
    /// is given up is dead-lettered.
    async fn give_up<O: Outbox>(
        &self,
        message: &Message,
        error: &HandleError,
        outbox: &O,
    ) -> Result<Option<Handled>, HandleError> {
        let HandleError::Storage(storage_error) = error else {
            return Ok(None);
        };
        let event = Event::read(message)?;
        let change = event.egress().and_then(|egress| {
            self.egress
                .failed_for_good(egress, storage_error, message.attempt.number)
        });
        match change {
            Some(change) => self.commit(&event, Some(&change), outbox).await.map(Some),
            None => Ok(None),
        }
    }
}

impl EventProcessor {
    pub fn new(pool: Pool, egress: EgressLifecycle, auto_record: AutoRecordSettings) -> Self {
        Self {
            pool,
            egress,
            auto_record,
        }
    }

    /// Records the event and applies its effect in one transaction: `change` for an egress
    /// event (none: nothing to write), the effect on `rooms` for the others. Auto-record
    /// commands go to `outbox`.
    async fn commit<O: Outbox>(
        &self,
        event: &Event,
        change: Option<&RecordingChange>,
        outbox: &O,
    ) -> Result<Handled, HandleError> {
        let parsed = &event.parsed;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let created = from_secs(parsed.event.created_at);
        if !webhook_events::record(&tx, &event.id, event.name(), created, &parsed.raw).await? {
            tx.rollback().await?;
            return Ok(Handled::new(event.name(), "duplicate"));
        }
        match (event.egress(), change) {
            (_, Some(change)) => change.write(&tx).await?,
            (Some(_), None) => {}
            (None, None) => rooms::apply(&tx, &parsed.event).await?,
        }
        // Before the commit: if the commit fails, the redelivery asks again, and the command's
        // id makes that harmless.
        if let (Some(room), "room_started") = (&parsed.event.room, event.name()) {
            if auto_record::wanted(&self.auto_record, room) {
                auto_record::request(outbox, room).await?;
                tracing::info!("auto-record requested");
            }
        }
        tx.commit().await?;
        Ok(Handled::new(event.name(), "applied"))
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
