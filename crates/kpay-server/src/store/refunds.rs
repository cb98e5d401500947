//! Refunds: reserving the payment's one refund slot and recording the refund pending, ending it
//! (succeeded: the payment's refunded amounts and status move; failed: nothing moves), and
//! recording a refund found at KakaoPay that this ledger did not know of. The payment's next
//! status is [`refund_event`]'s and [`transition`]'s decision, never computed here.

use super::events::InsertEvent;
use super::outbox::write_payment_events;
use super::push_insert;
use super::rows::{REFUND_COLUMNS, RefundRow, convert, refund_values};
use super::{Store, StoreError, read, write, write_tx};
use crate::domain::{
    Amounts, Cause, Detail, EventType, Failure, PaymentId, PaymentStatus, Refund, RefundAid,
    RefundId, RefundStatus, Timestamp, refund_event, transition,
};
use kakaopay::Amount;
use sqlx::QueryBuilder;

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

/// How a pending refund ended.
#[derive(Clone, Debug)]
pub enum RefundEnd {
    /// KakaoPay refunded it.
    Succeeded {
        /// KakaoPay's AID of the cancel, if known.
        aid: RefundAid,
        /// What the payment was paid.
        paid: Amounts,
        /// The payment's refunded amounts after it.
        refunded: Amounts,
        /// Whether it was asked as "everything that is left".
        asked_for_all: bool,
    },
    /// Refused, or never applied: nothing was refunded.
    Failed {
        /// Why.
        failure: Failure,
        /// Nothing happened and the request may be retried with its Idempotency-Key: the refund
        /// gives the key up, so that the retry makes a new attempt.
        release_key: bool,
    },
}

impl Store {
    /// Reserves the payment's refund slot for `refund` and records it as pending, if the payment
    /// is still `expected_status` with `expected_refunded` refunded and no other refund in flight.
    pub async fn begin_refund(
        &self,
        refund: &Refund,
        expected_status: PaymentStatus,
        expected_refunded: Amount,
        detail: Detail,
        check_at: Timestamp,
    ) -> Result<BeginRefund, StoreError> {
        let refund = refund.clone();
        write_tx!(self, |conn| {
            let n = sqlx::query(
                "UPDATE payments SET refund_in_flight = $1, updated_at = $2, next_check_at = $3, version = version + 1 \
                 WHERE id = $4 AND status = $5 AND refund_in_flight IS NULL AND canceled_total = $6",
            )
            .bind(refund.id.as_str())
            .bind(refund.created_at.millis())
            .bind(check_at.millis())
            .bind(refund.payment_id.as_str())
            .bind(expected_status.as_str())
            .bind(expected_refunded.won())
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if n == 0 {
                let in_flight: Option<(Option<String>,)> =
                    sqlx::query_as("SELECT refund_in_flight FROM payments WHERE id = $1")
                        .bind(refund.payment_id.as_str())
                        .fetch_optional(&mut *conn)
                        .await?;
                return Ok(match in_flight {
                    Some((Some(_),)) => BeginRefund::InFlight,
                    _ => BeginRefund::Changed,
                });
            }
            let mut qb = QueryBuilder::new("");
            push_insert!(qb, "refunds", refund_values(&refund));
            qb.build().execute(&mut *conn).await?;
            conn.insert_event(
                &refund.payment_id,
                Some(expected_status),
                expected_status,
                Cause::RefundRequested,
                &detail,
                refund.created_at,
            )
            .await?;
            Ok(BeginRefund::Started)
        })
    }

    /// Records a pending refund as ended and frees the payment's refund slot. Succeeded: the
    /// payment's refunded amounts become `refunded` and its status what the machine decides
    /// (logged with the machine's event); failed: the payment stays `from` (logged as
    /// `refund_failed`). `Ok(false)` when the refund was no longer pending.
    pub async fn finish_refund(
        &self,
        payment_id: &PaymentId,
        refund_id: &RefundId,
        end: RefundEnd,
        from: PaymentStatus,
        detail: Detail,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        // What the merchant hears of: the refund's outcome, and the payment's new status (the
        // machine's event decides which, as for every payment change).
        let (to, cause, refunded, kinds) = match &end {
            RefundEnd::Succeeded {
                paid,
                refunded,
                asked_for_all,
                ..
            } => {
                let event = refund_event(paid, refunded, *asked_for_all);
                let mut kinds = vec![EventType::RefundSucceeded];
                kinds.extend(EventType::of_payment(event));
                (
                    transition(from, event)?,
                    Cause::from(event),
                    Some(*refunded),
                    kinds,
                )
            }
            RefundEnd::Failed { .. } => (
                from,
                Cause::RefundFailed,
                None,
                vec![EventType::RefundFailed],
            ),
        };
        let (payment_id, refund_id) = (payment_id.clone(), refund_id.clone());
        let render = self.render.clone();
        write_tx!(self, |conn| {
            let n = match &end {
                RefundEnd::Succeeded { aid, .. } => sqlx::query(
                    "UPDATE refunds SET status = $1, aid = $2, updated_at = $3 WHERE id = $4 AND status = $5",
                )
                .bind(RefundStatus::Succeeded.as_str())
                .bind(aid.text(&refund_id))
                .bind(now.millis())
                .bind(refund_id.as_str())
                .bind(RefundStatus::Pending.as_str())
                .execute(&mut *conn)
                .await?
                .rows_affected(),
                RefundEnd::Failed { failure, release_key } => sqlx::query(
                    "UPDATE refunds SET status = $6, failure_code = $1, failure_message = $2, updated_at = $3, \
                     idempotency_key = CASE WHEN $5 THEN NULL ELSE idempotency_key END \
                     WHERE id = $4 AND status = $7",
                )
                .bind(failure.code.to_string())
                .bind(failure.message.as_deref())
                .bind(now.millis())
                .bind(refund_id.as_str())
                .bind(*release_key)
                .bind(RefundStatus::Failed.as_str())
                .bind(RefundStatus::Pending.as_str())
                .execute(&mut *conn)
                .await?
                .rows_affected(),
            };
            if n == 0 {
                return Ok(false);
            }
            sqlx::query(
                "UPDATE payments SET status = $1, updated_at = $2, refund_in_flight = NULL, version = version + 1, \
                 canceled_total = COALESCE($3, canceled_total), canceled_tax_free = COALESCE($4, canceled_tax_free), \
                 canceled_vat = COALESCE($5, canceled_vat), canceled_green_deposit = COALESCE($6, canceled_green_deposit), \
                 canceled_at = COALESCE($7, canceled_at), next_check_at = NULL \
                 WHERE id = $8 AND refund_in_flight = $9",
            )
            .bind(to.as_str())
            .bind(now.millis())
            .bind(refunded.map(|a| a.total.won()))
            .bind(refunded.map(|a| a.tax_free.won()))
            .bind(refunded.map(|a| a.vat.won()))
            .bind(refunded.map(|a| a.green_deposit.won()))
            .bind(refunded.map(|_| now.millis()))
            .bind(payment_id.as_str())
            .bind(refund_id.as_str())
            .execute(&mut *conn)
            .await?;
            conn.insert_event(&payment_id, Some(from), to, cause, &detail, now)
                .await?;
            write_payment_events!(conn, render, payment_id, kinds, now);
            Ok(true)
        })
    }

