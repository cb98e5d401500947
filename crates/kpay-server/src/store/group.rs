//! Group commit for SQLite's hot path. SQLite has one writer at a time, so concurrent payments
//! queue for it; instead of one transaction each, the writer task takes every write waiting and
//! commits them together (each in its own savepoint, so one failing write does not sink the
//! others). Nobody is answered before the commit that holds their write has succeeded.

use super::{
    CLAIM_APPROVE, Changes, INSERT_EVENT, INSERT_PAYMENT, NewEvent, PAYMENT_COLUMNS, PaymentRecord,
    StoreError, update_sql,
};
use crate::domain::PaymentStatus;
use crate::service::resolve::{CALLBACK_CALLS, CALLBACK_WINDOW_MS};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Acquire, Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

/// Writes of the payment hot path.
#[derive(Debug)]
pub(super) enum Op {
    /// A new payment and its first event.
    Insert(Box<PaymentRecord>, NewEvent),
    /// A conditional status change and its event.
    Transition {
        id: String,
        from: PaymentStatus,
        to: PaymentStatus,
        changes: Box<Changes>,
        event: NewEvent,
        now: i64,
    },
    /// The approve claim.
    Claim {
        id: String,
        pg_token: String,
        now: i64,
        next_check_at: i64,
    },
}

/// What a write did.
#[derive(Debug)]
pub(super) enum Done {
    Inserted,
    Transitioned(bool),
    Claimed(Option<Box<PaymentRecord>>),
}

struct Job {
    op: Op,
    reply: oneshot::Sender<Result<Done, StoreError>>,
}

/// Most writes committed together.
const MAX_BATCH: usize = 256;

/// The hot-path writer of one SQLite database.
#[derive(Clone, Debug)]
pub(super) struct GroupWriter {
    jobs: mpsc::Sender<Job>,
}

impl GroupWriter {
    /// Opens the writer's own connection and starts its task.
    pub(super) async fn start(options: &SqliteConnectOptions) -> Result<Self, StoreError> {
        let conn = SqliteConnection::connect_with(options)
            .await
            .map_err(StoreError::Connect)?;
        let (jobs, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(conn, rx));
        Ok(Self { jobs })
    }

    /// Queues a write and waits until it is committed (or failed).
    pub(super) async fn submit(&self, op: Op) -> Result<Done, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { op, reply })
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
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
        match apply_batch(&mut conn, &batch).await {
            Ok(results) => {
                for (job, result) in batch.into_iter().zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                // Nothing of the batch was committed.
                tracing::error!(error = %e, writes = batch.len(), "SQLite group commit failed");
                let message = e.to_string();
                for job in batch {
                    let _ = job.reply.send(Err(StoreError::Batch(message.clone())));
                }
            }
        }
    }
}

async fn apply_batch(
    conn: &mut SqliteConnection,
    batch: &[Job],
) -> Result<Vec<Result<Done, StoreError>>, sqlx::Error> {
    let mut tx = Connection::begin(conn).await?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let mut savepoint = Acquire::begin(&mut tx).await?;
        match apply(&mut savepoint, &job.op).await {
            Ok(done) => {
                savepoint.commit().await?;
                results.push(Ok(done));
            }
            Err(e) => {
                savepoint.rollback().await?;
                results.push(Err(StoreError::Query(e)));
            }
        }
    }
    tx.commit().await?;
    Ok(results)
}

async fn apply(conn: &mut SqliteConnection, op: &Op) -> Result<Done, sqlx::Error> {
    match op {
        Op::Insert(p, event) => {
            bind_insert!(sqlx::query(INSERT_PAYMENT), p.as_ref())
                .execute(&mut *conn)
                .await?;
            insert_event!(
                &mut *conn,
                &p.id,
                None::<String>,
                &p.status,
                event,
                p.created_at
            )?;
            Ok(Done::Inserted)
        }
        Op::Transition {
            id,
            from,
            to,
            changes,
            event,
            now,
        } => {
            let n = bind_update!(sqlx::query(update_sql(*to)), to, *now, changes, id, from)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if n == 1 {
                insert_event!(&mut *conn, id, from.as_str(), to.as_str(), event, *now)?;
            }
            Ok(Done::Transitioned(n == 1))
        }
        Op::Claim {
            id,
            pg_token,
            now,
            next_check_at,
        } => {
            let update = format!("{CLAIM_APPROVE} RETURNING {PAYMENT_COLUMNS}");
            let claimed = sqlx::query_as::<_, PaymentRecord>(&update)
                .bind(*now)
                .bind(pg_token)
                .bind(*next_check_at)
                .bind(id)
                .bind(*now - CALLBACK_WINDOW_MS)
                .bind(CALLBACK_CALLS)
                .fetch_optional(&mut *conn)
                .await?;
            if claimed.is_some() {
                let event = NewEvent::cause(crate::domain::Event::ApproveClaimed.as_str());
                insert_event!(&mut *conn, id, "ready", "approving", &event, *now)?;
            }
            Ok(Done::Claimed(claimed.map(Box::new)))
        }
    }
}
