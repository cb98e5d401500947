//! `Idempotency-Key` on every POST of the merchant API: the same key and body get the stored answer
//! again; the same key with another body gets 422; the same key while the first request runs gets
//! 409. Answers are stored, except a 5xx or a 409 (a conflict with another request, such as a
//! refund still in flight): those had no effect and free the key, so that the client can retry.
//!
//! The key names an *effect*. The request runs in a task of its own, so that a client hanging up
//! never cuts a money operation short, and holds the key with a short lock that it renews while it
//! runs. A request whose process died stops renewing; within [`LOCK`] a retry takes the key over
//! and the handler, given the key ([`IdempotencyKey`]), finds the payment or refund the first
//! attempt stored with the key and answers with it: it never performs it again. A
//! stored 202 (a refund still being confirmed) is not replayed as it was: the retry answers with
//! the refund as it is now.

use super::AppState;
use super::error::ApiError;
use crate::service::resolve::RENEW_EVERY;
use crate::service::{IdempotencyKey, token};
use crate::store::IdemBegin;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// How long a key stays locked unless its request renews the lock (every few seconds while it
/// runs): a request that died is taken over after at most this long.
const LOCK: std::time::Duration = std::time::Duration::from_secs(10);

/// The middleware.
pub(crate) async fn idempotency(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
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
    let services = &state.services;
    let token = format!("lock_{}", token());
    let begun = match services.idempotency_begin(&key, &hash, &token, LOCK).await {
        Ok(b) => b,
        Err(e) => return ApiError::from(e).into_response(),
    };
    match begun {
        IdemBegin::Started { .. } => {}
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
    };
    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut()
        .insert(IdempotencyKey { key: key.clone() });
    let run = state
        .services
        .tasks
        .spawn(run_holding_key(state.clone(), key, token, next.run(req)));
    match run.await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(error = %e, "idempotent request task failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the request failed; retry it with the same Idempotency-Key",
            )
            .into_response()
        }
    }
}

/// Runs the handler while renewing the key's lock, then stores its answer (or frees the key after
/// a 5xx).
async fn run_holding_key(
    state: AppState,
    key: String,
    token: String,
    handler: impl std::future::Future<Output = Response>,
) -> Response {
    let services = &state.services;
    let mut handler = std::pin::pin!(handler);
    let mut renew = tokio::time::interval(RENEW_EVERY);
    renew.tick().await;
    let resp = loop {
        tokio::select! {
            resp = &mut handler => break resp,
            _ = renew.tick() => {
                if let Err(e) = services.idempotency_renew(&key, &token, LOCK).await {
                    tracing::warn!(error = %e, "could not renew an idempotency lock");
                }
            }
        }
    };
    let (parts, body) = resp.into_parts();
    let bytes = match to_bytes(body, 16 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            let _ = services.idempotency_release(&key, &token).await;
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the response could not be stored",
            )
            .into_response();
        }
    };
    // Nothing happened under a 5xx or a 409: a retry with the key must run again, not replay a
    // transient refusal (say `refund_in_progress`) forever.
    let stored = if parts.status.is_server_error() || parts.status == StatusCode::CONFLICT {
        services.idempotency_release(&key, &token).await
    } else {
        services
            .idempotency_finish(
                &key,
                &token,
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
