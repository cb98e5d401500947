//! `/test/v1`: drive a payment without a browser, move the clock, inject faults (contract §3).

use crate::faults::FaultSpec;
use crate::{Sandbox, SandboxError};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kakaopay::{KstDateTime, PaymentMethodType};
use serde::Deserialize;
use serde_json::json;

/// The helper routes.
pub fn routes() -> Router<Sandbox> {
    Router::new()
        .route("/test/v1/payments", get(ledger))
        .route("/test/v1/payments/{tid}", get(one_payment))
        .route("/test/v1/payments/{tid}/authorize", post(authorize))
        .route("/test/v1/payments/{tid}/quit", post(quit))
        .route("/test/v1/payments/{tid}/fail", post(fail))
        .route("/test/v1/clock/advance", post(advance))
        .route(
            "/test/v1/faults",
            post(add_fault).delete(clear_faults).get(list_faults),
        )
}

/// Helper errors: `{"error":{"code","message","kakaopay_code"}}`; unknown TID is 404.
fn helper_error(e: &SandboxError) -> Response {
    let (status, code) = match e.code {
        -721 => (StatusCode::NOT_FOUND, "not_found"),
        -723 => (StatusCode::CONFLICT, "expired"),
        -783 | -785 => (StatusCode::CONFLICT, "invalid_state"),
        _ => (StatusCode::BAD_REQUEST, "invalid_request"),
    };
    (
        status,
        Json(json!({"error": {"code": code, "message": e.message, "kakaopay_code": e.code}})),
    )
        .into_response()
}

/// KakaoPay's own record of a payment, for checks against a merchant's ledger: status, amounts,
/// every PAYMENT and CANCEL with its AID, and how often the merchant called about it.
fn record(p: &crate::state::Payment) -> serde_json::Value {
    let parts = |a: &kakaopay::AmountBreakdown| json!({"total": a.total, "tax_free": a.tax_free, "vat": a.vat, "green_deposit": a.green_deposit});
    json!({
        "tid": p.tid,
        "cid": p.cid.as_str(),
        "status": p.status,
        "partner_order_id": p.partner_order_id.as_str(),
        "partner_user_id": p.partner_user_id.as_str(),
        "sid": p.sid,
        "amount": parts(&p.amount),
        "canceled": parts(&p.canceled),
        "actions": p.actions.iter().map(|a| json!({
            "kind": a.kind,
            "aid": a.aid,
            "amount": parts(&a.amount),
            "at": KstDateTime::from_utc(a.at),
        })).collect::<Vec<_>>(),
        "calls": p.calls,
    })
}

/// `GET /test/v1/payments`: every payment the sandbox holds (settled ones until evicted).
async fn ledger(State(sb): State<Sandbox>) -> Response {
    let data: Vec<_> = sb.store().payments.iter().map(|p| record(&p)).collect();
    Json(json!({ "data": data })).into_response()
}

/// `GET /test/v1/payments/{tid}`: one payment's record.
async fn one_payment(State(sb): State<Sandbox>, Path(tid): Path<String>) -> Response {
    // Cloned out first: the map's shard lock is not held while encoding.
    let p = sb.store().payments.get(&tid).map(|p| p.clone());
    match p {
        Some(p) => Json(record(&p)).into_response(),
        None => helper_error(&SandboxError::api(404, -721, format!("no payment {tid}"))),
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthorizeBody {
    #[serde(default)]
    payment_method_type: Option<PaymentMethodType>,
}

/// Parses an optional JSON body; an empty body is the default.
fn optional_body<T: Default + serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, SandboxError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| SandboxError::bad_request(format!("invalid body: {e}")))
}

async fn authorize(
    State(sb): State<Sandbox>,
    Path(tid): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let body: AuthorizeBody = match optional_body(&body) {
        Ok(b) => b,
        Err(e) => return helper_error(&e),
    };
    match sb.authorize(&tid, body.payment_method_type) {
        Ok(r) => Json(json!({
            "tid": r.tid, "status": r.status, "pg_token": r.pg_token, "redirect_url": r.url,
        }))
        .into_response(),
        Err(e) => helper_error(&e),
    }
}

async fn quit(State(sb): State<Sandbox>, Path(tid): Path<String>) -> Response {
    abandon(&sb, &tid, true)
}

async fn fail(State(sb): State<Sandbox>, Path(tid): Path<String>) -> Response {
    abandon(&sb, &tid, false)
}

fn abandon(sb: &Sandbox, tid: &str, quit: bool) -> Response {
    match sb.abandon(tid, quit) {
        Ok(r) => {
            Json(json!({"tid": r.tid, "status": r.status, "redirect_url": r.url})).into_response()
        }
        Err(e) => helper_error(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: u64,
}

async fn advance(State(sb): State<Sandbox>, body: axum::body::Bytes) -> Response {
    let advance: Advance = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => {
            return helper_error(&SandboxError::bad_request(format!(
                "expected {{\"seconds\":N}}: {e}"
            )));
        }
    };
    match sb.clock().advance(advance.seconds) {
        Ok(now) => Json(json!({"now": KstDateTime::from_utc(now)})).into_response(),
        Err(e) => helper_error(&SandboxError::bad_request(e.to_string())),
    }
}

async fn add_fault(State(sb): State<Sandbox>, body: axum::body::Bytes) -> Response {
    let spec: FaultSpec = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return helper_error(&SandboxError::bad_request(format!("invalid fault: {e}"))),
    };
    if let Err(e) = spec.validate() {
        return helper_error(&e);
    }
    match sb.faults().add(spec) {
        Ok(id) => Json(json!({"id": id})).into_response(),
        Err(e) => helper_error(&e),
    }
}

async fn clear_faults(State(sb): State<Sandbox>) -> Response {
    Json(json!({"cleared": sb.faults().clear()})).into_response()
}

async fn list_faults(State(sb): State<Sandbox>) -> Response {
    Json(json!({"active": sb.faults().ids()})).into_response()
}
