//! Subscriptions and their charge attempts. Every write is one transaction that first locks the
//! subscription's row (PostgreSQL `FOR UPDATE`; SQLite has one writer), so the checks it makes —
//! the period still unpaid, no attempt open, the status — hold when it commits. Two unique
//! indexes back this up in the database itself: one success per (subscription, period) and one
//! open attempt per subscription.

use super::events::InsertEvent;
use super::outbox::insert_event_row;
use super::rows::{PAYMENT_COLUMNS, PaymentRow, convert, payment_values};
use super::subscription_rows::{
    CHARGE_COLUMNS, ChargeRow, SUBSCRIPTION_COLUMNS, SUBSCRIPTION_LOG_COLUMNS, SubscriptionLogRow,
    SubscriptionRow, charge_values, subscription_values,
};
use super::{Db, Store, StoreError, Value, push_insert, read, write_tx};
use crate::domain::{
    Cause, Charge, ChargeFailureKind, ChargeId, ChargeStatus, Detail, DunningSchedule, EventType,
    Payment, PaymentStatus, Subscription, SubscriptionCause, SubscriptionEvent, SubscriptionId,
    SubscriptionLogLine, SubscriptionStatus, Timestamp, subscription_transition,
};
use sqlx::QueryBuilder;

/// What a charge's claim checks: status, next_period, cancel_at_period_end, lease owner, lease end.
type ChargeableRow = (String, i64, i64, Option<String>, Option<i64>);

/// What [`Store::finish_charge`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finished {
    /// Recorded.
    Recorded,
    /// Recorded on a subscription canceled meanwhile (its schedule kept).
    RecordedCanceled,
    /// The attempt was no longer open: nothing written.
    NotOpen,
}

/// What [`Store::begin_charge`] did.
#[derive(Clone, Debug)]
pub enum Claim {
    /// Recorded (pending), with its attempt number: the call may be made.
    Claimed(Box<Charge>),
    /// Another attempt is open: resolve that one first.
    Open,
    /// The subscription is not in a state to be charged so (status, period, lease).
    Refused,
}

/// Fields a subscription write sets (`None`: unchanged; `Some(None)`: cleared).
#[derive(Clone, Debug, Default)]
pub struct SubChange {
    /// The sealed SID and its last 4.
    pub sid: Option<(String, String)>,
    /// Registered then.
    pub registered_at: Option<Timestamp>,
    /// Period 0 starts then.
    pub billing_anchor: Option<Timestamp>,
    /// Raised to at least this (never lowered: periods paid stay paid).
    pub next_period_at_least: Option<u32>,
    /// When the scheduler is due.
    pub next_charge_at: Option<Option<Timestamp>>,
    /// Dunning's start.
    pub dunning_started_at: Option<Option<Timestamp>>,
    /// Retries made.
    pub dunning_retries: Option<u32>,
    /// Ends at the period's end.
    pub cancel_at_period_end: Option<bool>,
    /// Canceled then, and why.
    pub canceled: Option<(Timestamp, String)>,
    /// KakaoPay confirmed the SID inactive then.
    pub inactivated_at: Option<Timestamp>,
    /// The last known charge: recorded then (this server's clock), made then (KakaoPay's).
    pub charged: Option<(Timestamp, Option<Timestamp>)>,
}

/// A subscription change: the event (status decided by [`subscription_transition`] from the
/// status found under the lock), the fields, and the log line.
#[derive(Clone, Debug)]
pub struct SubWrite {
    /// Whose.
    pub id: SubscriptionId,
    /// Only if the status still is one of these (`None`: any).
    pub expect: Option<Vec<SubscriptionStatus>>,
    /// The status event, if any.
    pub event: Option<SubscriptionEvent>,
    /// The fields.
    pub change: SubChange,
    /// The log line (a status event always writes one, with its own cause by default).
    pub log: Option<(SubscriptionCause, Detail)>,
}

impl SubWrite {
    /// A write to `id`.
    pub fn new(id: &SubscriptionId) -> Self {
        Self {
            id: id.clone(),
            expect: None,
            event: None,
            change: SubChange::default(),
            log: None,
        }
    }
}

