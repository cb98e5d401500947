//! Payments: creating one with its first log line, reading and listing, the conditional status
//! change, and the approve claim. Status changes are asked as a domain event; the status written
//! is the one [`transition`] decides.

use super::events::InsertEvent;
use super::rows::{PAYMENT_COLUMNS, PaymentRow, convert, payment_values};
use super::sql::{Claim, push_claim, push_update};
use super::{Db, Store, StoreError, postgres, push_insert, read};
use crate::domain::{
    Detail, Event, EventId, EventType, Payment, PaymentChange, PaymentId, PaymentStatus, Timestamp,
    transition,
};

/// An event to write with a change.
#[derive(Debug)]
pub(super) struct Outbox {
    pub(super) id: EventId,
    pub(super) kind: EventType,
    /// The version `data` was rendered with (the row's, unless it moved meanwhile).
    pub(super) version: i64,
    /// `{"object": …}`; its `object.version` is set to the row's by the insert if it differs.
    pub(super) data: String,
}
use kakaopay::PgToken;
use sqlx::{QueryBuilder, SqliteConnection};

/// How a payment list is filtered.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// Only this status.
    pub status: Option<PaymentStatus>,
    /// Created at or after.
    pub from: Option<Timestamp>,
    /// Created before.
    pub to: Option<Timestamp>,
    /// Exact order id, TID or payment id.
    pub search: Option<String>,
    /// Continue after this (created_at, id).
    pub after: Option<(Timestamp, String)>,
    /// Page size.
    pub limit: u32,
}

/// A page of payments, newest first, and where the next one starts.
#[derive(Clone, Debug)]
pub struct Page {
    /// The payments.
    pub payments: Vec<Payment>,
    /// Pass as the next filter's `after`: (created_at, id) of the last row, if more follow.
    pub next: Option<(Timestamp, String)>,
}

impl Store {
    /// Inserts a new payment with its first log line (`created`).
    pub async fn insert_payment(&self, p: &Payment, detail: Detail) -> Result<(), StoreError> {
        match &self.db {
            Db::Postgres(pool) => postgres::insert_payment(pool, p, &detail).await,
            Db::Sqlite { writer, .. } => {
                let p = p.clone();
                writer
                    .write(move |conn| Box::pin(insert_sqlite(conn, p, detail)))
                    .await
            }
        }
    }

    /// A payment by id.
    pub async fn payment(&self, id: &PaymentId) -> Result<Option<Payment>, StoreError> {
        let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1");
        let row = read!(self, pool => sqlx::query_as::<_, PaymentRow>(&sql).bind(id.as_str()).fetch_optional(pool).await)?;
        row.map(Payment::try_from).transpose()
    }

    /// Applies `event` to payment `id` if it is still `from`: the status becomes what
    /// [`transition`] decides, with `change` and a log line of the event's cause and `detail`.
    /// `Ok(Some(to))` when it did, `Ok(None)` when the payment was no longer `from` (someone else
    /// changed it first); an event the machine refuses is an error and writes nothing.
    pub async fn transition(
        &self,
        p: &Payment,
        from: PaymentStatus,
        event: Event,
        change: &PaymentChange,
        detail: Detail,
        now: Timestamp,
    ) -> Result<Option<PaymentStatus>, StoreError> {
        let to = transition(from, event)?;
        // The event the change tells of, rendered from the payment as it will be; written by
        // the same statement (PostgreSQL) or transaction (SQLite), with the version the row
        // really got.
        let outbox = EventType::of_payment(event).map(|kind| {
            let after = p.applied(to, change, now);
            Outbox {
                id: EventId::generate(),
                kind,
                version: after.version,
                // A status change of the approval's kind happens before any refund.
                data: self.render.data(&after, &[]),
            }
        });
        let id = &p.id;
        let done = match &self.db {
            Db::Postgres(pool) => {
                postgres::transition(pool, id, from, to, event, change, &detail, now, outbox)
                    .await?
            }
            Db::Sqlite { writer, .. } => {
                let (id, change) = (id.clone(), change.clone());
                writer
                    .write(move |conn| {
                        Box::pin(async move {
                            let mut qb = QueryBuilder::new("");
                            push_update!(qb, id, from, to, &change, now);
                            let n = qb.build().execute(&mut *conn).await?.rows_affected();
                            if n == 1 {
                                conn.insert_event(&id, Some(from), to, event.into(), &detail, now)
                                    .await?;
                                if let Some(o) = outbox {
                                    // The rendered version is right unless the row moved
                                    // meanwhile; only then is the JSON rewritten.
                                    sqlx::query(
                                        "INSERT INTO events (id, type, object_id, object_version, data, created_at) \
                                         SELECT $1, $2, id, version, CASE WHEN version = $6 THEN $3 \
                                         ELSE json_set($3, '$.object.version', version) END, $4 FROM payments WHERE id = $5",
                                    )
                                    .bind(o.id.as_str())
                                    .bind(<&str>::from(o.kind))
                                    .bind(o.data)
                                    .bind(now.millis())
                                    .bind(id.as_str())
                                    .bind(o.version)
                                    .execute(&mut *conn)
                                    .await?;
                                }
                            }
                            Ok(n == 1)
                        })
                    })
                    .await?
            }
        };
        Ok(done.then_some(to))
    }

