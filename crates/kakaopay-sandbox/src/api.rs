//! KakaoPay's API over HTTP, for both generations: authentication, body parsing (JSON with numbers
//! as strings; form body merged with the query string), faults, and each generation's success and
//! error shapes.

use crate::faults::FaultAction;
use crate::{Sandbox, SandboxError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use kakaopay::{Generation, Operation};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::time::Duration;

const ALL_OPERATIONS: [Operation; 7] = [
    Operation::Ready,
    Operation::Approve,
    Operation::Cancel,
    Operation::Order,
    Operation::Subscription,
    Operation::SubscriptionInactive,
    Operation::SubscriptionStatus,
];

/// The API routes of both generations.
pub fn routes() -> Router<Sandbox> {
    let mut router = Router::new();
    for generation in [Generation::Open, Generation::Legacy] {
        for op in ALL_OPERATIONS {
            let handler = move |State(sb): State<Sandbox>,
                                headers: HeaderMap,
                                RawQuery(q): RawQuery,
                                body: Bytes| async move {
                handle(sb, generation, op, headers, q, body).await
            };
            let method = if generation == Generation::Legacy && op == Operation::Order {
                // Some legacy wrappers document order lookup as GET.
                post(handler).get(handler)
            } else {
                post(handler)
            };
            router = router.route(&generation.path(op), method);
        }
    }
    router
}

/// A JSON answer with KakaoPay's content type.
fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    resp
}

/// Renders an error in the shape of `generation`.
pub fn error_response(generation: Generation, err: &SandboxError) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = match generation {
        Generation::Open => err.open_body(),
        Generation::Legacy => err.legacy_body(),
    };
    json_response(status, &body)
}

/// Removes `null` members recursively: the legacy generation leaves absent keys out.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

fn success<T: Serialize>(generation: Generation, body: &T) -> Response {
    match serde_json::to_value(body) {
        Ok(mut v) => {
            if generation == Generation::Legacy {
                strip_nulls(&mut v);
            }
            json_response(StatusCode::OK, &v)
        }
        Err(e) => error_response(
            generation,
            &SandboxError::api(500, -500, format!("encoding failed: {e}")),
        ),
    }
}

/// Checks the Authorization header against the generation's scheme and the configured keys.
fn authenticate(
    sb: &Sandbox,
    generation: Generation,
    headers: &HeaderMap,
) -> Result<(), SandboxError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(match generation {
            Generation::Open => SandboxError::api(400, -400, "Authorization header is missing"),
            Generation::Legacy => SandboxError::api(401, -401, "no authentication key!"),
        });
    };
    let value = value.to_str().unwrap_or_default();
    let (scheme, key) = value.split_once(' ').unwrap_or((value, ""));
    let key = key.trim();
    let (schemes, keys): (&[&str], &[String]) = match generation {
        Generation::Open => (&["SECRET_KEY", "DEV_SECRET_KEY"], &sb.config().secret_keys),
        Generation::Legacy => (&["KakaoAK"], &sb.config().admin_keys),
    };
    let scheme_ok = schemes.contains(&scheme);
    let key_ok = !key.is_empty() && (keys.is_empty() || keys.iter().any(|k| k == key));
    if scheme_ok && key_ok {
        Ok(())
    } else {
        let message = match generation {
            Generation::Open => "invalid secret key",
            Generation::Legacy => "wrong appKey format or invalid appKey",
        };
        Err(SandboxError::api(401, -401, message))
    }
}

/// The request parameters as a JSON object of the generation's encoding. Legacy: form body merged
/// over the query string, every value a string (numbers and JSON documents are decoded later).
fn params(
    generation: Generation,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, SandboxError> {
    match generation {
        Generation::Open => {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Err(SandboxError::bad_request(
                    "request body is empty; send a JSON object",
                ));
            }
            let is_json = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
            if !is_json {
                return Err(SandboxError::bad_request(
                    "Content-Type must be application/json",
                ));
            }
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(map)) => Ok(Value::Object(map)),
                Ok(_) => Err(SandboxError::bad_request(
                    "request body must be a JSON object",
                )),
                Err(e) => Err(SandboxError::bad_request(format!(
                    "request body is not valid JSON: {e}"
                ))),
            }
        }
        Generation::Legacy => {
            let mut map = Map::new();
            let mut add = |raw: &[u8]| {
                for (k, v) in form_urlencoded_pairs(raw) {
                    if !v.is_empty() {
                        map.insert(k, Value::String(v));
                    }
                }
            };
            if let Some(q) = query {
                add(q.as_bytes());
            }
            add(body);
            Ok(Value::Object(map))
        }
    }
}