/// How a charge attempt ended.
#[derive(Clone, Debug)]
pub struct ChargeEnd {
    /// Which.
    pub charge: ChargeId,
    /// Succeeded, failed or unknown.
    pub status: ChargeStatus,
    /// How a failure was classified.
    pub failure: Option<ChargeFailureKind>,
    /// KakaoPay's code.
    pub code: Option<i64>,
    /// For people.
    pub message: Option<String>,
    /// KakaoPay's time of the charge.
    pub kakaopay_approved_at: Option<Timestamp>,
    /// The payment a success created.
    pub payment: Option<Payment>,
    /// Lookups that could not decide it (for an unknown charge).
    pub check_attempts: Option<u32>,
    /// What it does to the subscription.
    pub sub: SubWrite,
}

/// How a subscription list is filtered.
#[derive(Clone, Debug, Default)]
pub struct SubscriptionFilter {
    /// Only this status.
    pub status: Option<SubscriptionStatus>,
    /// Exact subscription id or buyer.
    pub search: Option<String>,
    /// Continue after this (created_at, id).
    pub after: Option<(Timestamp, String)>,
    /// Page size.
    pub limit: u32,
}

/// A page of subscriptions, newest first.
#[derive(Clone, Debug)]
pub struct SubscriptionPage {
    /// The subscriptions.
    pub subscriptions: Vec<Subscription>,
    /// Where the next page starts.
    pub next: Option<(Timestamp, String)>,
}

/// Sets the fields of `c` on a `UPDATE subscriptions SET status = …` being built.
macro_rules! push_sub_change {
    ($qb:expr, $c:expr, $pg:expr) => {{
        let c: &SubChange = $c;
        if let Some((sealed, last4)) = &c.sid {
            $qb.push(", sid_sealed = ").push_bind(sealed.clone());
            $qb.push(", sid_last4 = ").push_bind(last4.clone());
        }
        if let Some(t) = c.registered_at {
            $qb.push(", registered_at = ").push_bind(t.millis());
        }
        if let Some(t) = c.billing_anchor {
            $qb.push(", billing_anchor = ").push_bind(t.millis());
        }
        if let Some(n) = c.next_period_at_least {
            $qb.push(if $pg {
                ", next_period = GREATEST(next_period, "
            } else {
                ", next_period = MAX(next_period, "
            })
            .push_bind(i64::from(n))
            .push(")");
        }
        if let Some(t) = c.next_charge_at {
            $qb.push(", next_charge_at = ")
                .push_bind(t.map(Timestamp::millis));
        }
        if let Some(t) = c.dunning_started_at {
            $qb.push(", dunning_started_at = ")
                .push_bind(t.map(Timestamp::millis));
        }
        if let Some(n) = c.dunning_retries {
            $qb.push(", dunning_retries = ").push_bind(i64::from(n));
        }
        if let Some(b) = c.cancel_at_period_end {
            $qb.push(", cancel_at_period_end = ")
                .push_bind(i64::from(b));
        }
        if let Some((at, why)) = &c.canceled {
            $qb.push(", canceled_at = COALESCE(canceled_at, ")
                .push_bind(at.millis())
                .push(")");
            $qb.push(", cancel_reason = COALESCE(cancel_reason, ")
                .push_bind(why.clone())
                .push(")");
        }
        if let Some(t) = c.inactivated_at {
            $qb.push(", inactivated_at = COALESCE(inactivated_at, ")
                .push_bind(t.millis())
                .push(")");
        }
        if let Some((ours, theirs)) = c.charged {
            $qb.push(", last_charged_at = ").push_bind(ours.millis());
            if let Some(t) = theirs {
                $qb.push(", last_kakaopay_approved_at = ")
                    .push_bind(t.millis());
            }
        }
    }};
}

