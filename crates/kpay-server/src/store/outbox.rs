//! Events: the transactional outbox. Each row is written by the statement or transaction of
//! the change it tells of (see `payments::transition`); this module reads them back as the
//! feed (`GET /api/v1/events`) in an order no later commit can slip behind.

use super::{Db, Store, StoreError, read};
use crate::domain::{EventId, EventType, Timestamp};
use sqlx::QueryBuilder;

/// One event as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// Its id (`evt_…`).
    pub id: EventId,
    /// What happened.
    pub kind: EventType,
    /// The object's id.
    pub object_id: String,
    /// The object's version right after the change.
    pub object_version: i64,
    /// `{"object": …}`, JSON.
    pub data: String,
    /// When it happened.
    pub created_at: Timestamp,
    /// Where a page after this one starts.
    pub cursor: String,
}

impl EventRecord {
    /// The event as the API shows it and webhooks deliver it:
    /// `{"id","type","created_at","data":{"object":…}}` (`data` is stored as JSON already).
    pub fn to_json(&self) -> String {
        let kind: &str = self.kind.into();
        format!(
            "{{\"id\":\"{}\",\"type\":\"{kind}\",\"created_at\":\"{}\",\"data\":{}}}",
            self.id,
            self.created_at.rfc3339(),
            self.data
        )
    }
}

/// A page of the feed, oldest first.
#[derive(Clone, Debug)]
pub struct EventPage {
    /// The events.
    pub events: Vec<EventRecord>,
    /// The last one's cursor, if there was one (pass it as `after` to continue).
    pub next: Option<String>,
}

/// Inside a write transaction on `$conn`: the events `$kinds` of payment `$payment_id`, each
/// with the payment as it is now in this transaction (and its refunds), rendered by `$render`.
/// An unreadable row fails the transaction: no change without its event.
macro_rules! write_payment_events {
    ($conn:expr, $render:expr, $payment_id:expr, $kinds:expr, $now:expr) => {{
        let sql = format!(
            "SELECT {} FROM payments WHERE id = $1",
            $crate::store::rows::PAYMENT_COLUMNS
        );
        let row: $crate::store::rows::PaymentRow = sqlx::query_as(&sql)
            .bind($payment_id.as_str())
            .fetch_one(&mut *$conn)
            .await?;
        let p = $crate::domain::Payment::try_from(row)
            .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        let sql = format!(
            "SELECT {} FROM refunds WHERE payment_id = $1 ORDER BY created_at, id",
            $crate::store::rows::REFUND_COLUMNS
        );
        let rows: Vec<$crate::store::rows::RefundRow> = sqlx::query_as(&sql)
            .bind($payment_id.as_str())
            .fetch_all(&mut *$conn)
            .await?;
        let refunds = rows
            .into_iter()
            .map($crate::domain::Refund::try_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        let data = $render.data(&p, &refunds);
        for kind in $kinds {
            $crate::store::outbox::insert_event_row!(
                $conn,
                kind,
                p.id.as_str(),
                p.version,
                data.clone(),
                $now
            )?;
        }
    }};
}
pub(crate) use write_payment_events;

/// Inserts one event row on `$conn` (either backend's connection, inside the change's
/// transaction).
macro_rules! insert_event_row {
    ($conn:expr, $kind:expr, $object_id:expr, $version:expr, $data:expr, $now:expr) => {
        sqlx::query(
            "INSERT INTO events (id, type, object_id, object_version, data, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind($crate::domain::EventId::generate().as_str().to_owned())
        .bind(<&str>::from($kind))
        .bind($object_id.to_owned())
        .bind($version)
        .bind($data)
        .bind($now.millis())
        .execute(&mut *$conn)
        .await
        .map(|_| ())
    };
}
pub(crate) use insert_event_row;

pub(super) type EventRow = (i64, i64, String, String, String, i64, String, i64);

pub(super) const SELECT_PG: &str = "SELECT tx::text::bigint, seq, id, type, object_id, object_version, data, created_at FROM events";
pub(super) const SELECT_SQLITE: &str =
    "SELECT 0, seq, id, type, object_id, object_version, data, created_at FROM events";

pub(super) fn record(r: EventRow) -> Result<EventRecord, StoreError> {
    let (tx, seq, id, kind, object_id, object_version, data, created_at) = r;
    let corrupt = |field| StoreError::Corrupt {
        table: "events",
        id: id.clone(),
        field,
    };
    Ok(EventRecord {
        kind: kind.parse().map_err(|_| corrupt("type"))?,
        created_at: Timestamp::from_millis(created_at).ok_or_else(|| corrupt("created_at"))?,
        id: EventId::parse(&id).map_err(|_| corrupt("id"))?,
        object_id,
        object_version,
        data,
        cursor: format!("{tx}_{seq}"),
    })
}

/// `(tx, seq)` from a cursor; `None` if it is not one.
pub fn parse_cursor(c: &str) -> Option<(i64, i64)> {
    let (tx, seq) = c.split_once('_')?;
    Some((tx.parse().ok()?, seq.parse().ok()?))
}

impl Store {
    /// Events after `after` (a cursor), oldest first, of `kind` if given. On PostgreSQL only
    /// transactions older than every running one are shown, ordered by transaction, so a
    /// reader never moves past an event that commits later.
    pub async fn events_page(
        &self,
        after: Option<(i64, i64)>,
        kind: Option<EventType>,
        limit: u32,
    ) -> Result<EventPage, StoreError> {
        let (tx, seq) = after.unwrap_or((0, 0));
        let rows: Vec<EventRow> = match &self.db {
            Db::Postgres(pool) => {
                let mut qb = QueryBuilder::new(SELECT_PG);
                qb.push(" WHERE tx < pg_snapshot_xmin(pg_current_snapshot()) AND (tx, seq) > (")
                    .push_bind(tx.to_string())
                    .push("::xid8, ")
                    .push_bind(seq)
                    .push(")");
                if let Some(k) = kind {
                    qb.push(" AND type = ").push_bind(<&str>::from(k));
                }
                qb.push(" ORDER BY tx, seq LIMIT ")
                    .push_bind(i64::from(limit));
                qb.build_query_as().fetch_all(pool).await?
            }
            Db::Sqlite { reader, .. } => {
                let mut qb = QueryBuilder::new(SELECT_SQLITE);
                qb.push(" WHERE seq > ").push_bind(seq);
                if let Some(k) = kind {
                    qb.push(" AND type = ").push_bind(<&str>::from(k));
                }
                qb.push(" ORDER BY seq LIMIT ").push_bind(i64::from(limit));
                qb.build_query_as().fetch_all(reader).await?
            }
        };
        let events = rows
            .into_iter()
            .map(record)
            .collect::<Result<Vec<_>, _>>()?;
        let next = events.last().map(|e| e.cursor.clone());
        Ok(EventPage { events, next })
    }

    /// One event.
    pub async fn event(&self, id: &EventId) -> Result<Option<EventRecord>, StoreError> {
        let select = match &self.db {
            Db::Postgres(_) => SELECT_PG,
            Db::Sqlite { .. } => SELECT_SQLITE,
        };
        let sql = format!("{select} WHERE id = $1");
        let row: Option<EventRow> =
            read!(self, pool => sqlx::query_as(&sql).bind(id.as_str()).fetch_optional(pool).await)?;
        row.map(record).transpose()
    }
}
