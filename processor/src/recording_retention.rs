//! `RECORDING_RETENTION` (see `RetentionRules`): finished recordings past their room's age are
//! deleted by themselves, objects then rows, each with a `recording.deleted` notification, like
//! a delete by hand. Every processor runs the sweeper; a PostgreSQL advisory lock lets exactly
//! one sweep at a time, so however many run, no recording is deleted twice. The set a sweep
//! deletes is what `roomtape recordings sweep --dry-run` lists (`Library::due`).

use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use roomtape_shared::clock::Clock;
use roomtape_shared::config::RetentionRules;
use roomtape_shared::db::notifications::DeletedBy;
use roomtape_shared::library::{Library, LibraryError, Swept};
use roomtape_shared::shutdown::Shutdown;
use roomtape_shared::Chain;

use crate::metrics::ProcessorMetrics;

/// The advisory lock's key: `hashtext('roomtape.recording_retention')`, fixed here so every
/// processor of every version takes the same one.
const SWEEP_LOCK: i64 = 0x726f_6f6d_7461_7065;

#[derive(Debug, Clone)]
pub struct RecordingSweeper {
    pub pool: Pool,
    pub library: Library,
    pub rules: RetentionRules,
    /// `RECORDING_RETENTION_INTERVAL` (default 1h): how often it looks.
    pub every: Duration,
    pub clock: Clock,
    pub metrics: ProcessorMetrics,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("database error")]
    Database(#[from] tokio_postgres::Error),
    #[error("no database connection")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("cannot list the recordings due")]
    Library(#[from] LibraryError),
}

impl RecordingSweeper {
    /// Sweeps every [`Self::every`] until shutdown; nothing when there are no rules.
    pub async fn run(self, shutdown: Shutdown) {
        if self.rules.is_empty() {
            return;
        }
        loop {
            // A deletion is objects, then its rows in one transaction: stopping between two
            // leaves each recording whole or gone.
            let result = tokio::select! {
                () = shutdown.cancelled() => return,
                result = self.sweep() => result,
            };
            if let Err(error) = result {
                tracing::warn!(error = %Chain(&error), "retention sweep failed");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.every) => {}
            }
        }
    }

    /// Deletes what is due at the clock's now, unless another processor is sweeping (`None`).
    pub async fn sweep(&self) -> Result<Option<Swept>, SweepError> {
        // Guarded from before the lock is asked for: a sweep dropped at any await closes the
        // connection, so a granted lock never goes back to the pool.
        let mut lock = SessionLock(Some(self.pool.get().await?));
        let taken: bool = lock
            .client()
            .query_one("SELECT pg_try_advisory_lock($1)", &[&SWEEP_LOCK])
            .await?
            .get(0);
        if !taken {
            lock.give_back();
            tracing::info!("another processor is sweeping; skipping this round");
            return Ok(None);
        }
        let swept = self.sweep_locked().await;
        lock.release().await;
        swept.map(Some)
    }

    async fn sweep_locked(&self) -> Result<Swept, SweepError> {
        let now = chrono::DateTime::<chrono::Utc>::from(self.clock.now());
        let due = self.library.due(&self.rules, now).await?;
        let swept = self.library.sweep(&due, DeletedBy::Retention, || {}).await;
        for (egress_id, error) in &swept.failed {
            tracing::warn!(egress_id, error, "retention could not delete the recording");
        }
        self.metrics
            .swept(swept.deleted.len(), swept.failed.len(), swept.bytes);
        tracing::info!(
            due = due.len(),
            deleted = swept.deleted.len(),
            failed = swept.failed.len(),
            objects = swept.objects,
            bytes_freed = swept.bytes,
            "retention sweep"
        );
        Ok(swept)
    }
}

/// A connection that may hold the session-level sweep lock. Dropped without [`Self::release`]
/// (the sweep's future dropped, a query failed), the connection is closed rather than pooled,
/// which releases the lock with it.
struct SessionLock(Option<Object>);

impl SessionLock {
    fn client(&self) -> &Object {
        // Only `give_back`, `release` and `drop` take it out, and they end the lock's use.
        self.0.as_ref().expect("the lock holds its connection")
    }

    /// The lock was not granted: the connection goes back to the pool as it is.
    fn give_back(&mut self) {
        self.0.take();
    }

    /// Unlocks, and pools the connection; closes it when the unlock fails.
    async fn release(mut self) {
        let Some(client) = self.0.take() else {
            return;
        };
        if let Err(error) = client
            .execute("SELECT pg_advisory_unlock($1)", &[&SWEEP_LOCK])
            .await
        {
            tracing::warn!(error = %Chain(&error), "could not release the retention lock; closing its connection");
            drop(Object::take(client));
        }
    }
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(Object::take(client));
        }
    }
}
