//! The demo shop's own orders: what was bought, and the payment that pays for it. A merchant's
//! backend keeps its orders in its own database, not in the payment server's ledger, and so does
//! the shop: on SQLite a file of its own beside the ledger (`shop.db`), on PostgreSQL its own
//! table (`demo_shop_orders`) in the configured database.

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{PgPool, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// A shop order.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct ShopOrder {
    /// Order id (`ord_…`), also the payment's `partner_order_id`.
    pub(crate) id: String,
    /// The payment, once created.
    pub(crate) payment_id: Option<String>,
    /// The buyer's guest id (cookie).
    pub(crate) guest: String,
    /// JSON: `[{"sku","name","price","quantity"}]`.
    pub(crate) lines: String,
    /// What the shop's catalog priced it at, in won.
    pub(crate) total: i64,
    /// Milliseconds since the epoch.
    pub(crate) created_at: i64,
}

/// Where the shop keeps its orders.
#[derive(Clone, Debug)]
pub(crate) enum ShopOrders {
    /// Its own SQLite file.
    Sqlite(SqlitePool),
    /// Its own table in the configured PostgreSQL database.
    Postgres(PgPool),
}

const CREATE: &str = "CREATE TABLE IF NOT EXISTS demo_shop_orders (id TEXT PRIMARY KEY, payment_id TEXT, \
    guest TEXT NOT NULL, lines TEXT NOT NULL, total BIGINT NOT NULL, created_at BIGINT NOT NULL)";

macro_rules! on_pool {
    ($self:expr, $pool:ident => $body:expr) => {
        match $self {
            ShopOrders::Sqlite($pool) => $body,
            ShopOrders::Postgres($pool) => $body,
        }
    };
}

impl ShopOrders {
    /// Opens the shop's orders for a server whose ledger is at `ledger_url` (SQLite: the file
    /// `shop.db` in `data_dir`), creating the table if needed.
    pub(crate) async fn open(ledger_url: &str, data_dir: &Path) -> Result<Self, sqlx::Error> {
        let orders = if ledger_url.starts_with("postgres:") || ledger_url.starts_with("postgresql:")
        {
            let pool = PgPoolOptions::new()
                .max_connections(2)
                .acquire_timeout(Duration::from_secs(10))
                .connect(ledger_url)
                .await?;
            ShopOrders::Postgres(pool)
        } else {
            let options = SqliteConnectOptions::from_str(&format!(
                "sqlite://{}",
                data_dir.join("shop.db").display()
            ))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
            // One connection: the shop's few writes never wait for each other's locks.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await?;
            ShopOrders::Sqlite(pool)
        };
        on_pool!(&orders, pool => sqlx::query(CREATE).execute(pool).await.map(|_| ()))?;
        Ok(orders)
    }

    /// Stores a new order.
    pub(crate) async fn insert(&self, o: &ShopOrder) -> Result<(), sqlx::Error> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO demo_shop_orders (id, payment_id, guest, lines, total, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&o.id)
        .bind(&o.payment_id)
        .bind(&o.guest)
        .bind(&o.lines)
        .bind(o.total)
        .bind(o.created_at)
        .execute(pool)
        .await
        .map(|_| ()))
    }

    /// Links an order to its payment.
    pub(crate) async fn set_payment(&self, id: &str, payment_id: &str) -> Result<(), sqlx::Error> {
        on_pool!(self, pool => sqlx::query("UPDATE demo_shop_orders SET payment_id = $1 WHERE id = $2")
            .bind(payment_id)
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ()))
    }

    /// An order.
    pub(crate) async fn get(&self, id: &str) -> Result<Option<ShopOrder>, sqlx::Error> {
        on_pool!(self, pool => sqlx::query_as::<_, ShopOrder>(
            "SELECT id, payment_id, guest, lines, total, created_at FROM demo_shop_orders WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await)
    }
}
