//! Persistence: one store over two real backends, SQLite (embedded default: WAL, one writer
//! connection, several readers) and PostgreSQL (several instances). Migrations run at start.
//!
//! Every state change is one conditional write plus one event row, atomically: on PostgreSQL a
//! single statement (`WITH … UPDATE … RETURNING` feeding the event `INSERT`), on SQLite a savepoint
//! inside a group commit (module `group`: the writes waiting for SQLite's single writer are committed
//! together). No transaction is ever held across a KakaoPay call.

mod records;

pub use records::*;

use crate::domain::{Amounts, PaymentStatus};
use crate::service::resolve::{CALLBACK_CALLS, CALLBACK_WINDOW_MS};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

/// PostgreSQL connections per instance by default. Few on purpose: on a small machine every
/// backend process competes with the server for the same cores, and 8 outran 24 (2,845 vs 2,124
/// payments/s in `kpay bench server`); the hot path holds a connection for one statement.
pub const DEFAULT_PG_CONNECTIONS: u32 = 8;

/// Which database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is neither `sqlite://…` nor `postgres://…`.
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    /// Could not open or create the database.
    #[error("cannot open the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// Migrations failed.
    #[error("database migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    /// The SQLite group writer stopped (the process is shutting down).
    #[error("the database writer stopped")]
    WriterStopped,
    /// A group commit failed; none of its writes were applied.
    #[error("database commit failed: {0}")]
    Batch(String),
    /// The data directory could not be created.
    #[error("cannot create the database directory {path}: {source}")]
    Directory {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

#[derive(Clone, Debug)]
enum Db {
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
        /// Hot-path writes, committed in groups.
        group: group::GroupWriter,
    },
    Postgres(PgPool),
}

/// The payment store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
}