/// Applies `w` on `$conn` inside its transaction: locks the row, decides the status, writes the
/// fields and the log line. Evaluates to `Ok(Some((from, to)))`, or `Ok(None)` when the status
/// is not one `w` expects (nothing written). With `status = …`, the caller already locked the
/// row and read its status (one statement fewer on a hot path).
macro_rules! apply_sub_write {
    ($conn:expr, $w:expr, $now:expr, $pg:expr, $render:expr) => {{
        let w: &SubWrite = $w;
        let lock = if $pg { " FOR UPDATE" } else { "" };
        let found: Option<String> = sqlx::query_scalar(&format!(
            "SELECT status FROM subscriptions WHERE id = $1{lock}"
        ))
        .bind(w.id.as_str())
        .fetch_optional(&mut *$conn)
        .await?;
        apply_sub_write!($conn, w, $now, $pg, $render, status = found)
    }};
    ($conn:expr, $w:expr, $now:expr, $pg:expr, $render:expr, status = $found:expr) => {{
        let w: &SubWrite = $w;
        let now: Timestamp = $now;
        let found: Option<String> = $found;
        let from = found.and_then(|s| s.parse::<SubscriptionStatus>().ok());
        match from {
            Some(from) if w.expect.as_ref().is_none_or(|e| e.contains(&from)) => {
                // The machine decides; an event it refuses in this status changes no status
                // (the fields, such as a charge's bookkeeping, are still written).
                let taken = w
                    .event
                    .filter(|e| subscription_transition(from, *e).is_ok());
                let to = taken
                    .and_then(|e| subscription_transition(from, e).ok())
                    .unwrap_or(from);
                let mut qb = QueryBuilder::new("UPDATE subscriptions SET status = ");
                qb.push_bind(<&str>::from(to))
                    .push(", version = version + 1, updated_at = ")
                    .push_bind(now.millis());
                push_sub_change!(qb, &w.change, $pg);
                qb.push(" WHERE id = ").push_bind(w.id.as_str().to_owned());
                // The events it tells of, with the subscription as the update left it (read
                // back by the update itself): an outbox, no change without its event.
                let kinds = crate::domain::subscription_events(from, to, taken);
                let after: Option<Subscription> = if kinds.is_empty() {
                    qb.build().execute(&mut *$conn).await?;
                    None
                } else {
                    qb.push(format!(" RETURNING {SUBSCRIPTION_COLUMNS}"));
                    let row: SubscriptionRow = qb.build_query_as().fetch_one(&mut *$conn).await?;
                    Some(
                        Subscription::try_from(row)
                            .map_err(|e| sqlx::Error::Protocol(e.to_string()))?,
                    )
                };
                let cause = match (&w.log, w.event) {
                    (Some((cause, _)), _) => Some(*cause),
                    (None, Some(e)) if to != from => Some(SubscriptionCause::from(e)),
                    _ => None,
                };
                if let Some(cause) = cause {
                    let detail = w.log.as_ref().map(|(_, d)| d.clone()).unwrap_or_default();
                    insert_sub_event(&mut *$conn, &w.id, Some(from), to, cause, &detail, now)
                        .await?;
                }
                if let Some(sub) = after {
                    let data = $render.subscription_data(&sub);
                    for kind in kinds {
                        insert_event_row!(
                            $conn,
                            kind,
                            sub.id.as_str(),
                            sub.version,
                            data.clone(),
                            now
                        )?;
                    }
                }
                Ok::<_, sqlx::Error>(Some((from, to)))
            }
            _ => Ok(None),
        }
    }};
}

