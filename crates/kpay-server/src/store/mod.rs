//! Persistence of the ledger over two real backends: SQLite (the embedded default: WAL, one
//! writer, several readers) and PostgreSQL (several instances on one database). Migrations run at
//! start. The store speaks the domain's types; its rows stay private ([`rows`]).
//!
//! Every state change is one conditional write plus its event-log line, atomically, and the
//! status it writes is the one [`crate::domain::transition`] decides. On PostgreSQL the hot-path
//! changes are single statements ([`postgres`]); on SQLite every write goes through the one writer
//! task ([`sqlite_writer`]), which commits the writes waiting for it together. No transaction is
//! ever held across a KakaoPay call.
//!
//! By concern: [`payments`] (create, read, list, status changes, the approve claim), [`refunds`],
//! [`events`] (the log and its notes), [`idempotency`] (keys of the merchant API), [`api_keys`],
//! [`leases`] (what keeps lookups bounded: leases, back-off, budgets), [`reports`] (counts,
//! totals, reconciler runs).

mod api_keys;
mod deliveries;
mod events;
mod idempotency;
mod leases;
mod outbox;
mod payments;
mod postgres;
mod refunds;
mod reports;
mod rows;
mod sql;
mod sqlite_writer;
mod subscription_rows;
mod subscriptions;
mod webhooks;

pub use deliveries::{
    AttemptRecord, AttemptRow, DeliveryRecord, Disabled, DueDelivery, FanOut, HandOff,
};
pub use idempotency::IdemBegin;
pub use outbox::{EventPage, EventRecord, parse_cursor};
pub use payments::{ListFilter, Page};
pub use refunds::{BeginRefund, RefundEnd};
pub use reports::{DayTotal, ReconcilerRun};
pub use subscriptions::{
    ChargeEnd, Claim, Finished, SubChange, SubWrite, SubscriptionFilter, SubscriptionPage,
};

use crate::domain::TransitionError;
use sqlite_writer::SqliteWriter;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, PgPool, SqliteConnection, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

/// PostgreSQL connections per instance by default. Few on purpose: on a small machine every
/// backend process competes with the server for the same cores, and 8 outran 24 (2,845 vs 2,124
/// payments/s in `kpay bench server`); the hot path holds a connection for one statement.
pub const DEFAULT_PG_CONNECTIONS: u32 = 8;

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
    /// The SQLite writer stopped (the process is shutting down).
    #[error("the database writer stopped")]
    WriterStopped,
    /// A group commit failed; none of its writes were applied.
    #[error("database commit failed: {0}")]
    Batch(String),
    /// A row holds a value that is not valid for its column: the ledger refuses to guess.
    #[error("corrupt {table} row {id}: invalid {field}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's id.
        id: String,
        /// The column.
        field: &'static str,
    },
    /// A status change the state machine does not allow was asked of the store.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// The data directory could not be created.
    #[error("cannot create the database directory {path}: {source}")]
    Directory {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
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

#[derive(Clone, Debug)]
enum Db {
    Sqlite {
        /// The only writer.
        writer: SqliteWriter,
        /// Readers (WAL: they never block the writer nor wait for it).
        reader: SqlitePool,
    },
    Postgres(PgPool),
}

/// The payment store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    /// How the API shows a payment: the `data.object` of the events written with its changes.
    render: Renderer,
}

/// Renders objects as the API shows them (the HTTP layer's views, given at start-up: the store
/// does not depend on it).
#[derive(Clone)]
pub struct Renderer {
    payment: std::sync::Arc<PaymentRenderFn>,
    subscription: std::sync::Arc<SubscriptionRenderFn>,
}

/// A payment and its refunds → the API's JSON of the payment.
type PaymentRenderFn =
    dyn Fn(&crate::domain::Payment, &[crate::domain::Refund]) -> String + Send + Sync;
/// A subscription → the API's JSON of it.
type SubscriptionRenderFn = dyn Fn(&crate::domain::Subscription) -> String + Send + Sync;

impl Renderer {
    /// From the functions that render.
    pub fn new(
        payment: impl Fn(&crate::domain::Payment, &[crate::domain::Refund]) -> String
        + Send
        + Sync
        + 'static,
        subscription: impl Fn(&crate::domain::Subscription) -> String + Send + Sync + 'static,
    ) -> Self {
        Self {
            payment: std::sync::Arc::new(payment),
            subscription: std::sync::Arc::new(subscription),
        }
    }

    /// `{"object": …}` for `p` with its `refunds`.
    pub(crate) fn data(
        &self,
        p: &crate::domain::Payment,
        refunds: &[crate::domain::Refund],
    ) -> String {
        format!("{{\"object\":{}}}", (self.payment)(p, refunds))
    }

    /// `{"object": …}` for `s`.
    pub(crate) fn subscription_data(&self, s: &crate::domain::Subscription) -> String {
        format!("{{\"object\":{}}}", (self.subscription)(s))
    }
}

impl Default for Renderer {
    /// Ids and versions only (a store used without the API, in tools).
    fn default() -> Self {
        Self::new(
            |p, _| format!("{{\"id\":\"{}\",\"version\":{}}}", p.id, p.version),
            |s| format!("{{\"id\":\"{}\",\"version\":{}}}", s.id, s.version),
        )
    }
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Renderer")
    }
}