fn form_urlencoded_pairs(raw: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(raw).unwrap_or_default()
}

fn typed<T: DeserializeOwned>(params: Value) -> Result<T, SandboxError> {
    serde_json::from_value(params)
        .map_err(|e| SandboxError::bad_request(format!("invalid request: {e}")))
}

/// A panic payload that tells the connection task to die: the way the sandbox closes a connection
/// without answering (`drop` faults). `resume_unwind` skips the panic hook, so nothing is printed;
/// the connection's task ends and its socket closes.
struct DropConnection;

fn drop_connection() -> ! {
    std::panic::resume_unwind(Box::new(DropConnection))
}

async fn handle(
    sb: Sandbox,
    generation: Generation,
    op: Operation,
    headers: HeaderMap,
    query: Option<String>,
    body: Bytes,
) -> Response {
    if let Err(e) = authenticate(&sb, generation, &headers) {
        return error_response(generation, &e);
    }
    let params = match params(generation, query.as_deref(), &headers, &body) {
        Ok(p) => p,
        Err(e) => return error_response(generation, &e),
    };
    if let Some(tid) = params.get("tid").and_then(Value::as_str) {
        sb.store().count_call(tid, op);
    }
    let Some(fault) = sb.faults().take(op) else {
        return dispatch(&sb, generation, op, params, false)
            .unwrap_or_else(|e| error_response(generation, &e));
    };
    // A slow KakaoPay is busy with the request: duplicates meanwhile get -785.
    let tid = params.get("tid").and_then(Value::as_str).map(str::to_owned);
    let mut marked = false;
    if fault.delay_ms > 0
        && let (Some(tid), Operation::Approve | Operation::Cancel) = (&tid, op)
    {
        match sb.begin_in_flight(tid) {
            Ok(m) => marked = m,
            Err(e) => return error_response(generation, &e),
        }
    }
    // The work runs in its own task: like KakaoPay, a slow operation completes even when the
    // merchant hangs up (or dies) before the answer.
    let action = fault.action;
    let delay = Duration::from_millis(fault.delay_ms);
    let worker = sb.clone();
    let work = tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let result = match action {
            FaultAction::Error | FaultAction::Drop => None,
            FaultAction::Delay | FaultAction::CommitThenError | FaultAction::CommitThenDrop => {
                Some(dispatch(&worker, generation, op, params, marked))
            }
        };
        if let (Some(tid), true) = (&tid, marked) {
            worker.end_in_flight(tid);
        }
        result
    });
    let result = match work.await {
        Ok(r) => r,
        Err(_) => {
            return error_response(
                generation,
                &SandboxError::api(500, -500, "sandbox task failed"),
            );
        }
    };
    match (fault.action, result) {
        (FaultAction::Drop | FaultAction::CommitThenDrop, _) => drop_connection(),
        (FaultAction::Error | FaultAction::CommitThenError, _) => {
            error_response(generation, &fault.error)
        }
        (FaultAction::Delay, Some(result)) => {
            result.unwrap_or_else(|e| error_response(generation, &e))
        }
        (FaultAction::Delay, None) => error_response(generation, &fault.error),
    }
}

fn dispatch(
    sb: &Sandbox,
    generation: Generation,
    op: Operation,
    params: Value,
    owns_flight: bool,
) -> Result<Response, SandboxError> {
    let legacy = generation == Generation::Legacy;
    Ok(match op {
        Operation::Ready => success(generation, &sb.ready(typed(params)?, legacy)?),
        Operation::Approve => success(
            generation,
            &sb.approve(&typed(params)?, owns_flight, legacy)?,
        ),
        Operation::Cancel => success(generation, &sb.cancel(&typed(params)?, owns_flight)?),
        Operation::Order => success(generation, &sb.order(&typed(params)?, legacy)?),
        Operation::Subscription => success(generation, &sb.subscription(&typed(params)?, legacy)?),
        Operation::SubscriptionInactive => success(generation, &sb.inactivate(&typed(params)?)?),
        Operation::SubscriptionStatus => {
            success(generation, &sb.subscription_status(&typed(params)?)?)
        }
    })
}
