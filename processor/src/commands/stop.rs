//! `recording.stop`: one egress, or every unfinished recording of a room and the starts of it
//! sent before the stop. Stopping what already ended is success.

use roomtape_shared::commands::Stop;
use roomtape_shared::db::recordings;
use serde_json::{json, Value};

use super::sent::SentAt;
use super::{reply, CommandProcessor};
use crate::db::commands as progress;
use crate::egress::plan;
use crate::error::HandleError;

impl CommandProcessor {
    /// Stops one egress, or every unfinished recording of a room and the starts of it sent
    /// before the stop (`sent`). Stopping what already ended is success.
    pub async fn stop(&self, stop: &Stop, sent: SentAt) -> Result<Value, HandleError> {
        let client = self.pool.get().await?;
        let (egress_ids, cancelled_starts) = match stop {
            Stop::Egress(id) => (vec![id.clone()], Vec::new()),
            Stop::Room(room) => {
                let sent_at_ms = sent.earliest_ms(self.now_ms(&client).await?);
                let reply = reply::cancelled(room);
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
                let recording = recordings::find(&client, id).await?;
                let status = recording.as_ref().map(|r| r.status);
                json!({"ok": true, "egress_id": id, "status": status, "recording": recording})
            }
            Stop::Room(room) => json!({"ok": true, "room_name": room, "egress_ids": egress_ids,
                                        "cancelled_commands": cancelled_starts}),
        })
    }
}