/// Runs `$body` with `$pool` bound to the pool for writes.
macro_rules! write_pool {
    ($self:expr, $pool:ident => $body:expr) => {
        match &$self.db {
            Db::Sqlite { writer: $pool, .. } => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$pool` bound to the pool for reads.
macro_rules! read_pool {
    ($self:expr, $pool:ident => $body:expr) => {
        match &$self.db {
            Db::Sqlite { reader: $pool, .. } => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

const PAYMENT_COLUMNS: &str = "id, status, cid, tid, aid, partner_order_id, partner_user_id, item_name, item_code, \
    quantity, amount_total, amount_tax_free, amount_vat, amount_green_deposit, canceled_total, canceled_tax_free, \
    canceled_vat, canceled_green_deposit, payment_method_type, card_info, channel, redirect_url, redirect_pc_url, \
    redirect_mobile_url, redirect_app_url, return_url, pg_token, failure_code, failure_message, refund_in_flight, \
    created_at, updated_at, expires_at, approve_started_at, approved_at, canceled_at, next_check_at, idempotency_key, \
    check_attempts, resend_count";

const INSERT_PAYMENT: &str = "INSERT INTO payments (id, status, cid, tid, aid, partner_order_id, partner_user_id, \
    item_name, item_code, quantity, amount_total, amount_tax_free, amount_vat, amount_green_deposit, channel, \
    redirect_url, redirect_pc_url, redirect_mobile_url, redirect_app_url, return_url, created_at, updated_at, \
    expires_at, next_check_at, idempotency_key, order_slot) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
    $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $6)";

/// The status change of a payment; `$extra` adds assignments.
macro_rules! update_payment {
    ($extra:literal) => {
        concat!("UPDATE payments SET status = $1, updated_at = $2, \
    pg_token = COALESCE($3, pg_token), approve_started_at = COALESCE($4, approve_started_at), \
    aid = COALESCE($5, aid), approved_at = COALESCE($6, approved_at), \
    payment_method_type = COALESCE($7, payment_method_type), card_info = COALESCE($8, card_info), \
    failure_code = COALESCE($9, failure_code), failure_message = COALESCE($10, failure_message), \
    canceled_total = COALESCE($11, canceled_total), canceled_tax_free = COALESCE($12, canceled_tax_free), \
    canceled_vat = COALESCE($13, canceled_vat), canceled_green_deposit = COALESCE($14, canceled_green_deposit), \
    canceled_at = COALESCE($15, canceled_at), next_check_at = $16, check_attempts = 0", $extra, " \
    WHERE id = $17 AND status = $18")
    };
}

/// A status change.
const UPDATE_PAYMENT: &str = update_payment!("");
/// A status change that ends the payment unpaid: the merchant order may be paid by a new payment,
/// so the payment gives up the order's slot. Only these changes touch `order_slot`, whose unique
/// index then costs nothing on the hot path (ready → approving → approved).
const UPDATE_PAYMENT_ENDING_UNPAID: &str = update_payment!(", order_slot = NULL");

/// The statement for a change to `to`.
fn update_sql(to: PaymentStatus) -> &'static str {
    match to {
        PaymentStatus::Quit | PaymentStatus::Failed | PaymentStatus::Expired => {
            UPDATE_PAYMENT_ENDING_UNPAID
        }
        _ => UPDATE_PAYMENT,
    }
}

/// The approve claim ($1 now, $2 pg_token, $3 next check, $4 id, $5 start of the callback window,
/// $6 claims allowed per window): takes one claim from the payment's claim budget (its own, not
/// the lookups': forged cancel/fail callbacks cannot spend it) and resets the re-send count of the
/// new approve.
const CLAIM_APPROVE: &str = "UPDATE payments SET status = 'approving', updated_at = $1, pg_token = $2, \
    approve_started_at = $1, next_check_at = $3, resend_count = 0, check_attempts = 0, \
    claim_calls = CASE WHEN claim_window IS NULL OR claim_window <= $5 THEN 1 ELSE claim_calls + 1 END, \
    claim_window = CASE WHEN claim_window IS NULL OR claim_window <= $5 THEN $1 ELSE claim_window END \
    WHERE id = $4 AND status = 'ready' AND expires_at > $1 \
    AND (claim_window IS NULL OR claim_window <= $5 OR claim_calls < $6)";

const INSERT_EVENT: &str = "INSERT INTO payment_events (payment_id, from_status, to_status, cause, upstream_code, \
    detail, at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

const INSERT_REFUND: &str = "INSERT INTO refunds (id, payment_id, status, amount, tax_free, vat, green_deposit, \
    cancelable_before, reason, aid, created_at, updated_at, idempotency_key) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

/// Runs [`INSERT_REFUND`] for `$refund` on `$exec`.
macro_rules! insert_refund {
    ($exec:expr, $refund:expr) => {{
        let r: &RefundRecord = $refund;
        sqlx::query(INSERT_REFUND)
            .bind(&r.id)
            .bind(&r.payment_id)
            .bind(&r.status)
            .bind(r.amount)
            .bind(r.tax_free)
            .bind(r.vat)
            .bind(r.green_deposit)
            .bind(r.cancelable_before)
            .bind(&r.reason)
            .bind(&r.aid)
            .bind(r.created_at)
            .bind(r.updated_at)
            .bind(&r.idempotency_key)
            .execute($exec)
            .await
    }};
}

/// Runs [`INSERT_EVENT`] on `$exec` (a pool or a transaction).
macro_rules! insert_event {
    ($exec:expr, $payment:expr, $from:expr, $to:expr, $event:expr, $at:expr) => {{
        let event: &NewEvent = $event;
        sqlx::query(INSERT_EVENT)
            .bind($payment)
            .bind($from)
            .bind($to)
            .bind(&event.cause)
            .bind(event.upstream_code)
            .bind(&event.detail)
            .bind($at)
            .execute($exec)
            .await
    }};
}

/// Binds the 18 parameters of [`UPDATE_PAYMENT`].
macro_rules! bind_update {
    ($q:expr, $to:expr, $now:expr, $c:expr, $id:expr, $from:expr) => {{
        let c: &Changes = $c;
        $q.bind($to.as_str())
            .bind($now)
            .bind(c.pg_token.clone())
            .bind(c.approve_started_at)
            .bind(c.aid.clone())
            .bind(c.approved_at)
            .bind(c.payment_method_type.clone())
            .bind(c.card_info.clone())
            .bind(c.failure_code.clone())
            .bind(c.failure_message.clone())
            .bind(c.canceled.map(|a| a.total.won()))
            .bind(c.canceled.map(|a| a.tax_free.won()))
            .bind(c.canceled.map(|a| a.vat.won()))
            .bind(c.canceled.map(|a| a.green_deposit.won()))
            .bind(c.canceled_at)
            .bind(c.next_check_at)
            .bind($id)
            .bind($from.as_str())
    }};
}

/// Binds the 25 parameters of [`INSERT_PAYMENT`].
macro_rules! bind_insert {
    ($q:expr, $p:expr) => {{
        let p: &PaymentRecord = $p;
        $q.bind(&p.id)
            .bind(&p.status)
            .bind(&p.cid)
            .bind(&p.tid)
            .bind(&p.aid)
            .bind(&p.partner_order_id)
            .bind(&p.partner_user_id)
            .bind(&p.item_name)
            .bind(&p.item_code)
            .bind(p.quantity)
            .bind(p.amount_total)
            .bind(p.amount_tax_free)
            .bind(p.amount_vat)
            .bind(p.amount_green_deposit)
            .bind(&p.channel)
            .bind(&p.redirect_url)
            .bind(&p.redirect_pc_url)
            .bind(&p.redirect_mobile_url)
            .bind(&p.redirect_app_url)
            .bind(&p.return_url)
            .bind(p.created_at)
            .bind(p.updated_at)
            .bind(p.expires_at)
            .bind(p.next_check_at)
            .bind(&p.idempotency_key)
    }};
}

mod group;
mod idempotency;
mod resolution;

pub use idempotency::IdemBegin;

/// Copies the WAL back into the database file four times a second, off the hot path (PASSIVE:
/// never blocks the writer), so that the writer's automatic checkpoint has little left to do.
/// Ends when the pool is closed.
fn spawn_checkpointer(pool: SqlitePool) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if pool.is_closed() {
                break;
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                if pool.is_closed() {
                    break;
                }
                tracing::warn!(error = %e, "SQLite checkpoint failed");
            }
        }
    });
}

/// What beginning a refund found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BeginRefund {
    /// The refund is recorded as pending and owns the payment's refund slot.
    Started,
    /// Another refund of this payment is in flight.
    InFlight,
    /// The payment changed since it was read (status or refunded amount): read again.
    Changed,
}

impl StoreError {
    /// Whether a unique constraint refused the write (another record already holds the key).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Query(sqlx::Error::Database(e)) => e.is_unique_violation(),
            _ => false,
        }
    }
}

impl Store {
    /// Opens `url` (`sqlite://PATH` or `postgres://…`), creating a SQLite file and its directory if
    /// needed, and applies the migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Self::connect_with(url, DEFAULT_PG_CONNECTIONS).await
    }

    /// [`Store::connect`] with at most `pg_connections` PostgreSQL connections (SQLite always uses
    /// one writer and four readers).
    pub async fn connect_with(url: &str, pg_connections: u32) -> Result<Store, StoreError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(StoreError::Connect)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // NORMAL in WAL mode: a commit survives the process being killed (SIGKILL); only an
                // OS crash can lose the last commits. FULL would fsync every commit.
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                // Fewer, larger checkpoints and a bigger page cache: the write path is the
                // single writer connection, so every page it does not have to write counts.
                .pragma("cache_size", "-65536")
                .pragma("temp_store", "memory")
                // A background checkpointer (below) does most of the copying; the writer's own
                // small automatic checkpoint finishes it and lets the WAL restart from the
                // beginning, which keeps it bounded (cut back to 64 MiB).
                .pragma("wal_autocheckpoint", "1000")
                .pragma("journal_size_limit", "67108864")
                .pragma("mmap_size", "268435456");
            if let Some(dir) = options
                .get_filename()
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::Directory {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await
                .map_err(StoreError::Connect)?;
            sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
            let group = group::GroupWriter::start(&options).await?;
            spawn_checkpointer(writer.clone());
            let reader = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options)
                .await
                .map_err(StoreError::Connect)?;
            Ok(Store {
                db: Db::Sqlite {
                    writer,
                    reader,
                    group,
                },
            })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url).map_err(StoreError::Connect)?;
            let pool = PgPoolOptions::new()
                .max_connections(pg_connections.max(1))
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(StoreError::Connect)?;
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            Ok(Store {
                db: Db::Postgres(pool),
            })
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// A round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        read_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Closes the pools, waiting for connections in use.
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { writer, reader, .. } => {
                reader.close().await;
                writer.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }

    /// Inserts a new payment with its first event.
    pub async fn insert_payment(
        &self,
        p: &PaymentRecord,
        event: &NewEvent,
    ) -> Result<(), StoreError> {
        match &self.db {
            Db::Postgres(pool) => {
                let sql = format!(
                    "WITH p AS ({INSERT_PAYMENT} RETURNING id) INSERT INTO payment_events (payment_id, from_status, \
                     to_status, cause, upstream_code, detail, at) SELECT id, NULL, $2, $26, $27, $28, $21 FROM p"
                );
                bind_insert!(sqlx::query(&sql), p)
                    .bind(&event.cause)
                    .bind(event.upstream_code)
                    .bind(&event.detail)
                    .execute(pool)
                    .await?;
            }
            Db::Sqlite { group, .. } => {
                group
                    .submit(group::Op::Insert(Box::new(p.clone()), event.clone()))
                    .await?;
            }
        }
        Ok(())
    }

    /// A payment by id.
    pub async fn payment(&self, id: &str) -> Result<Option<PaymentRecord>, StoreError> {
        let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1");
        Ok(
            read_pool!(self, pool => sqlx::query_as::<_, PaymentRecord>(&sql).bind(id).fetch_optional(pool).await)?,
        )
    }

    /// Moves payment `id` from `from` to `to` with `changes`, logging `event`, only if it is still
    /// `from`. Returns whether it did.
    pub async fn transition(
        &self,
        id: &str,
        from: PaymentStatus,
        to: PaymentStatus,
        changes: &Changes,
        event: &NewEvent,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = match &self.db {
            Db::Postgres(pool) => {
                let sql = format!(
                    "WITH u AS ({} RETURNING id) INSERT INTO payment_events (payment_id, from_status, \
                     to_status, cause, upstream_code, detail, at) SELECT id, $18, $1, $19, $20, $21, $2 FROM u",
                    update_sql(to)
                );
                bind_update!(sqlx::query(&sql), to, now, changes, id, from)
                    .bind(&event.cause)
                    .bind(event.upstream_code)
                    .bind(&event.detail)
                    .execute(pool)
                    .await?
                    .rows_affected()
                    == 1
            }
            Db::Sqlite { group, .. } => {
                let op = group::Op::Transition {
                    id: id.to_owned(),
                    from,
                    to,
                    changes: Box::new(changes.clone()),
                    event: event.clone(),
                    now,
                };
                matches!(group.submit(op).await?, group::Done::Transitioned(true))
            }
        };
        Ok(done)
    }

    /// Claims the approve of a payment that is `ready` and not expired at `now`: `approving`, the
    /// pg_token and the time recorded, the claim logged. Returns the claimed payment, or `None`
    /// when someone else claimed it first, it is no longer ready, or its callback budget is spent
    /// (approve callbacks can be forged: each claim is a KakaoPay call). One round trip on
    /// PostgreSQL.
    pub async fn claim_approve(
        &self,
        id: &str,
        pg_token: &str,
        now: i64,
        next_check_at: i64,
    ) -> Result<Option<PaymentRecord>, StoreError> {
        let update = format!("{CLAIM_APPROVE} RETURNING {PAYMENT_COLUMNS}");
        let event = NewEvent::cause(crate::domain::Event::ApproveClaimed.as_str());
        match &self.db {
            Db::Postgres(pool) => {
                let sql = format!(
                    "WITH u AS ({update}), e AS (INSERT INTO payment_events (payment_id, from_status, to_status, cause, at) \
                     SELECT id, 'ready', 'approving', $7, $1 FROM u) SELECT * FROM u"
                );
                Ok(sqlx::query_as::<_, PaymentRecord>(&sql)
                    .bind(now)
                    .bind(pg_token)
                    .bind(next_check_at)
                    .bind(id)
                    .bind(now - CALLBACK_WINDOW_MS)
                    .bind(CALLBACK_CALLS)
                    .bind(&event.cause)
                    .fetch_optional(pool)
                    .await?)
            }
            Db::Sqlite { group, .. } => {
                let op = group::Op::Claim {
                    id: id.to_owned(),
                    pg_token: pg_token.to_owned(),
                    now,
                    next_check_at,
                };
                match group.submit(op).await? {
                    group::Done::Claimed(claimed) => Ok(claimed.map(|p| *p)),
                    _ => Ok(None),
                }
            }
        }
    }

    /// Sets when the reconciler should look at a payment next (`None`: never).
    pub async fn schedule_check(&self, id: &str, at: Option<i64>) -> Result<(), StoreError> {
        write_pool!(self, pool => sqlx::query("UPDATE payments SET next_check_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(pool)
            .await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Every event of a payment, oldest first.
    pub async fn events(&self, id: &str) -> Result<Vec<EventRecord>, StoreError> {
        let sql = "SELECT id, payment_id, from_status, to_status, cause, upstream_code, detail, at, repeats, last_at \
                   FROM payment_events WHERE payment_id = $1 ORDER BY id";
        Ok(
            read_pool!(self, pool => sqlx::query_as::<_, EventRecord>(sql).bind(id).fetch_all(pool).await)?,
        )
    }

    /// Every refund of a payment, oldest first.
    pub async fn refunds(&self, payment_id: &str) -> Result<Vec<RefundRecord>, StoreError> {
        let sql = "SELECT id, payment_id, status, amount, tax_free, vat, green_deposit, cancelable_before, reason, aid, \
                   failure_code, failure_message, created_at, updated_at, idempotency_key FROM refunds WHERE payment_id = $1 \
                   ORDER BY created_at, id";
        Ok(
            read_pool!(self, pool => sqlx::query_as::<_, RefundRecord>(sql).bind(payment_id).fetch_all(pool).await)?,
        )
    }

    /// A page of payments, newest first.
    pub async fn list(&self, f: &ListFilter) -> Result<Vec<PaymentRecord>, StoreError> {
        macro_rules! build {
            ($qb:ident) => {{
                $qb.push(format!(
                    "SELECT {PAYMENT_COLUMNS} FROM payments WHERE 1 = 1"
                ));
                if let Some(s) = f.status {
                    $qb.push(" AND status = ").push_bind(s.as_str());
                }
                if let Some(from) = f.from {
                    $qb.push(" AND created_at >= ").push_bind(from);
                }
                if let Some(to) = f.to {
                    $qb.push(" AND created_at < ").push_bind(to);
                }
                if let Some(q) = &f.search {
                    $qb.push(" AND (partner_order_id = ").push_bind(q.clone());
                    $qb.push(" OR tid = ").push_bind(q.clone());
                    $qb.push(" OR id = ").push_bind(q.clone());
                    $qb.push(")");
                }
                if let Some((at, id)) = &f.after {
                    $qb.push(" AND (created_at < ").push_bind(*at);
                    $qb.push(" OR (created_at = ").push_bind(*at);
                    $qb.push(" AND id < ").push_bind(id.clone());
                    $qb.push("))");
                }
                $qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
                    .push_bind(f.limit);
            }};
        }
        Ok(match &self.db {
            Db::Sqlite { reader, .. } => {
                let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new("");
                build!(qb);
                qb.build_query_as::<PaymentRecord>()
                    .fetch_all(reader)
                    .await?
            }
            Db::Postgres(pool) => {
                let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new("");
                build!(qb);
                qb.build_query_as::<PaymentRecord>().fetch_all(pool).await?
            }
        })
    }

    /// A page of payments and the cursor of the next page (`created_at_id` of its last row), if any.
    pub async fn page(
        &self,
        f: &ListFilter,
    ) -> Result<(Vec<PaymentRecord>, Option<String>), StoreError> {
        let mut rows = self
            .list(&ListFilter {
                limit: f.limit + 1,
                ..f.clone()
            })
            .await?;
        if rows.len() as i64 <= f.limit {
            return Ok((rows, None));
        }
        rows.truncate(usize::try_from(f.limit).unwrap_or(0));
        let next = rows.last().map(|p| format!("{}_{}", p.created_at, p.id));
        Ok((rows, next))
    }

    /// Payments updated at or after `since` (ms), newest first, at most `limit`.
    pub async fn updated_since(
        &self,
        since: i64,
        limit: i64,
    ) -> Result<Vec<PaymentRecord>, StoreError> {
        let sql = format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE updated_at >= $1 ORDER BY updated_at DESC LIMIT $2"
        );
        Ok(
            read_pool!(self, pool => sqlx::query_as::<_, PaymentRecord>(&sql).bind(since).bind(limit).fetch_all(pool).await)?,
        )
    }

    /// How many payments are in each status.
    pub async fn status_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = "SELECT status, COUNT(*) FROM payments GROUP BY status";
        Ok(read_pool!(self, pool => sqlx::query_as::<_, (String, i64)>(sql).fetch_all(pool).await)?)
    }

    /// Sums and counts of approved money per day (KST) since `since` (ms): (day start ms, count, total, refunded).
    pub async fn daily_totals(&self, since: i64) -> Result<Vec<(i64, i64, i64, i64)>, StoreError> {
        // Days start at 00:00 KST = 15:00 UTC of the day before.
        let sql = "SELECT ((approved_at + 32400000) / 86400000) * 86400000 - 32400000 AS day, COUNT(*), \
                   SUM(amount_total), SUM(canceled_total) FROM payments \
                   WHERE approved_at IS NOT NULL AND approved_at >= $1 GROUP BY day ORDER BY day";
        Ok(
            read_pool!(self, pool => sqlx::query_as::<_, (i64, i64, i64, i64)>(sql).bind(since).fetch_all(pool).await)?,
        )
    }

    /// Reserves the payment's refund slot for `refund` and records it as pending, if the payment is
    /// still refundable with `canceled_total` refunded and no other refund in flight.
    pub async fn begin_refund(
        &self,
        refund: &RefundRecord,
        expected_status: PaymentStatus,
        expected_canceled_total: i64,
        event: &NewEvent,
        check_at: i64,
    ) -> Result<BeginRefund, StoreError> {
        let reserve = "UPDATE payments SET refund_in_flight = $1, updated_at = $2, next_check_at = $3 \
                       WHERE id = $4 AND status = $5 AND refund_in_flight IS NULL AND canceled_total = $6";
        write_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(reserve)
                .bind(&refund.id)
                .bind(refund.created_at)
                .bind(check_at)
                .bind(&refund.payment_id)
                .bind(expected_status.as_str())
                .bind(expected_canceled_total)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                drop(tx);
                let current = self.payment(&refund.payment_id).await?;
                return Ok(match current {
                    Some(p) if p.refund_in_flight.is_some() => BeginRefund::InFlight,
                    _ => BeginRefund::Changed,
                });
            }
            insert_refund!(&mut *tx, refund)?;
            insert_event!(&mut *tx, &refund.payment_id, expected_status.as_str(), expected_status.as_str(), event, refund.created_at)?;
            tx.commit().await?;
            Ok(BeginRefund::Started)
        })
    }

    /// Records a pending refund as done: the refund succeeded (payment moves `from` → `to` with the
    /// new refunded total) or failed (payment unchanged). Frees the refund slot. Returns whether the
    /// refund was still pending.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_refund(
        &self,
        payment_id: &str,
        refund_id: &str,
        outcome: RefundOutcome<'_>,
        from: PaymentStatus,
        to: PaymentStatus,
        event: &NewEvent,
        now: i64,
    ) -> Result<bool, StoreError> {
        write_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = match &outcome {
                RefundOutcome::Succeeded { aid, .. } => sqlx::query(
                    "UPDATE refunds SET status = 'succeeded', aid = $1, updated_at = $2 WHERE id = $3 AND status = 'pending'",
                )
                .bind(*aid)
                .bind(now)
                .bind(refund_id)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
                RefundOutcome::Failed { code, message, release_key } => sqlx::query(
                    "UPDATE refunds SET status = 'failed', failure_code = $1, failure_message = $2, updated_at = $3, \
                     idempotency_key = CASE WHEN $5 THEN NULL ELSE idempotency_key END \
                     WHERE id = $4 AND status = 'pending'",
                )
                .bind(*code)
                .bind(*message)
                .bind(now)
                .bind(refund_id)
                .bind(*release_key)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
            };
            if n == 0 {
                return Ok(false);
            }
            let canceled = match &outcome {
                RefundOutcome::Succeeded { canceled, .. } => Some(*canceled),
                RefundOutcome::Failed { .. } => None,
            };
            sqlx::query(
                "UPDATE payments SET status = $1, updated_at = $2, refund_in_flight = NULL, \
                 canceled_total = COALESCE($3, canceled_total), canceled_tax_free = COALESCE($4, canceled_tax_free), \
                 canceled_vat = COALESCE($5, canceled_vat), canceled_green_deposit = COALESCE($6, canceled_green_deposit), \
                 canceled_at = COALESCE($7, canceled_at), next_check_at = NULL \
                 WHERE id = $8 AND refund_in_flight = $9",
            )
            .bind(to.as_str())
            .bind(now)
            .bind(canceled.map(|a: Amounts| a.total.won()))
            .bind(canceled.map(|a| a.tax_free.won()))
            .bind(canceled.map(|a| a.vat.won()))
            .bind(canceled.map(|a| a.green_deposit.won()))
            .bind(canceled.map(|_| now))
            .bind(payment_id)
            .bind(refund_id)
            .execute(&mut *tx)
            .await?;
            insert_event!(&mut *tx, payment_id, from.as_str(), to.as_str(), event, now)?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Records a refund KakaoPay made that this ledger did not know of (found by reconciliation),
    /// only if the payment still has `known_canceled_total` refunded: a refund recorded meanwhile
    /// (the lookup may be older than it) must not be recorded a second time.
    pub async fn record_external_refund(
        &self,
        refund: &RefundRecord,
        from: PaymentStatus,
        to: PaymentStatus,
        canceled: Amounts,
        known_canceled_total: i64,
        event: &NewEvent,
    ) -> Result<bool, StoreError> {
        write_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE payments SET status = $1, updated_at = $2, canceled_total = $3, canceled_tax_free = $4, \
                 canceled_vat = $5, canceled_green_deposit = $6, canceled_at = $7 WHERE id = $8 AND status = $9 \
                 AND refund_in_flight IS NULL AND canceled_total = $10",
            )
            .bind(to.as_str())
            .bind(refund.created_at)
            .bind(canceled.total.won())
            .bind(canceled.tax_free.won())
            .bind(canceled.vat.won())
            .bind(canceled.green_deposit.won())
            .bind(refund.created_at)
            .bind(&refund.payment_id)
            .bind(from.as_str())
            .bind(known_canceled_total)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Ok(false);
            }
            insert_refund!(&mut *tx, refund)?;
            insert_event!(&mut *tx, &refund.payment_id, from.as_str(), to.as_str(), event, refund.created_at)?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Whether an API key with this hash exists and is not revoked.
    pub async fn api_key_valid(&self, hash: &str) -> Result<bool, StoreError> {
        let row: Option<(String,)> = read_pool!(self, pool => sqlx::query_as(
            "SELECT id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(pool)
        .await)?;
        Ok(row.is_some())
    }

    /// Stores an API key's hash (idempotent).
    pub async fn add_api_key(
        &self,
        id: &str,
        hash: &str,
        prefix: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        write_pool!(self, pool => sqlx::query(
            "INSERT INTO api_keys (id, key_hash, prefix, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (key_hash) DO NOTHING",
        )
        .bind(id)
        .bind(hash)
        .bind(prefix)
        .bind(now)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Stores a shop order (the demo shop's own table).
    pub async fn insert_shop_order(&self, o: &ShopOrderRecord) -> Result<(), StoreError> {
        write_pool!(self, pool => sqlx::query(
            "INSERT INTO shop_orders (id, payment_id, guest, lines, total, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&o.id)
        .bind(&o.payment_id)
        .bind(&o.guest)
        .bind(&o.lines)
        .bind(o.total)
        .bind(o.created_at)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Links a shop order to its payment.
    pub async fn set_shop_order_payment(
        &self,
        id: &str,
        payment_id: &str,
    ) -> Result<(), StoreError> {
        write_pool!(self, pool => sqlx::query("UPDATE shop_orders SET payment_id = $1 WHERE id = $2")
            .bind(payment_id)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// A shop order.
    pub async fn shop_order(&self, id: &str) -> Result<Option<ShopOrderRecord>, StoreError> {
        Ok(
            read_pool!(self, pool => sqlx::query_as::<_, ShopOrderRecord>(
            "SELECT id, payment_id, guest, lines, total, created_at FROM shop_orders WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await)?,
        )
    }

    /// Records a reconciler run.
    pub async fn record_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        write_pool!(self, pool => sqlx::query(
            "INSERT INTO reconciler_runs (id, instance, started_at, finished_at, checked, changed, mismatches) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&run.id)
        .bind(&run.instance)
        .bind(run.started_at)
        .bind(run.finished_at)
        .bind(run.checked)
        .bind(run.changed)
        .bind(run.mismatches)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// How many disagreements with KakaoPay all reconciler runs found.
    pub async fn reconciler_mismatches(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = read_pool!(self, pool => sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(mismatches), 0) AS BIGINT) FROM reconciler_runs",
        )
        .fetch_one(pool)
        .await)?;
        Ok(n)
    }

    /// The latest reconciler run.
    pub async fn last_run(&self) -> Result<Option<RunRecord>, StoreError> {
        Ok(read_pool!(self, pool => sqlx::query_as::<_, RunRecord>(
            "SELECT id, instance, started_at, finished_at, checked, changed, mismatches FROM reconciler_runs \
             ORDER BY started_at DESC LIMIT 1",
        )
        .fetch_optional(pool)
        .await)?)
    }
}

/// How a refund ended.
#[derive(Clone, Copy, Debug)]
pub enum RefundOutcome<'a> {
    /// Refunded; `canceled` is the payment's new refunded total.
    Succeeded {
        /// The cancel's AID.
        aid: &'a str,
        /// The new refunded amounts of the payment.
        canceled: Amounts,
    },
    /// Refused, or never applied.
    Failed {
        /// KakaoPay's code or our reason.
        code: &'a str,
        /// Message.
        message: &'a str,
        /// Nothing happened and the request may be retried with its Idempotency-Key: the refund
        /// gives the key up, so that the retry makes a new attempt.
        release_key: bool,
    },
}
