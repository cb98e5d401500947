//! What keeps calls toward KakaoPay bounded while a payment's outcome is being resolved: leases
//! (one resolver per payment across instances, renewed by the living), the lookup schedule and its
//! back-off, the re-send claim, and the budget of calls that browser callbacks may cause.

use super::rows::{PAYMENT_COLUMNS, PaymentRow};
use super::{Db, Store, StoreError, write};
use crate::domain::{Payment, PaymentId, PaymentStatus, Timestamp};
use std::time::Duration;

/// When a payment whose row cannot be read is looked at again.
const CORRUPT_RETRY: Duration = Duration::from_secs(3600);

impl Store {
    /// Leases up to `limit` payments whose check is due, for `lease`, to `owner`. With several
    /// instances on PostgreSQL, `FOR UPDATE SKIP LOCKED` hands each row to one of them.
    pub async fn lease_due(
        &self,
        owner: &str,
        now: Timestamp,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<Payment>, StoreError> {
        let pick = "SELECT id FROM payments WHERE next_check_at IS NOT NULL AND next_check_at <= $3 \
                    AND (lease_until IS NULL OR lease_until < $3) ORDER BY next_check_at LIMIT $4";
        let lock = match self.db {
            Db::Postgres(_) => " FOR UPDATE SKIP LOCKED",
            // SQLite's one writer already runs this alone.
            Db::Sqlite { .. } => "",
        };
        let sql = format!(
            "UPDATE payments SET lease_owner = $1, lease_until = $2 WHERE id IN ({pick}{lock}) \
             AND (lease_until IS NULL OR lease_until < $3) RETURNING {PAYMENT_COLUMNS}"
        );
        let until = now.plus(lease).millis();
        let rows: Vec<PaymentRow> = write!(self, [owner, sql], |conn| {
            sqlx::query_as(&sql)
                .bind(&owner)
                .bind(until)
                .bind(now.millis())
                .bind(limit)
                .fetch_all(&mut *conn)
                .await
        })?;
        // One broken row must not stop the reconciler for every other payment: it is logged
        // (by its conversion), given back and set aside for an hour, and the others go on.
        let mut due = Vec::with_capacity(rows.len());
        for row in rows {
            let id = row.id().to_owned();
            match Payment::try_from(row) {
                Ok(p) => due.push(p),
                Err(e) => {
                    tracing::error!(payment = %id, error = %e, "a due payment cannot be read; set aside for an hour");
                    self.set_aside(&id, now.plus(CORRUPT_RETRY)).await?;
                }
            }
        }
        Ok(due)
    }

    /// Frees a payment that cannot be read and makes it due again at `at`.
    async fn set_aside(&self, id: &str, at: Timestamp) -> Result<(), StoreError> {
        write!(self, [id], |conn| {
            sqlx::query(
                "UPDATE payments SET lease_owner = NULL, lease_until = NULL, next_check_at = $1 WHERE id = $2",
            )
            .bind(at.millis())
            .bind(&id)
            .execute(&mut *conn)
            .await
            .map(|_| ())
        })
    }

    /// How many payments have a lookup due at `at`.
    pub async fn due_count(&self, at: Timestamp) -> Result<u64, StoreError> {
        let (n,): (i64,) = super::read!(self, pool => sqlx::query_as(
            "SELECT COUNT(*) FROM payments WHERE next_check_at IS NOT NULL AND next_check_at <= $1",
        )
        .bind(at.millis())
        .fetch_one(pool)
        .await)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Gives a lease back.
    pub async fn release(&self, id: &PaymentId, owner: &str) -> Result<(), StoreError> {
        write!(self, [id, owner], |conn| {
            sqlx::query("UPDATE payments SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2")
                .bind(id.as_str())
                .bind(&owner)
                .execute(&mut *conn)
                .await
                .map(|_| ())
        })
    }

    /// Leases one payment to `owner` (a token of one acquisition, not of the process: two tasks
    /// of one instance must not both hold it) for `lease`, if nobody holds it. `true` when
    /// `owner` holds it now.
    pub async fn lease_one(
        &self,
        id: &PaymentId,
        owner: &str,
        now: Timestamp,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let until = now.plus(lease).millis();
        let n = write!(self, [id, owner], |conn| {
            sqlx::query(
                "UPDATE payments SET lease_owner = $1, lease_until = $2 \
                 WHERE id = $3 AND (lease_until IS NULL OR lease_until < $4)",
            )
            .bind(&owner)
            .bind(until)
            .bind(id.as_str())
            .bind(now.millis())
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Extends `owner`'s lease of a payment to `until`; `false` when it is no longer `owner`'s.
    pub async fn renew_lease(
        &self,
        id: &PaymentId,
        owner: &str,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let n = write!(self, [id, owner], |conn| {
            sqlx::query("UPDATE payments SET lease_until = $1 WHERE id = $2 AND lease_owner = $3")
                .bind(until.millis())
                .bind(id.as_str())
                .bind(&owner)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Sets when the reconciler should look at a payment next (`None`: never).
    pub async fn schedule_check(
        &self,
        id: &PaymentId,
        at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        write!(self, [id], |conn| {
            sqlx::query("UPDATE payments SET next_check_at = $1 WHERE id = $2")
                .bind(at.map(Timestamp::millis))
                .bind(id.as_str())
                .execute(&mut *conn)
                .await
                .map(|_| ())
        })
    }

    /// Pushes the next lookup of a still-unclear payment to `at` (or keeps a later one already
    /// scheduled) and counts the attempt. Does nothing to a payment that needs no more lookups.
    pub async fn back_off_check(&self, id: &PaymentId, at: Timestamp) -> Result<(), StoreError> {
        write!(self, [id], |conn| {
            sqlx::query(
                "UPDATE payments SET check_attempts = check_attempts + 1, \
                 next_check_at = CASE WHEN next_check_at > $1 THEN next_check_at ELSE $1 END \
                 WHERE id = $2 AND next_check_at IS NOT NULL",
            )
            .bind(at.millis())
            .bind(id.as_str())
            .execute(&mut *conn)
            .await
            .map(|_| ())
        })
    }

    /// Clears a check that is due on a payment whose outcome is settled (neither `ready` nor
    /// `approving`, no refund in flight): a late `schedule_check` must not keep a finished payment
    /// due forever.
    pub async fn settle_check(&self, id: &PaymentId, now: Timestamp) -> Result<(), StoreError> {
        write!(self, [id], |conn| {
            sqlx::query(
                "UPDATE payments SET next_check_at = NULL, check_attempts = 0 WHERE id = $1 AND next_check_at <= $2 \
                 AND status NOT IN ($3, $4) AND refund_in_flight IS NULL",
            )
            .bind(id.as_str())
            .bind(now.millis())
            .bind(PaymentStatus::Ready.as_str())
            .bind(PaymentStatus::Approving.as_str())
            .execute(&mut *conn)
            .await
            .map(|_| ())
        })
    }

    /// Makes the next lookup of a payment due at `at` at the latest (an earlier one stays).
    pub async fn check_by(&self, id: &PaymentId, at: Timestamp) -> Result<(), StoreError> {
        write!(self, [id], |conn| {
            sqlx::query(
                "UPDATE payments SET next_check_at = $1 WHERE id = $2 AND (next_check_at IS NULL OR next_check_at > $1)",
            )
            .bind(at.millis())
            .bind(id.as_str())
            .execute(&mut *conn)
            .await
            .map(|_| ())
        })
    }

    /// Moves the start of an approve from `stamped` to `now` (see `Services::restamp_approve`).
    pub async fn restamp_approve(
        &self,
        id: &PaymentId,
        stamped: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let n = write!(self, [id], |conn| {
            sqlx::query(
                "UPDATE payments SET approve_started_at = $1 WHERE id = $2 AND status = $3 AND approve_started_at = $4",
            )
            .bind(now.millis())
            .bind(id.as_str())
            .bind(PaymentStatus::Approving.as_str())
            .bind(stamped.millis())
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Claims the re-send of an approve: only one caller (any instance) wins for the approve that
    /// started at `started`, and only while fewer than `max` re-sends were made. The re-send
    /// becomes the new start, so the grace period is judged from it.
    pub async fn claim_resend(
        &self,
        id: &PaymentId,
        started: Timestamp,
        now: Timestamp,
        max: u32,
    ) -> Result<bool, StoreError> {
        let n = write!(self, [id], |conn| {
            sqlx::query(
                "UPDATE payments SET approve_started_at = $1, resend_count = resend_count + 1 \
                 WHERE id = $2 AND status = $3 AND COALESCE(approve_started_at, updated_at) = $4 \
                 AND resend_count < $5",
            )
            .bind(now.millis())
            .bind(id.as_str())
            .bind(PaymentStatus::Approving.as_str())
            .bind(started.millis())
            .bind(i64::from(max))
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Takes one KakaoPay call from the budget of calls that browser callbacks may cause for a
    /// payment: at most `max` per `window`. `false` when it is spent (the callback then shows
    /// what is known without calling KakaoPay).
    pub async fn take_callback_budget(
        &self,
        id: &PaymentId,
        now: Timestamp,
        window: Duration,
        max: i64,
    ) -> Result<bool, StoreError> {
        let window_start = now.minus(window).millis();
        let n = write!(self, [id], |conn| {
            sqlx::query(
                "UPDATE payments SET \
                 callback_calls = CASE WHEN callback_window IS NULL OR callback_window <= $1 THEN 1 ELSE callback_calls + 1 END, \
                 callback_window = CASE WHEN callback_window IS NULL OR callback_window <= $1 THEN $2 ELSE callback_window END \
                 WHERE id = $3 AND (callback_window IS NULL OR callback_window <= $1 OR callback_calls < $4)",
            )
            .bind(window_start)
            .bind(now.millis())
            .bind(id.as_str())
            .bind(max)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }
}
