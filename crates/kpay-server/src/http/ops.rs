//! Operations: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.

use super::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::Duration;

/// 200 while the process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive")))]
pub(crate) async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// 200 when the database and the KakaoPay base URL are reachable, 503 otherwise.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "Ready"), (status = 503, description = "Not ready")))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let database = state
        .services
        .ping_database()
        .await
        .map_err(|e| e.to_string());
    let base = state.services.kakaopay.base_url().to_owned();
    let kakaopay = state
        .http
        .get(&base)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{base} unreachable: {e}"));
    let ok = database.is_ok() && kakaopay.is_ok();
    let show = |r: &Result<(), String>| match r {
        Ok(()) => json!("ok"),
        Err(e) => json!(e),
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({"status": if ok { "ready" } else { "not_ready" }, "database": show(&database), "kakaopay": show(&kakaopay)}))).into_response()
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus metrics", content_type = "text/plain")))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    match state.services.payment_counts().await {
        Ok(counts) => state.metrics.set_payment_counts(&counts),
        Err(e) => tracing::warn!(error = %e, "could not count payments for /metrics"),
    }
    match state.services.subscription_metrics().await {
        Ok((counts, open)) => state.metrics.set_subscription_counts(&counts, open),
        Err(e) => tracing::warn!(error = %e, "could not count subscriptions for /metrics"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// This API's OpenAPI 3 document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, description = "OpenAPI document")))]
pub(crate) async fn openapi() -> Response {
    use utoipa::OpenApi;
    Json(super::ApiDoc::openapi()).into_response()
}
