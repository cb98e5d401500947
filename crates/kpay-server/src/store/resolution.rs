//! What keeps calls toward KakaoPay bounded while a payment's outcome is being resolved: leases
//! (one resolver per payment across instances, renewed by the living), the back-off schedule of
//! lookups, the re-send claim, the budget of calls that browser callbacks may cause, and the event
//! notes that coalesce repeated identical outcomes.

use super::{Db, NewEvent, PAYMENT_COLUMNS, PaymentRecord, Store, StoreError};
use crate::domain::PaymentStatus;

impl Store {
    /// Leases up to `limit` payments whose check is due, for `lease_ms`, to `owner`. With several
    /// instances on PostgreSQL, `FOR UPDATE SKIP LOCKED` hands each row to one of them.
    pub async fn lease_due(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<PaymentRecord>, StoreError> {
        let pick = "SELECT id FROM payments WHERE next_check_at IS NOT NULL AND next_check_at <= $3 \
                    AND (lease_until IS NULL OR lease_until < $3) ORDER BY next_check_at LIMIT $4";
        let rows = match &self.db {
            Db::Postgres(pool) => {
                let sql = format!(
                    "UPDATE payments SET lease_owner = $1, lease_until = $2 WHERE id IN ({pick} FOR UPDATE SKIP LOCKED) \
                     AND (lease_until IS NULL OR lease_until < $3) RETURNING {PAYMENT_COLUMNS}"
                );
                sqlx::query_as::<_, PaymentRecord>(&sql)
                    .bind(owner)
                    .bind(now + lease_ms)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            }
            Db::Sqlite { writer, .. } => {
                let sql = format!(
                    "UPDATE payments SET lease_owner = $1, lease_until = $2 WHERE id IN ({pick}) \
                     AND (lease_until IS NULL OR lease_until < $3) RETURNING {PAYMENT_COLUMNS}"
                );
                sqlx::query_as::<_, PaymentRecord>(&sql)
                    .bind(owner)
                    .bind(now + lease_ms)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(writer)
                    .await?
            }
        };
        Ok(rows)
    }

    /// Gives a lease back.
    pub async fn release(&self, id: &str, owner: &str) -> Result<(), StoreError> {
        write_pool!(self, pool => sqlx::query(
            "UPDATE payments SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2",
        )
        .bind(id)
        .bind(owner)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Leases one payment to `owner` (a token of one acquisition, not of the process: two tasks
    /// of one instance must not both hold it) until `now + lease_ms`, if nobody holds it. `true`
    /// when `owner` holds it now.
    pub async fn lease_one(
        &self,
        id: &str,
        owner: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let n = write_pool!(self, pool => sqlx::query(
            "UPDATE payments SET lease_owner = $1, lease_until = $2 \
             WHERE id = $3 AND (lease_until IS NULL OR lease_until < $4)",
        )
        .bind(owner)
        .bind(now + lease_ms)
        .bind(id)
        .bind(now)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Extends `owner`'s lease of a payment; `false` when it is no longer `owner`'s.
    pub async fn renew_lease(&self, id: &str, owner: &str, until: i64) -> Result<bool, StoreError> {
        let n = write_pool!(self, pool => sqlx::query(
            "UPDATE payments SET lease_until = $1 WHERE id = $2 AND lease_owner = $3",
        )
        .bind(until)
        .bind(id)
        .bind(owner)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Pushes the next lookup of a still-unclear payment to `at` (or keeps a later one already
    /// scheduled) and counts the attempt. Does nothing to a payment that needs no more lookups.
    pub async fn back_off_check(&self, id: &str, at: i64) -> Result<(), StoreError> {
        write_pool!(self, pool => sqlx::query(
            "UPDATE payments SET check_attempts = check_attempts + 1, \
             next_check_at = CASE WHEN next_check_at > $1 THEN next_check_at ELSE $1 END \
             WHERE id = $2 AND next_check_at IS NOT NULL",
        )
        .bind(at)
        .bind(id)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Clears a check that is due on a payment whose outcome is settled (not `ready`, not
    /// `approving`, no refund in flight): a late `schedule_check` must not keep a finished payment
    /// due forever.
    pub async fn settle_check(&self, id: &str, now: i64) -> Result<(), StoreError> {
        write_pool!(self, pool => sqlx::query(
            "UPDATE payments SET next_check_at = NULL, check_attempts = 0 WHERE id = $1 AND next_check_at <= $2 \
             AND status NOT IN ('ready', 'approving') AND refund_in_flight IS NULL",
        )
        .bind(id)
        .bind(now)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Makes the next lookup of a payment due at `at` at the latest (an earlier one stays).
    pub async fn check_by(&self, id: &str, at: i64) -> Result<(), StoreError> {
        write_pool!(self, pool => sqlx::query(
            "UPDATE payments SET next_check_at = $1 WHERE id = $2 AND (next_check_at IS NULL OR next_check_at > $1)",
        )
        .bind(at)
        .bind(id)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Moves the start of an approve from `stamped` to `now` (see `Services::restamp_approve`).
    pub async fn restamp_approve(
        &self,
        id: &str,
        stamped: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = write_pool!(self, pool => sqlx::query(
            "UPDATE payments SET approve_started_at = $1 WHERE id = $2 AND status = 'approving' AND approve_started_at = $3",
        )
        .bind(now)
        .bind(id)
        .bind(stamped)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Moves a pending refund's stamp (its `updated_at`, from which its grace is judged) to `now`.
    pub async fn restamp_refund(&self, refund_id: &str, now: i64) -> Result<(), StoreError> {
        write_pool!(self, pool => sqlx::query(
            "UPDATE refunds SET updated_at = $1 WHERE id = $2 AND status = 'pending'",
        )
        .bind(now)
        .bind(refund_id)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Claims the re-send of an approve: only one caller (any instance) wins for the approve that
    /// started at `started`, and only while fewer than `max` re-sends were made. The re-send
    /// becomes the new start, so the grace period is judged from it.
    pub async fn claim_resend(
        &self,
        id: &str,
        started: i64,
        now: i64,
        max: i64,
    ) -> Result<bool, StoreError> {
        let n = write_pool!(self, pool => sqlx::query(
            "UPDATE payments SET approve_started_at = $1, resend_count = resend_count + 1 \
             WHERE id = $2 AND status = 'approving' AND COALESCE(approve_started_at, updated_at) = $3 \
             AND resend_count < $4",
        )
        .bind(now)
        .bind(id)
        .bind(started)
        .bind(max)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Takes one KakaoPay call from the budget of calls that browser callbacks may cause for a
    /// payment: at most `max` per `window_ms`. `false` when it is spent (the callback then shows
    /// what is known without calling KakaoPay).
    pub async fn take_callback_budget(
        &self,
        id: &str,
        now: i64,
        window_ms: i64,
        max: i64,
    ) -> Result<bool, StoreError> {
        let n = write_pool!(self, pool => sqlx::query(
            "UPDATE payments SET \
             callback_calls = CASE WHEN callback_window IS NULL OR callback_window <= $1 THEN 1 ELSE callback_calls + 1 END, \
             callback_window = CASE WHEN callback_window IS NULL OR callback_window <= $1 THEN $2 ELSE callback_window END \
             WHERE id = $3 AND (callback_window IS NULL OR callback_window <= $1 OR callback_calls < $4)",
        )
        .bind(now - window_ms)
        .bind(now)
        .bind(id)
        .bind(max)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Logs an event that does not change the status (a refund request, an unclear answer, a
    /// re-send), only while the payment still is `status`: a late answer about an older state
    /// (say, KakaoPay's "already approved" after a lookup recorded the approval) leaves no
    /// misleading line. The same outcome again right after itself becomes a count on that line.
    pub async fn note(
        &self,
        id: &str,
        status: PaymentStatus,
        event: &NewEvent,
        now: i64,
    ) -> Result<(), StoreError> {
        write_pool!(self, pool => {
            let repeated = sqlx::query(
                "UPDATE payment_events SET repeats = repeats + 1, last_at = $1, detail = $2 \
                 WHERE id = (SELECT MAX(id) FROM payment_events WHERE payment_id = $3) \
                 AND cause = $4 AND from_status = $5 AND to_status = $5 \
                 AND COALESCE(upstream_code, 0) = COALESCE($6, 0)",
            )
            .bind(now)
            .bind(&event.detail)
            .bind(id)
            .bind(&event.cause)
            .bind(status.as_str())
            .bind(event.upstream_code)
            .execute(pool)
            .await?
            .rows_affected();
            if repeated == 0 {
                sqlx::query(
                    "INSERT INTO payment_events (payment_id, from_status, to_status, cause, upstream_code, detail, at) \
                     SELECT id, status, status, $1, $2, $3, $4 FROM payments WHERE id = $5 AND status = $6",
                )
                .bind(&event.cause)
                .bind(event.upstream_code)
                .bind(&event.detail)
                .bind(now)
                .bind(id)
                .bind(status.as_str())
                .execute(pool)
                .await?;
            }
            Ok::<(), sqlx::Error>(())
        })?;
        Ok(())
    }
}
