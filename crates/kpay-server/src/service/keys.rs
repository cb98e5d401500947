//! The merchant API's own records, for its middleware: idempotency keys (which request holds a
//! key, and the answer it stored) and API keys (their hashes). The effects the keys name (the
//! payment or refund a request made) are looked up by the use cases themselves.

use super::{ServiceError, Services};
use crate::store::IdemBegin;
use std::time::Duration;

impl Services {
    /// Starts the request `token` under Idempotency-Key `key` for a body hashing to `hash`, its
    /// lock held for `lock` unless renewed.
    pub(crate) async fn idempotency_begin(
        &self,
        key: &str,
        hash: &str,
        token: &str,
        lock: Duration,
    ) -> Result<IdemBegin, ServiceError> {
        Ok(self
            .store
            .idem_begin(key, hash, token, self.now(), lock)
            .await?)
    }

    /// Renews the lock of the running request `token` for `lock`; `false`: it lost the key.
    pub(crate) async fn idempotency_renew(
        &self,
        key: &str,
        token: &str,
        lock: Duration,
    ) -> Result<bool, ServiceError> {
        Ok(self
            .store
            .idem_renew(key, token, self.now().plus(lock))
            .await?)
    }

    /// Stores the answer of the request `token`.
    pub(crate) async fn idempotency_finish(
        &self,
        key: &str,
        token: &str,
        status: u16,
        body: &str,
    ) -> Result<(), ServiceError> {
        Ok(self.store.idem_finish(key, token, status, body).await?)
    }

    /// Frees the key of the request `token` (nothing happened under it: a retry runs anew).
    pub(crate) async fn idempotency_release(
        &self,
        key: &str,
        token: &str,
    ) -> Result<(), ServiceError> {
        Ok(self.store.idem_release(key, token).await?)
    }

    /// Stores an API key's hash (idempotent).
    pub(crate) async fn add_api_key(
        &self,
        id: &str,
        hash: &str,
        prefix: &str,
    ) -> Result<(), ServiceError> {
        Ok(self.store.add_api_key(id, hash, prefix, self.now()).await?)
    }

    /// Whether an API key with this hash exists and is not revoked.
    pub(crate) async fn api_key_exists(&self, hash: &str) -> Result<bool, ServiceError> {
        Ok(self.store.api_key_valid(hash).await?)
    }
}
