//! Request bodies of the merchant API: read once, whole, up to [`MAX_BODY`], before anything else
//! looks at the request. Too large → 413 in the API's JSON error shape. Reading the body first also
//! means an early refusal (401) never leaves unread bytes on the connection, so clients can keep
//! reusing it.

use super::error::ApiError;
use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Largest request body the API accepts.
pub(crate) const MAX_BODY: usize = 64 * 1024;

fn too_large() -> Response {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the request body must be at most {MAX_BODY} bytes"),
    )
    .into_response()
}

/// The middleware.
pub(crate) async fn buffer(req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    match to_bytes(body, MAX_BODY).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(_) => too_large(),
    }
}
