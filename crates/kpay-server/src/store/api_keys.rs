//! The merchant API's keys, stored as hashes.

use super::{Store, StoreError, read, write};
use crate::domain::Timestamp;

impl Store {
    /// Whether an API key with this hash exists and is not revoked.
    pub async fn api_key_valid(&self, hash: &str) -> Result<bool, StoreError> {
        let row: Option<(String,)> = read!(self, pool => sqlx::query_as(
            "SELECT id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(pool)
        .await)?;
        Ok(row.is_some())
    }

    /// Stores an API key's hash (idempotent).
    pub async fn add_api_key(
        &self,
        id: &str,
        hash: &str,
        prefix: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        write!(self, [id, hash, prefix], |conn| {
            sqlx::query(
                "INSERT INTO api_keys (id, key_hash, prefix, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (key_hash) DO NOTHING",
            )
            .bind(&id)
            .bind(&hash)
            .bind(&prefix)
            .bind(now.millis())
            .execute(&mut *conn)
            .await
            .map(|_| ())
        })
    }
}
