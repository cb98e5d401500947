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
    /// When a verified `payment.approved` webhook fulfilled it (ms), if one did.
    pub(crate) fulfilled_at: Option<i64>,
    /// That webhook's event id.
    pub(crate) fulfilled_by: Option<String>,
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
/// Columns added since the table was first made (shops created before webhooks lack them).
const ADDED: [&str; 2] = ["fulfilled_at BIGINT", "fulfilled_by TEXT"];
/// The shop's own webhook endpoint per URL: its id and the secret it verifies with (a merchant
/// keeps this in its secret store; the demo keeps it beside its orders).
const CREATE_HOOKS: &str = "CREATE TABLE IF NOT EXISTS demo_shop_webhooks (url TEXT PRIMARY KEY, \
    endpoint_id TEXT NOT NULL, secret TEXT NOT NULL)";
const ORDER_COLUMNS: &str =
    "id, payment_id, guest, lines, total, created_at, fulfilled_at, fulfilled_by";

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
        on_pool!(&orders, pool => sqlx::query(CREATE_HOOKS).execute(pool).await.map(|_| ()))?;
        for column in ADDED {
            let name = column.split(' ').next().unwrap_or(column);
            let (n,): (i64,) = match &orders {
                ShopOrders::Sqlite(pool) => sqlx::query_as(
                    "SELECT COUNT(*) FROM pragma_table_info('demo_shop_orders') WHERE name = $1",
                )
                .bind(name)
                .fetch_one(pool)
                .await?,
                ShopOrders::Postgres(pool) => sqlx::query_as(
                    "SELECT COUNT(*) FROM information_schema.columns WHERE table_name = 'demo_shop_orders' AND column_name = $1",
                )
                .bind(name)
                .fetch_one(pool)
                .await?,
            };
            if n == 0 {
                let sql = format!("ALTER TABLE demo_shop_orders ADD COLUMN {column}");
                on_pool!(&orders, pool => sqlx::query(&sql).execute(pool).await.map(|_| ()))?;
            }
        }
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
        let sql = format!("SELECT {ORDER_COLUMNS} FROM demo_shop_orders WHERE id = $1");
        on_pool!(self, pool => sqlx::query_as::<_, ShopOrder>(&sql)
        .bind(id)
        .fetch_optional(pool)
        .await)
    }

    /// Marks an order fulfilled by event `event` at `at` (ms), once: `false` if it already was.
    pub(crate) async fn fulfil(&self, id: &str, event: &str, at: i64) -> Result<bool, sqlx::Error> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE demo_shop_orders SET fulfilled_at = $1, fulfilled_by = $2 WHERE id = $3 AND fulfilled_at IS NULL",
        )
        .bind(at)
        .bind(event)
        .bind(id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected() == 1))
    }

    /// The shop's endpoint for `url`: (endpoint id, secret).
    pub(crate) async fn hook(&self, url: &str) -> Result<Option<(String, String)>, sqlx::Error> {
        on_pool!(self, pool => sqlx::query_as(
            "SELECT endpoint_id, secret FROM demo_shop_webhooks WHERE url = $1",
        )
        .bind(url)
        .fetch_optional(pool)
        .await)
    }

    /// Keeps the shop's endpoint for `url`.
    pub(crate) async fn set_hook(
        &self,
        url: &str,
        endpoint_id: &str,
        secret: &str,
    ) -> Result<(), sqlx::Error> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO demo_shop_webhooks (url, endpoint_id, secret) VALUES ($1, $2, $3) \
             ON CONFLICT (url) DO UPDATE SET endpoint_id = excluded.endpoint_id, secret = excluded.secret",
        )
        .bind(url)
        .bind(endpoint_id)
        .bind(secret)
        .execute(pool)
        .await
        .map(|_| ()))
    }
}
