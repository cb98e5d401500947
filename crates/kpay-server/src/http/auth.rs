//! Merchant API keys: `Authorization: Bearer <key>`. Only SHA-256 hashes are stored (keys are
//! 160-bit random, so a slow hash buys nothing); verified hashes are cached in memory.

use super::AppState;
use super::error::ApiError;
use crate::service::{ServiceError, Services};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::RwLock;

/// The hex SHA-256 of a key.
pub(crate) fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new random API key: `kpay_sk_` + 32 letters and digits.
pub(crate) fn generate_key() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut rng = rand::rng();
    let tail: String = (0..32)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("kpay_sk_{tail}")
}

/// Verified key hashes.
#[derive(Debug, Default)]
pub(crate) struct ApiKeys {
    known: RwLock<HashSet<String>>,
}

impl ApiKeys {
    /// Whether `key` is a valid API key.
    pub(crate) async fn verify(
        &self,
        services: &Services,
        key: &str,
    ) -> Result<bool, ServiceError> {
        let hash = hash_key(key);
        if self
            .known
            .read()
            .map(|k| k.contains(&hash))
            .unwrap_or(false)
        {
            return Ok(true);
        }
        let valid = services.api_key_exists(&hash).await?;
        if valid && let Ok(mut k) = self.known.write() {
            k.insert(hash);
        }
        Ok(valid)
    }
}

/// The bearer token of a request, if any.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Refuses requests without a valid API key (401, JSON).
pub(crate) async fn require_api_key(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let Some(key) = bearer(req.headers()) else {
        return ApiError::unauthorized("send the merchant API key as Authorization: Bearer <key>")
            .into_response();
    };
    match state.api_keys.verify(&state.services, key).await {
        Ok(true) => next.run(req).await,
        Ok(false) => ApiError::unauthorized("the API key is not valid").into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