/// A value bound to a column of a row built from a column list (`rows::payment_values`).
#[derive(Clone, Debug)]
pub(crate) enum Value {
    Text(Option<String>),
    Int(Option<i64>),
}

/// `INSERT INTO table (columns…) VALUES (values…)` from a column list, on either backend; the
/// caller may push more (`RETURNING`, a CTE around it).
macro_rules! push_insert {
    ($qb:expr, $table:expr, $values:expr) => {{
        let values: Vec<(&'static str, $crate::store::Value)> = $values;
        let names: Vec<&str> = values.iter().map(|(n, _)| *n).collect();
        $qb.push(format!(
            "INSERT INTO {} ({}) VALUES (",
            $table,
            names.join(", ")
        ));
        let mut list = $qb.separated(", ");
        for (_, v) in values {
            match v {
                $crate::store::Value::Text(t) => list.push_bind(t),
                $crate::store::Value::Int(i) => list.push_bind(i),
            };
        }
        $qb.push(")");
    }};
}
pub(crate) use push_insert;

/// Runs `$body` (a `Result<T, sqlx::Error>` using `$conn`, a `&mut` connection) as one write: on
/// PostgreSQL on a pooled connection, on SQLite on the one writer. The body owns what it uses.
macro_rules! write {
    ($store:expr, [$($cap:ident),*], |$conn:ident| $body:expr) => {{
        $(let $cap = $cap.to_owned();)*
        $crate::store::write!($store, |$conn| $body)
    }};
    ($store:expr, |$conn:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Postgres(pool) => {
                let mut c = pool.acquire().await?;
                let $conn: &mut sqlx::PgConnection = &mut *c;
                let r: Result<_, sqlx::Error> = async { $body }.await;
                r.map_err($crate::store::StoreError::from)
            }
            $crate::store::Db::Sqlite { writer, .. } => {
                writer
                    .write(move |$conn| Box::pin(async move { $body }))
                    .await
            }
        }
    };
}
pub(crate) use write;

/// [`write!`] in one transaction (SQLite's writer already runs each write atomically).
macro_rules! write_tx {
    ($store:expr, [$($cap:ident),*], |$conn:ident| $body:expr) => {{
        $(let $cap = $cap.to_owned();)*
        $crate::store::write_tx!($store, |$conn| $body)
    }};
    ($store:expr, |$conn:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let $conn: &mut sqlx::PgConnection = &mut *tx;
                let r: Result<_, sqlx::Error> = async { $body }.await;
                match r {
                    Ok(v) => {
                        tx.commit().await?;
                        Ok(v)
                    }
                    Err(e) => Err($crate::store::StoreError::from(e)),
                }
            }
            $crate::store::Db::Sqlite { writer, .. } => {
                writer
                    .write(move |$conn| Box::pin(async move { $body }))
                    .await
            }
        }
    };
}
pub(crate) use write_tx;

/// Runs `$body` with `$pool` bound to the pool for reads.
macro_rules! read {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite { reader: $pool, .. } => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use read;

/// Copies the WAL back into the database file four times a second, off the hot path (PASSIVE:
/// never blocks the writer), so that the writer's automatic checkpoint has little left to do.
/// Runs on a reader connection; ends when the pool is closed.
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
            Self::connect_sqlite(url).await
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
                render: Renderer::default(),
            })
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }

    async fn connect_sqlite(url: &str) -> Result<Store, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::Connect)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode: a commit survives the process being killed (SIGKILL); only an
            // OS crash can lose the last commits. FULL would fsync every commit.
            .synchronous(SqliteSynchronous::Normal)
            // Only readers and the checkpointer meet the writer; none of them blocks for long.
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // A bigger page cache: the write path is one connection, so every page it does not
            // have to read again counts.
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
        // Migrations run with foreign keys off: rebuilding a table (SQLite's way of changing a
        // CHECK) drops the old one, which foreign keys would refuse. On again afterwards, and
        // checked: a migration must leave no dangling reference.
        let mut conn = SqliteConnection::connect_with(&options.clone().foreign_keys(false))
            .await
            .map_err(StoreError::Connect)?;
        sqlx::migrate!("./migrations/sqlite").run(&mut conn).await?;
        sqlx::query("PRAGMA foreign_keys = ON")
            .execute(&mut conn)
            .await?;
        let dangling: Vec<(String,)> =
            sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
                .fetch_all(&mut conn)
                .await?;
        if let Some((table,)) = dangling.first() {
            return Err(StoreError::Corrupt {
                table: "foreign keys",
                id: table.clone(),
                field: "reference",
            });
        }
        let writer = SqliteWriter::start(conn);
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(StoreError::Connect)?;
        spawn_checkpointer(reader.clone());
        Ok(Store {
            db: Db::Sqlite { writer, reader },
            render: Renderer::default(),
        })
    }

    /// This store, rendering event objects with `render`.
    pub fn with_renderer(mut self, render: Renderer) -> Self {
        self.render = render;
        self
    }

    /// A round trip to the database, through the path writes take (on SQLite its one writer:
    /// a stopped writer is not ready) and the path reads take.
    pub async fn ping(&self) -> Result<(), StoreError> {
        write!(self, |conn| sqlx::query("SELECT 1")
            .execute(&mut *conn)
            .await
            .map(|_| ()))?;
        read!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Closes the pools, waiting for connections in use. (SQLite's writer ends with the last
    /// clone of the store.)
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { reader, .. } => reader.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }
}
