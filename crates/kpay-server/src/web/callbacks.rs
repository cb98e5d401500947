//! The URLs KakaoPay sends the buyer's browser to (public, no API key). Each finishes its step and
//! answers with a result page, or a 303 to the payment's `return_url` with `payment_id` and
//! `status` appended.

use crate::domain::Payment;
use crate::http::AppState;
use crate::service::{ServiceError, payment_id};
use crate::web::result::result_page;
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use kakaopay::PgToken;
use serde::Deserialize;
use serde_json::json;

/// `?pg_token=…`.
#[derive(Debug, Deserialize)]
pub(crate) struct ApproveQuery {
    #[serde(default)]
    pg_token: Option<String>,
}

fn message_page(status: StatusCode, title: &str, text: &str) -> Response {
    let body = crate::web::layout::page(
        "ko",
        title,
        maud::html! { a href="/" { "kpay" } },
        maud::html! {},
        maud::html! { div.card.narrow { h1 { (title) } p { (text) } p { a href="/" { "처음으로" } } } },
    );
    (status, Html(body.into_string())).into_response()
}

/// Where the buyer goes next: the merchant's return_url, or this server's page.
fn answer(p: &Payment) -> Response {
    if let Some(url) = &p.return_url
        && let Ok(mut u) = url::Url::parse(url)
    {
        u.query_pairs_mut()
            .append_pair("payment_id", p.id.as_str())
            .append_pair("status", p.status.as_str());
        return Redirect::to(u.as_str()).into_response();
    }
    Html(result_page(p, "/").into_string()).into_response()
}

fn failure(e: ServiceError) -> Response {
    match e {
        ServiceError::NotFound(_) => message_page(
            StatusCode::NOT_FOUND,
            "결제 정보를 찾을 수 없습니다",
            "주소가 올바른지 확인해 주세요.",
        ),
        other => {
            tracing::error!(error = %other, "callback failed");
            message_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "잠시 후 다시 시도해 주세요",
                "결제 상태를 확인하지 못했습니다. 이 화면을 새로 고치면 다시 확인합니다. 결제가 두 번 이루어지지 않습니다.",
            )
        }
    }
}

/// `GET /pay/{id}/approve?pg_token=…`: approves once, however often it is called.
pub(crate) async fn approve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ApproveQuery>,
) -> Response {
    let Some(token) = q.pg_token.and_then(|t| PgToken::parse(t).ok()) else {
        return message_page(
            StatusCode::BAD_REQUEST,
            "잘못된 요청입니다",
            "결제 인증 정보(pg_token)가 없거나 올바르지 않습니다.",
        );
    };
    let id = match payment_id(&id) {
        Ok(id) => id,
        Err(e) => return failure(e),
    };
    match state.services.approve_callback(&id, token).await {
        Ok(p) => answer(&p),
        Err(e) => failure(e),
    }
}

/// `GET /pay/{id}/cancel`: KakaoPay's order lookup says what happened. A forged callback changes
/// nothing, and its lookups are bounded per payment.
pub(crate) async fn cancel(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    abandon(&state, &id).await
}

/// `GET /pay/{id}/fail`: as cancel. An order still pending at KakaoPay stays as it is until the
/// server's own 15 minutes are over (this URL can be forged; the buyer may still pay).
pub(crate) async fn fail(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    abandon(&state, &id).await
}

async fn abandon(state: &AppState, id: &str) -> Response {
    let id = match payment_id(id) {
        Ok(id) => id,
        Err(e) => return failure(e),
    };
    match state.services.sync_from_callback(&id).await {
        Ok(p) => answer(&p),
        Err(e) => failure(e),
    }
}

/// `GET /pay/{id}`: the buyer's view of a payment.
pub(crate) async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let id = match payment_id(&id) {
        Ok(id) => id,
        Err(e) => return failure(e),
    };
    match state.services.payment(&id).await {
        Ok(p) => Html(result_page(&p, "/").into_string()).into_response(),
        Err(e) => failure(e),
    }
}

/// `GET /pay/{id}/status`: `{"id","status"}` for the pages' polling.
pub(crate) async fn status(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let found = match payment_id(&id) {
        Ok(id) => state.services.payment(&id).await,
        Err(e) => Err(e),
    };
    match found {
        Ok(p) => Json(json!({"id": p.id, "status": p.status})).into_response(),
        Err(ServiceError::NotFound(_)) => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"code": "not_found", "message": "no such payment"}})),
        )
            .into_response(),
        Err(e) => crate::http::ApiError::from(e).into_response(),
    }
}

/// The buyer's URLs (public, no API key).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/pay/{id}", get(show))
        .route("/pay/{id}/approve", get(approve))
        .route("/pay/{id}/cancel", get(cancel))
        .route("/pay/{id}/fail", get(fail))
        .route("/pay/{id}/status", get(status))
}