    /// Records a refund KakaoPay made that this ledger did not know of (found by reconciliation):
    /// the payment's refunded amounts become `refunded`, its status what the machine decides. Only
    /// if the payment still has `known_refunded` refunded and is `from`: a refund recorded
    /// meanwhile (the lookup may be older than it) must not be recorded a second time.
    pub async fn record_external_refund(
        &self,
        refund: &Refund,
        from: PaymentStatus,
        paid: Amounts,
        refunded: Amounts,
        known_refunded: Amount,
        detail: Detail,
    ) -> Result<bool, StoreError> {
        let event = refund_event(&paid, &refunded, false);
        let to = transition(from, event)?;
        let refund = refund.clone();
        let mut kinds = vec![EventType::RefundSucceeded];
        kinds.extend(EventType::of_payment(event));
        let render = self.render.clone();
        write_tx!(self, |conn| {
            let at = refund.created_at.millis();
            let n = sqlx::query(
                "UPDATE payments SET status = $1, updated_at = $2, version = version + 1, canceled_total = $3, canceled_tax_free = $4, \
                 canceled_vat = $5, canceled_green_deposit = $6, canceled_at = $7 WHERE id = $8 AND status = $9 \
                 AND refund_in_flight IS NULL AND canceled_total = $10",
            )
            .bind(to.as_str())
            .bind(at)
            .bind(refunded.total.won())
            .bind(refunded.tax_free.won())
            .bind(refunded.vat.won())
            .bind(refunded.green_deposit.won())
            .bind(at)
            .bind(refund.payment_id.as_str())
            .bind(from.as_str())
            .bind(known_refunded.won())
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if n == 0 {
                return Ok(false);
            }
            let mut qb = QueryBuilder::new("");
            push_insert!(qb, "refunds", refund_values(&refund));
            qb.build().execute(&mut *conn).await?;
            conn.insert_event(
                &refund.payment_id,
                Some(from),
                to,
                Cause::RefundReconciled,
                &detail,
                refund.created_at,
            )
            .await?;
            let now = refund.created_at;
            write_payment_events!(conn, render, refund.payment_id, kinds, now);
            Ok(true)
        })
    }

    /// Every refund of a payment, oldest first.
    pub async fn refunds(&self, payment_id: &PaymentId) -> Result<Vec<Refund>, StoreError> {
        let sql = format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE payment_id = $1 ORDER BY created_at, id"
        );
        let rows = read!(self, pool => sqlx::query_as::<_, RefundRow>(&sql).bind(payment_id.as_str()).fetch_all(pool).await)?;
        convert(rows)
    }

    /// The refund created by the request with this Idempotency-Key.
    pub async fn refund_by_key(&self, key: &str) -> Result<Option<Refund>, StoreError> {
        let sql = format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE idempotency_key = $1");
        let row = read!(self, pool => sqlx::query_as::<_, RefundRow>(&sql).bind(key).fetch_optional(pool).await)?;
        row.map(Refund::try_from).transpose()
    }

    /// Moves a pending refund's stamp (its `updated_at`, from which its grace is judged) to `now`.
    pub async fn restamp_refund(
        &self,
        refund_id: &RefundId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let refund_id = refund_id.clone();
        write!(self, |conn| {
            sqlx::query("UPDATE refunds SET updated_at = $1 WHERE id = $2 AND status = $3")
                .bind(now.millis())
                .bind(refund_id.as_str())
                .bind(RefundStatus::Pending.as_str())
                .execute(&mut *conn)
                .await
                .map(|_| ())
        })
    }
}