    /// Claims the approve of a payment that is `ready` and not expired at `now`: the status the
    /// machine gives `ApproveClaimed`, the pg_token and the time recorded, the claim logged.
    /// Returns the claimed payment, or `None` when someone else claimed it first, it is no longer
    /// ready, or its claim budget (`claims` per `window`) is spent: approve callbacks can be
    /// forged, and each claim is a KakaoPay call. One round trip on PostgreSQL.
    pub async fn claim_approve(
        &self,
        id: &PaymentId,
        pg_token: &PgToken,
        now: Timestamp,
        next_check_at: Timestamp,
        budget: (std::time::Duration, i64),
    ) -> Result<Option<Payment>, StoreError> {
        let claim = Claim {
            id: id.clone(),
            to: transition(PaymentStatus::Ready, Event::ApproveClaimed)?,
            pg_token: pg_token.expose().to_owned(),
            now,
            next_check_at,
            window_start: now.minus(budget.0),
            max_claims: budget.1,
        };
        let row = match &self.db {
            Db::Postgres(pool) => postgres::claim_approve(pool, &claim).await?,
            Db::Sqlite { writer, .. } => {
                writer
                    .write(move |conn| Box::pin(claim_sqlite(conn, claim)))
                    .await?
            }
        };
        row.map(Payment::try_from).transpose()
    }

    /// A page of payments, newest first.
    pub async fn page(&self, f: &ListFilter) -> Result<Page, StoreError> {
        macro_rules! build {
            ($qb:ident) => {{
                $qb.push(format!(
                    "SELECT {PAYMENT_COLUMNS} FROM payments WHERE amount_total > 0"
                ));
                // (A 0-won payment is a subscription's SID-only registration, not a sale.)
                if let Some(s) = f.status {
                    $qb.push(" AND status = ").push_bind(s.as_str());
                }
                if let Some(from) = f.from {
                    $qb.push(" AND created_at >= ").push_bind(from.millis());
                }
                if let Some(to) = f.to {
                    $qb.push(" AND created_at < ").push_bind(to.millis());
                }
                if let Some(q) = &f.search {
                    $qb.push(" AND (partner_order_id = ").push_bind(q.clone());
                    $qb.push(" OR tid = ").push_bind(q.clone());
                    $qb.push(" OR id = ").push_bind(q.clone());
                    $qb.push(")");
                }
                if let Some((at, id)) = &f.after {
                    $qb.push(" AND (created_at < ").push_bind(at.millis());
                    $qb.push(" OR (created_at = ").push_bind(at.millis());
                    $qb.push(" AND id < ").push_bind(id.clone());
                    $qb.push("))");
                }
                // One more than asked: whether another page follows.
                $qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
                    .push_bind(i64::from(f.limit) + 1);
            }};
        }
        let rows: Vec<PaymentRow> = match &self.db {
            Db::Sqlite { reader, .. } => {
                let mut qb = QueryBuilder::<sqlx::Sqlite>::new("");
                build!(qb);
                qb.build_query_as().fetch_all(reader).await?
            }
            Db::Postgres(pool) => {
                let mut qb = QueryBuilder::<sqlx::Postgres>::new("");
                build!(qb);
                qb.build_query_as().fetch_all(pool).await?
            }
        };
        let mut payments: Vec<Payment> = convert(rows)?;
        let limit = usize::try_from(f.limit).unwrap_or(usize::MAX);
        let next = if payments.len() > limit {
            payments.truncate(limit);
            payments.last().map(|p| (p.created_at, p.id.to_string()))
        } else {
            None
        };
        Ok(Page { payments, next })
    }

    /// Payments updated at or after `since`, newest first, at most `limit`.
    pub async fn updated_since(
        &self,
        since: Timestamp,
        limit: i64,
    ) -> Result<Vec<Payment>, StoreError> {
        let sql = format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE updated_at >= $1 ORDER BY updated_at DESC LIMIT $2"
        );
        let rows = read!(self, pool => sqlx::query_as::<_, PaymentRow>(&sql).bind(since.millis()).bind(limit).fetch_all(pool).await)?;
        convert(rows)
    }

    /// The payment created by the request with this Idempotency-Key.
    pub async fn payment_by_key(&self, key: &str) -> Result<Option<Payment>, StoreError> {
        let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE idempotency_key = $1");
        let row = read!(self, pool => sqlx::query_as::<_, PaymentRow>(&sql).bind(key).fetch_optional(pool).await)?;
        row.map(Payment::try_from).transpose()
    }

    /// The payment of a merchant order that can still be, or has been, paid (at most one: it
    /// holds the order's slot, a unique column).
    pub async fn live_payment_for_order(
        &self,
        partner_order_id: &str,
    ) -> Result<Option<Payment>, StoreError> {
        let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_slot = $1");
        let row = read!(self, pool => sqlx::query_as::<_, PaymentRow>(&sql).bind(partner_order_id).fetch_optional(pool).await)?;
        row.map(Payment::try_from).transpose()
    }
}

async fn insert_sqlite(
    conn: &mut SqliteConnection,
    p: Payment,
    detail: Detail,
) -> Result<(), sqlx::Error> {
    let mut qb = QueryBuilder::new("");
    push_insert!(qb, "payments", payment_values(&p));
    qb.build().execute(&mut *conn).await?;
    conn.insert_event(
        &p.id,
        None,
        p.status,
        crate::domain::Cause::Created,
        &detail,
        p.created_at,
    )
    .await
}

async fn claim_sqlite(
    conn: &mut SqliteConnection,
    c: Claim,
) -> Result<Option<PaymentRow>, sqlx::Error> {
    let mut qb = QueryBuilder::new("");
    push_claim!(qb, c);
    qb.push(format!(" RETURNING {PAYMENT_COLUMNS}"));
    let row: Option<PaymentRow> = qb.build_query_as().fetch_optional(&mut *conn).await?;
    if row.is_some() {
        conn.insert_event(
            &c.id,
            Some(PaymentStatus::Ready),
            c.to,
            Event::ApproveClaimed.into(),
            &Detail::none(),
            c.now,
        )
        .await?;
    }
    Ok(row)
}