macro_rules! impl_sub_event {
    ($name:ident, $conn:ty) => {
        async fn $name(
            conn: &mut $conn,
            id: &SubscriptionId,
            from: Option<SubscriptionStatus>,
            to: SubscriptionStatus,
            cause: SubscriptionCause,
            detail: &Detail,
            at: Timestamp,
        ) -> Result<(), sqlx::Error> {
            sqlx::query(
                "INSERT INTO subscription_events (subscription_id, from_status, to_status, cause, upstream_code, detail, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id.as_str())
            .bind(from.map(<&str>::from))
            .bind(<&str>::from(to))
            .bind(<&str>::from(cause))
            .bind(detail.kakaopay_code)
            .bind(detail.text.as_deref())
            .bind(at.millis())
            .execute(&mut *conn)
            .await
            .map(|_| ())
        }
    };
}

/// Both connection types under one name inside the write macros.
trait SubEvent {
    fn sub_event<'a>(
        &'a mut self,
        id: &'a SubscriptionId,
        from: Option<SubscriptionStatus>,
        to: SubscriptionStatus,
        cause: SubscriptionCause,
        detail: &'a Detail,
        at: Timestamp,
    ) -> impl std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'a;
}
impl_sub_event!(sub_event_sqlite, sqlx::SqliteConnection);
impl_sub_event!(sub_event_pg, sqlx::PgConnection);
impl SubEvent for sqlx::SqliteConnection {
    fn sub_event<'a>(
        &'a mut self,
        id: &'a SubscriptionId,
        from: Option<SubscriptionStatus>,
        to: SubscriptionStatus,
        cause: SubscriptionCause,
        detail: &'a Detail,
        at: Timestamp,
    ) -> impl std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'a {
        sub_event_sqlite(self, id, from, to, cause, detail, at)
    }
}
impl SubEvent for sqlx::PgConnection {
    fn sub_event<'a>(
        &'a mut self,
        id: &'a SubscriptionId,
        from: Option<SubscriptionStatus>,
        to: SubscriptionStatus,
        cause: SubscriptionCause,
        detail: &'a Detail,
        at: Timestamp,
    ) -> impl std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'a {
        sub_event_pg(self, id, from, to, cause, detail, at)
    }
}
async fn insert_sub_event<C: SubEvent + ?Sized>(
    conn: &mut C,
    id: &SubscriptionId,
    from: Option<SubscriptionStatus>,
    to: SubscriptionStatus,
    cause: SubscriptionCause,
    detail: &Detail,
    at: Timestamp,
) -> Result<(), sqlx::Error> {
    conn.sub_event(id, from, to, cause, detail, at).await
}

impl Store {
    fn is_pg(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }

    /// Stores a new subscription with its registration payment, both with their first log line.
    pub async fn insert_subscription(
        &self,
        payment: &Payment,
        sub: &Subscription,
        detail: Detail,
    ) -> Result<(), StoreError> {
        let (payment, sub) = (payment.clone(), sub.clone());
        write_tx!(self, |conn| {
            let mut qb = QueryBuilder::new("");
            push_insert!(qb, "payments", payment_values(&payment));
            qb.build().execute(&mut *conn).await?;
            conn.insert_event(
                &payment.id,
                None,
                payment.status,
                Cause::Created,
                &detail,
                payment.created_at,
            )
            .await?;
            let mut qb = QueryBuilder::new("");
            push_insert!(qb, "subscriptions", subscription_values(&sub));
            qb.build().execute(&mut *conn).await?;
            insert_sub_event(
                &mut *conn,
                &sub.id,
                None,
                sub.status,
                SubscriptionCause::Created,
                &detail,
                sub.created_at,
            )
            .await
        })
    }

