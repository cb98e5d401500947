//! Idempotency keys of the merchant API. A key row holds the request's hash, whether it is still
//! running (`in_flight`, locked by one request's token until `locked_until`) or `done` (with the
//! stored answer). The lock is short and renewed by the living request, so a request whose process
//! died is taken over within seconds. Taking over is safe because the *effect* of a request (the
//! payment or refund it created) carries the key too, written in the same transaction as the
//! record: the new holder finds it and answers with it instead of performing it again.

use super::{Store, StoreError, read, write};
use crate::domain::Timestamp;
use std::time::Duration;

/// What beginning an idempotent request found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdemBegin {
    /// This request owns the key now. `fresh`: the key was new, so no effect can carry it yet;
    /// otherwise (a takeover after its holder died, or a refresh of a pending answer) the handler
    /// must look for the effect first.
    Started {
        /// Whether the key was new.
        fresh: bool,
    },
    /// Another living request holds the key.
    InFlight,
    /// The key was used with another request.
    Mismatch,
    /// The stored answer.
    Done {
        /// HTTP status.
        status: u16,
        /// JSON body.
        body: String,
    },
}

/// An idempotency row: request hash, state, stored status and body, lock deadline.
type IdemRow = (String, String, Option<i64>, Option<String>, i64);

/// A stored answer that is refreshed instead of replayed: 202 means "still being confirmed", and a
/// retry wants the outcome as it is now.
const PENDING_ANSWER: i64 = 202;

impl Store {
    /// Starts an idempotent request under `key`, locked by `token` until `until`.
    pub async fn idem_begin(
        &self,
        key: &str,
        hash: &str,
        token: &str,
        now: Timestamp,
        lock: Duration,
    ) -> Result<IdemBegin, StoreError> {
        let until = now.plus(lock).millis();
        let now = now.millis();
        for _ in 0..3 {
            let inserted = write!(self, [key, hash, token], |conn| {
                sqlx::query(
                "INSERT INTO idempotency_keys (key, request_hash, state, created_at, locked_until, lock_token) \
                 VALUES ($1, $2, 'in_flight', $3, $4, $5) ON CONFLICT (key) DO NOTHING",
            )
            .bind(&key)
            .bind(&hash)
            .bind(now)
            .bind(until)
            .bind(&token)
            .execute(&mut *conn)
            .await.map(|r| r.rows_affected())
            })?;
            if inserted == 1 {
                return Ok(IdemBegin::Started { fresh: true });
            }
            let row: Option<IdemRow> = read!(self, pool => sqlx::query_as(
                "SELECT request_hash, state, response_status, response_body, locked_until FROM idempotency_keys WHERE key = $1",
            )
            .bind(key)
            .fetch_optional(pool)
            .await)?;
            // Deleted in between (its first attempt failed with a 5xx): insert again.
            let Some((stored_hash, state, status, body, locked_until)) = row else {
                continue;
            };
            if stored_hash != hash {
                return Ok(IdemBegin::Mismatch);
            }
            let taken = if state == "done" {
                if status != Some(PENDING_ANSWER) {
                    return Ok(IdemBegin::Done {
                        status: status.and_then(|s| u16::try_from(s).ok()).unwrap_or(200),
                        body: body.unwrap_or_default(),
                    });
                }
                // A pending answer: run again to answer with the outcome as it is now.
                write!(self, [key, token], |conn| {
                    sqlx::query(
                    "UPDATE idempotency_keys SET state = 'in_flight', lock_token = $1, locked_until = $2 \
                     WHERE key = $3 AND state = 'done' AND response_status = $4",
                )
                .bind(&token)
                .bind(until)
                .bind(&key)
                .bind(PENDING_ANSWER)
                .execute(&mut *conn)
                .await.map(|r| r.rows_affected())
                })?
            } else if locked_until < now {
                // Its holder stopped renewing the lock: it died. Take the key over.
                write!(self, [key, token], |conn| sqlx::query(
                    "UPDATE idempotency_keys SET lock_token = $1, locked_until = $2 \
                     WHERE key = $3 AND state = 'in_flight' AND locked_until = $4",
                )
                .bind(&token)
                .bind(until)
                .bind(&key)
                .bind(locked_until)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected()))?
            } else {
                return Ok(IdemBegin::InFlight);
            };
            return Ok(if taken == 1 {
                IdemBegin::Started { fresh: false }
            } else {
                IdemBegin::InFlight
            });
        }
        Ok(IdemBegin::InFlight)
    }

    /// Extends the lock of a running request; `false` when the key is no longer this request's.
    pub async fn idem_renew(
        &self,
        key: &str,
        token: &str,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let until = until.millis();
        let n = write!(self, [key, token], |conn| {
            sqlx::query(
            "UPDATE idempotency_keys SET locked_until = $1 WHERE key = $2 AND lock_token = $3 AND state = 'in_flight'",
        )
        .bind(until)
        .bind(&key)
        .bind(&token)
        .execute(&mut *conn)
        .await.map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Stores the answer of an idempotent request (if the key is still this request's).
    pub async fn idem_finish(
        &self,
        key: &str,
        token: &str,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError> {
        write!(self, [key, token, body], |conn| {
            sqlx::query(
            "UPDATE idempotency_keys SET state = 'done', response_status = $1, response_body = $2, lock_token = NULL \
             WHERE key = $3 AND lock_token = $4",
        )
        .bind(i64::from(status))
        .bind(&body)
        .bind(&key)
        .bind(&token)
        .execute(&mut *conn)
        .await.map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Forgets a key whose request failed in a way worth retrying (a 5xx): nothing carries it.
    pub async fn idem_release(&self, key: &str, token: &str) -> Result<(), StoreError> {
        write!(self, [key, token], |conn| {
            sqlx::query(
            "DELETE FROM idempotency_keys WHERE key = $1 AND state = 'in_flight' AND lock_token = $2",
        )
        .bind(&key)
        .bind(&token)
        .execute(&mut *conn)
        .await.map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Drops idempotency keys created before `before`.
    pub async fn idem_expire(&self, before: Timestamp) -> Result<u64, StoreError> {
        let before = before.millis();
        Ok(write!(self, |conn| sqlx::query(
            "DELETE FROM idempotency_keys WHERE created_at < $1 AND state = 'done'"
        )
        .bind(before)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected()))?)
    }
}
