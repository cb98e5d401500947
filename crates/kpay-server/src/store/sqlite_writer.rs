//! SQLite's one writer. SQLite lets one connection write at a time; every write of this store goes
//! through the task here, which owns the only writing connection, so writers never wait on
//! SQLite's busy handler. It takes every write waiting and commits them together (group commit),
//! each in its own savepoint so that one failing write does not sink the others. Nobody is
//! answered before the commit of their group: not a write that succeeded (its effect is not
//! visible to readers before), and not one that failed either (a loser of a unique constraint
//! reads the winner's row right after its answer, so that row must be committed by then).

use super::StoreError;
use futures_util::FutureExt;
use sqlx::{Acquire, Connection, SqliteConnection};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use tokio::sync::{mpsc, oneshot};

/// A boxed future borrowing the writer's connection.
pub(super) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Answers one write once its group's commit is known.
type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// One write: runs on the writer's connection inside its savepoint. `Ok`: its savepoint is
/// released and the reply waits for the group's commit; `Err`: it failed, its savepoint is rolled
/// back, and the reply (its own error) is sent once the group has committed.
type Job =
    Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<Reply, Reply>> + Send>;

/// Most writes committed together.
const MAX_BATCH: usize = 256;

/// The writer of one SQLite database.
#[derive(Clone, Debug)]
pub(super) struct SqliteWriter {
    jobs: mpsc::Sender<Job>,
}

impl SqliteWriter {
    /// Starts the writer's task on `conn`, the only connection that writes.
    pub(super) fn start(conn: SqliteConnection) -> Self {
        let (jobs, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(conn, rx));
        Self { jobs }
    }

    /// Runs `write` on the writer's connection and waits until it is committed (or failed).
    /// `write` owns what it uses: a caller that stops waiting leaves it queued, not dangling.
    pub(super) async fn write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>
            + Send
            + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T, StoreError>>();
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                match write(conn).await {
                    Ok(value) => Ok(Box::new(move |committed: Result<(), StoreError>| {
                        let _ = reply.send(committed.map(|()| value));
                    }) as Reply),
                    // Its own error, whatever the group's commit did.
                    Err(e) => Err(Box::new(move |_: Result<(), StoreError>| {
                        let _ = reply.send(Err(StoreError::Query(e)));
                    }) as Reply),
                }
            })
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        // A dropped reply: the group's commit failed before this write ran.
        answer
            .await
            .map_err(|_| StoreError::Batch("the group commit failed before this write".into()))?
    }
}

async fn run(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let size = batch.len();
        let mut replies = Vec::with_capacity(size);
        match apply_batch(&mut conn, batch, &mut replies).await {
            Ok(()) => replies.into_iter().for_each(|reply| reply(Ok(()))),
            Err(e) => {
                // Nothing of the group was committed.
                tracing::error!(error = %e, writes = size, "SQLite group commit failed");
                let message = e.to_string();
                for reply in replies {
                    reply(Err(StoreError::Batch(message.clone())));
                }
            }
        }
    }
}

async fn apply_batch(
    conn: &mut SqliteConnection,
    batch: Vec<Job>,
    replies: &mut Vec<Reply>,
) -> Result<(), sqlx::Error> {
    let mut tx = Connection::begin(conn).await?;
    for job in batch {
        let mut savepoint = Acquire::begin(&mut tx).await?;
        // A write that panics (a bug) must not take the only writer down with it: the group is
        // rolled back and answered with an error; the writer goes on with the next group.
        match AssertUnwindSafe(job(&mut savepoint)).catch_unwind().await {
            Ok(Ok(reply)) => {
                savepoint.commit().await?;
                replies.push(reply);
            }
            Ok(Err(reply)) => {
                savepoint.rollback().await?;
                replies.push(reply);
            }
            Err(_) => {
                tracing::error!("a database write panicked; its group is rolled back");
                return Err(sqlx::Error::Protocol("a database write panicked".into()));
            }
        }
    }
    tx.commit().await
}
