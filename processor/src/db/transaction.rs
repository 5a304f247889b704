//! A transaction whose `BEGIN` leaves with its first statements instead of a round trip ahead
//! of them. tokio-postgres sends requests in the order they are first polled and writes those
//! waiting together, but its `Transaction` awaits `BEGIN` alone: at a steady rate, where most
//! batches hold one or two events, that round trip was a fifth of a batch's, each one waking
//! PostgreSQL and this process once more.
//!
//! A transaction not committed or rolled back (an error, a dropped future) takes its connection
//! out of the pool: closing it ends the transaction on the server, and no later user of the
//! pool can find itself inside it.

use std::future::Future;

use deadpool_postgres::{Client, Object};
use futures_util::future::join;
use tokio_postgres::Error;

/// One pooled connection inside a transaction, from [`Transaction::begin_with`] to
/// [`Transaction::commit`] or [`Transaction::rollback`].
#[derive(Debug)]
pub struct Transaction {
    /// `None` once the connection has been given back or taken out of the pool.
    connection: Option<Object>,
}

impl Transaction {
    /// Not begun yet: [`Self::begin_with`] does that.
    pub fn new(connection: Object) -> Self {
        Self {
            connection: Some(connection),
        }
    }

    /// The connection, for statements inside the transaction.
    pub fn client(&self) -> &Client {
        self.connection
            .as_ref()
            .expect("the connection is held until the transaction ends")
    }

    /// Sends `BEGIN`, then `first` (statements on [`Self::client`], not polled before): both
    /// leave in one write. `first`'s result, if the transaction began.
    pub async fn begin_with<T>(
        &self,
        first: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let (begun, first) = join(self.client().batch_execute("BEGIN"), first).await;
        begun?;
        first
    }

    pub async fn commit(self) -> Result<(), Error> {
        self.end("COMMIT").await
    }

    pub async fn rollback(self) -> Result<(), Error> {
        self.end("ROLLBACK").await
    }

    async fn end(mut self, statement: &str) -> Result<(), Error> {
        self.client().batch_execute(statement).await?;
        // Back to the pool, outside any transaction.
        self.connection.take();
        Ok(())
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            drop(Object::take(connection));
        }
    }
}
