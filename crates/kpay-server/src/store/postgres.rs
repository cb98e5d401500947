//! PostgreSQL's forms of the hot-path writes: each one statement (`WITH … RETURNING` feeding the
//! log line's `INSERT`), so that a payment's create, claim and approval cost one round trip each
//! and no transaction. SQLite runs the same changes as two statements on its writer.

use super::payments::Outbox;
use super::rows::{PAYMENT_COLUMNS, PaymentRow, payment_values};
use super::sql::{Claim, push_claim, push_update};
use super::{StoreError, push_insert};
use crate::domain::{
    Cause, Detail, Event, Payment, PaymentChange, PaymentId, PaymentStatus, Timestamp,
};
use sqlx::{PgPool, Postgres, QueryBuilder};

/// `, (SELECT id …), from, to, cause, code, detail, at` — the log line's values after its payment id.
fn push_event_values(
    qb: &mut QueryBuilder<'_, Postgres>,
    from: Option<PaymentStatus>,
    to: PaymentStatus,
    cause: Cause,
    detail: &Detail,
    at: Timestamp,
) {
    qb.push(", ")
        .push_bind(from.map(PaymentStatus::as_str))
        .push(", ")
        .push_bind(to.as_str())
        .push(", ")
        .push_bind(cause.as_str())
        .push(", ")
        .push_bind(detail.kakaopay_code)
        .push(", ")
        .push_bind(detail.text.clone())
        .push(", ")
        .push_bind(at.millis());
}

const EVENT_INSERT: &str = "INSERT INTO payment_events (payment_id, from_status, to_status, cause, upstream_code, detail, at) SELECT id";

pub(super) async fn insert_payment(
    pool: &PgPool,
    p: &Payment,
    detail: &Detail,
) -> Result<(), StoreError> {
    let mut qb = QueryBuilder::<Postgres>::new("WITH p AS (");
    push_insert!(qb, "payments", payment_values(p));
    qb.push(format!(" RETURNING id) {EVENT_INSERT}"));
    push_event_values(
        &mut qb,
        None,
        p.status,
        Cause::Created,
        detail,
        p.created_at,
    );
    qb.push(" FROM p");
    qb.build().execute(pool).await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn transition(
    pool: &PgPool,
    id: &PaymentId,
    from: PaymentStatus,
    to: PaymentStatus,
    event: Event,
    change: &PaymentChange,
    detail: &Detail,
    now: Timestamp,
    outbox: Option<Outbox>,
) -> Result<bool, StoreError> {
    let mut qb = QueryBuilder::<Postgres>::new("WITH u AS (");
    push_update!(qb, id, from, to, change, now);
    match outbox {
        None => {
            qb.push(format!(" RETURNING id) {EVENT_INSERT}"));
            push_event_values(&mut qb, Some(from), to, event.into(), detail, now);
            qb.push(" FROM u");
        }
        Some(o) => {
            // One statement still: the log line and the event both from the updated row.
            qb.push(format!(" RETURNING id, version), pe AS ({EVENT_INSERT}"));
            push_event_values(&mut qb, Some(from), to, event.into(), detail, now);
            qb.push(" FROM u) INSERT INTO events (id, type, object_id, object_version, data, created_at) SELECT ")
                .push_bind(o.id.as_str().to_owned())
                .push(", ")
                .push_bind(<&str>::from(o.kind))
                .push(", u.id, u.version, CASE WHEN u.version = ")
                .push_bind(o.version)
                .push(" THEN ")
                .push_bind(o.data.clone())
                .push(" ELSE jsonb_set(")
                .push_bind(o.data)
                .push("::jsonb, '{object,version}', to_jsonb(u.version))::text END, ")
                .push_bind(now.millis())
                .push(" FROM u");
        }
    }
    Ok(qb.build().execute(pool).await?.rows_affected() == 1)
}

pub(super) async fn claim_approve(
    pool: &PgPool,
    c: &Claim,
) -> Result<Option<PaymentRow>, StoreError> {
    let mut qb = QueryBuilder::<Postgres>::new("WITH u AS (");
    push_claim!(qb, c);
    qb.push(format!(
        " RETURNING {PAYMENT_COLUMNS}), e AS ({EVENT_INSERT}"
    ));
    push_event_values(
        &mut qb,
        Some(PaymentStatus::Ready),
        c.to,
        Event::ApproveClaimed.into(),
        &Detail::none(),
        c.now,
    );
    qb.push(" FROM u) SELECT * FROM u");
    Ok(qb.build_query_as().fetch_optional(pool).await?)
}
