//! Every error of the HTTP API as `{"error":{"code","message","field"?,"kakaopay_code"?}}`, mapped
//! from the services in one place.

use crate::service::ServiceError;
use crate::store::StoreError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An API error.
#[derive(Debug)]
pub(crate) struct ApiError {
    /// HTTP status.
    pub(crate) status: StatusCode,
    /// Machine-readable code.
    pub(crate) code: &'static str,
    /// What went wrong, for people.
    pub(crate) message: String,
    /// The offending request field.
    pub(crate) field: Option<String>,
    /// KakaoPay's code, passed through.
    pub(crate) kakaopay_code: Option<i64>,
}

/// The error body.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    /// The error.
    pub(crate) error: ErrorDetail,
}

/// The error itself.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    /// Machine-readable code, e.g. `invalid_request`, `not_found`, `refund_in_progress`.
    pub(crate) code: String,
    /// What went wrong.
    pub(crate) message: String,
    /// The offending field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) field: Option<String>,
    /// KakaoPay's error code, when KakaoPay refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) kakaopay_code: Option<i64>,
    /// The request's id (also in the `X-Request-Id` header and in every log line of it): quote it
    /// when asking about this error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) request_id: Option<String>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            kakaopay_code: None,
        }
    }
    /// A 400 naming a field.
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
        }
    }
    /// 401.
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(id) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "no {} {id}",
                    if id.starts_with("sub_") {
                        "subscription"
                    } else if id.starts_with("sch_") {
                        "subscription charge"
                    } else if id.starts_with("we_") {
                        "webhook endpoint"
                    } else if id.starts_with("evt_") {
                        "event"
                    } else {
                        "payment"
                    }
                ),
            ),
            ServiceError::Invalid { field, message } => {
                ApiError::invalid(field, format!("{field}: {message}"))
            }
            ServiceError::Conflict { code, message } => {
                ApiError::new(StatusCode::CONFLICT, code.as_str(), message)
            }
            ServiceError::Refused(k) => ApiError {
                kakaopay_code: k.code().map(|c| c.code()),
                ..ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "kakaopay_refused",
                    k.to_string(),
                )
            },
            ServiceError::Unavailable(k) => ApiError {
                kakaopay_code: k.code().map(|c| c.code()),
                ..ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "kakaopay_unavailable",
                    k.to_string(),
                )
            },
            ServiceError::RefundFailed {
                refund_id,
                code,
                message,
            } => {
                let kakaopay_code = match code {
                    crate::domain::FailureCode::KakaoPay(c) => Some(c),
                    _ => None,
                };
                ApiError {
                    kakaopay_code,
                    ..ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        if kakaopay_code.is_some() {
                            "kakaopay_refused"
                        } else {
                            "refund_failed"
                        },
                        format!("refund {refund_id} failed: {message}"),
                    )
                }
            }
            ServiceError::Incomplete { field, operation } => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "kakaopay_unavailable",
                format!("KakaoPay's {operation} answer lacks {field}; nothing was changed"),
            ),
            ServiceError::Store(StoreError::Transition(t)) => {
                ApiError::new(StatusCode::CONFLICT, "invalid_state", t.to_string())
            }
            ServiceError::Store(s @ StoreError::Corrupt { .. }) => {
                // Permanent until an operator repairs the row: not "retry later".
                tracing::error!(error = %s, "corrupt ledger row");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ledger_corrupt",
                    format!("{s}; the ledger refuses to guess, an operator must repair it"),
                )
            }
            ServiceError::Store(s) => {
                tracing::error!(error = %s, "database failure");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database is unavailable; retry later",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                field: self.field,
                kakaopay_code: self.kakaopay_code,
                request_id: super::request_id::current(),
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// Parses a JSON body, naming the field that is wrong.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "the request body must be a JSON object",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner().to_string();
        let path = e.path().to_string();
        let field = if path == "." || path.is_empty() {
            // "missing field `x`" / "unknown field `x`, expected …"
            inner.split('`').nth(1).map(str::to_owned)
        } else {
            Some(path)
        };
        if e.inner().is_syntax() || e.inner().is_eof() {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the request body is not valid JSON: {inner}"),
            );
        }
        match field {
            Some(f) => ApiError::invalid(f.clone(), format!("{f}: {inner}")),
            None => ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", inner),
        }
    })
}
