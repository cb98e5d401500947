//! A request id on every request: the caller's `X-Request-Id` when it is a sane token, else a new
//! one. It is answered in the `X-Request-Id` header, recorded on the request's span (so every log
//! line of the request carries it), and put into error bodies, so that a merchant's support
//! ticket, the server's logs and the payment's story can be joined with one grep.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The header, both ways.
pub(crate) static HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static CURRENT: String;
}

/// The id of the request being served by this task, if any.
pub(crate) fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// A caller's id is kept if it is 1–64 letters, digits, `-`, `_` or `.`; anything else (empty,
/// long, control characters, log-forging newlines) is replaced.
fn acceptable(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (1..=64)
        .contains(&s.len())
        .then_some(s)
        .filter(|s| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .map(str::to_owned)
}

/// The middleware: outermost, before the trace layer makes the request's span.
pub(crate) async fn assign(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(acceptable)
        .unwrap_or_else(|| format!("req_{}", crate::service::token()));
    if let Ok(v) = HeaderValue::from_str(&id) {
        req.headers_mut().insert(HEADER.clone(), v.clone());
        let mut resp = CURRENT.scope(id, next.run(req)).await;
        resp.headers_mut().insert(HEADER.clone(), v);
        return resp;
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sane_caller_ids_are_kept() {
        let ok = HeaderValue::from_static("shop-order_12.3");
        assert_eq!(acceptable(&ok).as_deref(), Some("shop-order_12.3"));
        for bad in ["", "a b", "x\u{7f}", &"x".repeat(65)] {
            if let Ok(v) = HeaderValue::from_str(bad) {
                assert_eq!(acceptable(&v), None, "{bad:?}");
            }
        }
    }
}
