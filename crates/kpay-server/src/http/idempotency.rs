//! `Idempotency-Key` on every POST of the merchant API: the same key and body get the stored answer
//! again; the same key with another body gets 422; the same key while the first request runs gets
//! 409. Answers below 500 are stored; a 5xx frees the key so that the client can retry.

use super::AppState;
use super::error::ApiError;
use crate::service::now_ms;
use crate::store::IdemBegin;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// How long a key stays locked by a request that may have died.
const LOCK_MS: i64 = 60_000;

/// The middleware.
pub async fn idempotency(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(key) = req.headers().get("idempotency-key").cloned() else {
        return next.run(req).await;
    };
    let key = match key.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= 255 => k.to_owned(),
        _ => {
            return ApiError::invalid(
                "Idempotency-Key",
                "the Idempotency-Key header must be 1 to 255 visible ASCII characters",
            )
            .into_response();
        }
    };
    let (parts, body) = req.into_parts();
    // Already buffered and size-checked by `body::buffer`.
    let bytes = match to_bytes(body, super::body::MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body is too large",
            )
            .into_response();
        }
    };
    let mut hasher = Sha256::new();
    hasher.update(parts.uri.path().as_bytes());
    hasher.update([0]);
    hasher.update(&bytes);
    let hash: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let store = &state.services.store;
    let begun = match store.idem_begin(&key, &hash, now_ms(), LOCK_MS).await {
        Ok(b) => b,
        Err(e) => return ApiError::from(crate::service::ServiceError::Store(e)).into_response(),
    };
    match begun {
        IdemBegin::Started => {}
        IdemBegin::InFlight => {
            return ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is still being processed",
            )
            .into_response();
        }
        IdemBegin::Mismatch => {
            return ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request",
            )
            .into_response();
        }
        IdemBegin::Done { status, body } => {
            let mut resp =
                (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body).into_response();
            resp.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return resp;
        }
    }
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (parts, body) = resp.into_parts();
    let bytes = match to_bytes(body, 16 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            let _ = store.idem_release(&key).await;
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the response could not be stored",
            )
            .into_response();
        }
    };
    let stored = if parts.status.is_server_error() {
        store.idem_release(&key).await
    } else {
        store
            .idem_finish(
                &key,
                parts.status.as_u16(),
                &String::from_utf8_lossy(&bytes),
            )
            .await
    };
    if let Err(e) = stored {
        tracing::error!(error = %e, "could not store the idempotent answer");
    }
    Response::from_parts(parts, Body::from(bytes))
}