    /// A subscription by id.
    pub async fn subscription(
        &self,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>, StoreError> {
        self.subscription_where("id", id.as_str()).await
    }

    /// The subscription created under an Idempotency-Key.
    pub async fn subscription_by_key(&self, key: &str) -> Result<Option<Subscription>, StoreError> {
        self.subscription_where("idempotency_key", key).await
    }

    async fn subscription_where(
        &self,
        column: &'static str,
        value: &str,
    ) -> Result<Option<Subscription>, StoreError> {
        let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE {column} = $1");
        let row = read!(self, pool => sqlx::query_as::<_, SubscriptionRow>(&sql).bind(value).fetch_optional(pool).await)?;
        row.map(Subscription::try_from).transpose()
    }

    /// A page of subscriptions, newest first.
    pub async fn subscriptions_page(
        &self,
        f: &SubscriptionFilter,
    ) -> Result<SubscriptionPage, StoreError> {
        let limit = f.limit.clamp(1, 200);
        let f = f.clone();
        let rows: Vec<SubscriptionRow> = read!(self, pool => {
            let mut qb = QueryBuilder::new(format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE 1 = 1"));
            if let Some(s) = f.status {
                qb.push(" AND status = ").push_bind(<&str>::from(s));
            }
            if let Some(q) = &f.search {
                qb.push(" AND (id = ").push_bind(q.clone()).push(" OR partner_user_id = ").push_bind(q.clone()).push(")");
            }
            if let Some((at, id)) = &f.after {
                qb.push(" AND (created_at < ").push_bind(at.millis())
                    .push(" OR (created_at = ").push_bind(at.millis())
                    .push(" AND id < ").push_bind(id.clone()).push("))");
            }
            qb.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(i64::from(limit) + 1);
            qb.build_query_as::<SubscriptionRow>().fetch_all(pool).await
        })?;
        let mut subscriptions: Vec<Subscription> = convert(rows)?;
        let next = if subscriptions.len() > limit as usize {
            subscriptions.truncate(limit as usize);
            subscriptions
                .last()
                .map(|s| (s.created_at, s.id.to_string()))
        } else {
            None
        };
        Ok(SubscriptionPage {
            subscriptions,
            next,
        })
    }

    /// Every charge attempt of a subscription, oldest first.
    pub async fn charges(&self, id: &SubscriptionId) -> Result<Vec<Charge>, StoreError> {
        let sql = format!(
            "SELECT {CHARGE_COLUMNS} FROM subscription_charges WHERE subscription_id = $1 ORDER BY attempted_at, id"
        );
        let rows = read!(self, pool => sqlx::query_as::<_, ChargeRow>(&sql).bind(id.as_str()).fetch_all(pool).await)?;
        convert(rows)
    }

    /// A charge by id.
    pub async fn charge(&self, id: &ChargeId) -> Result<Option<Charge>, StoreError> {
        self.charge_where("id", id.as_str()).await
    }

    /// The extra charge made under an Idempotency-Key.
    pub async fn charge_by_key(&self, key: &str) -> Result<Option<Charge>, StoreError> {
        self.charge_where("idempotency_key", key).await
    }

    async fn charge_where(
        &self,
        column: &'static str,
        value: &str,
    ) -> Result<Option<Charge>, StoreError> {
        let sql = format!("SELECT {CHARGE_COLUMNS} FROM subscription_charges WHERE {column} = $1");
        let row = read!(self, pool => sqlx::query_as::<_, ChargeRow>(&sql).bind(value).fetch_optional(pool).await)?;
        row.map(Charge::try_from).transpose()
    }

    /// The subscription's open (pending or unknown) attempt, if any.
    pub async fn open_charge(&self, id: &SubscriptionId) -> Result<Option<Charge>, StoreError> {
        let sql = format!(
            "SELECT {CHARGE_COLUMNS} FROM subscription_charges WHERE subscription_id = $1 AND status IN ('pending', 'unknown')"
        );
        let row = read!(self, pool => sqlx::query_as::<_, ChargeRow>(&sql).bind(id.as_str()).fetch_optional(pool).await)?;
        row.map(Charge::try_from).transpose()
    }

    /// Every open charge attempt (the operator's list), oldest first.
    pub async fn open_charges(&self, limit: u32) -> Result<Vec<Charge>, StoreError> {
        let sql = format!(
            "SELECT {CHARGE_COLUMNS} FROM subscription_charges WHERE status IN ('pending', 'unknown') ORDER BY attempted_at LIMIT $1"
        );
        let rows = read!(self, pool => sqlx::query_as::<_, ChargeRow>(&sql).bind(i64::from(limit)).fetch_all(pool).await)?;
        convert(rows)
    }

    /// A subscription's log, oldest first.
    pub async fn subscription_log(
        &self,
        id: &SubscriptionId,
    ) -> Result<Vec<SubscriptionLogLine>, StoreError> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_LOG_COLUMNS} FROM subscription_events WHERE subscription_id = $1 ORDER BY id"
        );
        let rows = read!(self, pool => sqlx::query_as::<_, SubscriptionLogRow>(&sql).bind(id.as_str()).fetch_all(pool).await)?;
        convert(rows)
    }

    /// The payments of a subscription (registration and charges), oldest first.
    pub async fn subscription_payments(
        &self,
        id: &SubscriptionId,
    ) -> Result<Vec<Payment>, StoreError> {
        let sql = format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE subscription_id = $1 ORDER BY created_at, id"
        );
        let rows = read!(self, pool => sqlx::query_as::<_, PaymentRow>(&sql).bind(id.as_str()).fetch_all(pool).await)?;
        convert(rows)
    }

    /// Applies a subscription write. `Ok(Some((from, to)))` when applied.
    pub async fn change_subscription(
        &self,
        w: &SubWrite,
        now: Timestamp,
    ) -> Result<Option<(SubscriptionStatus, SubscriptionStatus)>, StoreError> {
        let pg = self.is_pg();
        let w = w.clone();
        let render = self.render.clone();
        write_tx!(self, |conn| apply_sub_write!(conn, &w, now, pg, render))
    }

    /// How many subscriptions are due at `now`.
    pub async fn subscriptions_due(&self, now: Timestamp) -> Result<i64, StoreError> {
        let n: i64 = read!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM subscriptions WHERE next_charge_at <= $1")
            .bind(now.millis()).fetch_one(pool).await)?;
        Ok(n)
    }

    /// Incomplete subscriptions whose registration payment left `ready`/`approving` (paid, or
    /// ended unpaid): what the registration sweep settles.
    pub async fn registrations_to_settle(
        &self,
        limit: u32,
    ) -> Result<Vec<(Subscription, Payment)>, StoreError> {
        let pay_cols: String = PAYMENT_COLUMNS
            .split(", ")
            .map(|c| format!("p.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {pay_cols} FROM subscriptions s JOIN payments p ON p.id = s.registration_payment_id \
             WHERE s.status = 'incomplete' AND p.status NOT IN ('ready', 'approving') LIMIT $1"
        );
        let rows = read!(self, pool => sqlx::query_as::<_, PaymentRow>(&sql).bind(i64::from(limit)).fetch_all(pool).await)?;
        let mut out = Vec::new();
        for p in convert::<_, Payment>(rows)? {
            if let Some(sid) = &p.subscription_id
                && let Some(s) = self.subscription(sid).await?
            {
                out.push((s, p));
            }
        }
        Ok(out)
    }

    /// Applies a subscription write and, if it applied, records `charge` (the registration's
    /// paid first period) in the same transaction.
    pub async fn change_subscription_with_charge(
        &self,
        w: &SubWrite,
        charge: Option<&Charge>,
        now: Timestamp,
    ) -> Result<Option<(SubscriptionStatus, SubscriptionStatus)>, StoreError> {
        let pg = self.is_pg();
        let (w, charge) = (w.clone(), charge.cloned());
        let render = self.render.clone();
        write_tx!(self, |conn| {
            let applied = apply_sub_write!(conn, &w, now, pg, render)?;
            if applied.is_some()
                && let Some(ch) = &charge
            {
                let mut qb = QueryBuilder::new("");
                push_insert!(qb, "subscription_charges", charge_values(ch));
                qb.build().execute(&mut *conn).await?;
            }
            Ok(applied)
        })
    }

    /// Gives a lease back.
    pub async fn release_subscription(
        &self,
        id: &SubscriptionId,
        owner: &str,
    ) -> Result<(), StoreError> {
        let (id, owner) = (id.to_string(), owner.to_owned());
        write_tx!(self, |conn| {
            sqlx::query("UPDATE subscriptions SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2")
                .bind(id.as_str())
                .bind(owner.as_str())
                .execute(&mut *conn)
                .await
                .map(|_| ())
        })
    }

    /// Subscriptions by status (metrics).
    pub async fn subscription_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows: Vec<(String, i64)> = read!(self, pool => sqlx::query_as("SELECT status, COUNT(*) FROM subscriptions GROUP BY status").fetch_all(pool).await)?;
        Ok(rows)
    }

    /// Open (pending or unknown) charge attempts.
    pub async fn open_charge_count(&self) -> Result<i64, StoreError> {
        let n: i64 = read!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM subscription_charges WHERE status IN ('pending', 'unknown')").fetch_one(pool).await)?;
        Ok(n)
    }
}

mod charges;
