//! Webhook endpoints (contract §6): create (the secret shown once), list, read, delete, rotate.

use super::AppState;
use super::error::{ApiError, ErrorBody, parse_json};
use super::views::time;
use crate::domain::{Destination, EventSelection, WebhookEndpoint, WebhookEndpointId};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The longest description.
const MAX_DESCRIPTION: usize = 500;

/// Body of `POST /api/v1/webhook_endpoints`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateEndpointBody {
    /// Where deliveries go: https to a public host (http and private hosts only with
    /// `--webhook-allow-private` or a sandbox KakaoPay).
    pub(crate) url: String,
    /// Event types to receive, or `["*"]` for all (the default).
    #[serde(default)]
    pub(crate) events: Option<Vec<String>>,
    /// For people, up to 500 characters.
    #[serde(default)]
    pub(crate) description: Option<String>,
}

/// A webhook endpoint.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EndpointView {
    /// `we_…`.
    pub(crate) id: String,
    /// Where deliveries go.
    pub(crate) url: String,
    /// The event types it receives (`["*"]`: all).
    pub(crate) events: Vec<&'static str>,
    /// For people.
    pub(crate) description: Option<String>,
    /// `enabled` or `disabled`.
    pub(crate) status: &'static str,
    /// Why it was disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) disabled_reason: Option<String>,
    /// The signing secret (`whsec_…`): only in the answers of create and rotate_secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) secret: Option<String>,
    /// Until when the secret before the last rotation still signs alongside.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) previous_secret_expires_at: Option<String>,
    /// Created (KST).
    pub(crate) created_at: String,
}

impl EndpointView {
    fn new(e: &WebhookEndpoint, secret: Option<&kpay_webhooks::Secret>) -> Self {
        Self {
            id: e.id.to_string(),
            url: e.url.as_str().to_owned(),
            events: e.events.names(),
            description: e.description.clone(),
            status: e.status.into(),
            disabled_reason: e.disabled_reason.clone(),
            secret: secret.map(kpay_webhooks::Secret::expose),
            previous_secret_expires_at: e.previous_secret.as_ref().map(|(_, t)| time(*t)),
            created_at: time(e.created_at),
        }
    }
}

/// The endpoints.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EndpointListView {
    /// Oldest first.
    pub(crate) data: Vec<EndpointView>,
}

fn endpoint_id(id: &str) -> Result<WebhookEndpointId, ApiError> {
    WebhookEndpointId::parse(id)
        .map_err(|_| ApiError::from(crate::service::ServiceError::NotFound(id.to_owned())))
}

/// Adds an endpoint; the answer carries its signing secret, shown only here.
#[utoipa::path(post, path = "/api/v1/webhook_endpoints", tag = "webhooks", request_body = CreateEndpointBody,
    responses(
        (status = 201, description = "Created; keep `secret` to verify deliveries", body = EndpointView),
        (status = 400, description = "Invalid request (names the field: url, events, description)", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn create_endpoint(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: CreateEndpointBody = parse_json(&body)?;
    let url = Destination::parse(&body.url, state.services.webhooks_local())
        .map_err(|e| ApiError::invalid("url", e.to_string()))?;
    let events = match &body.events {
        None => EventSelection::All,
        Some(list) => EventSelection::parse(list).map_err(|m| ApiError::invalid("events", m))?,
    };
    let description = match body.description.map(|d| d.trim().to_owned()) {
        Some(d) if d.chars().count() > MAX_DESCRIPTION => {
            return Err(ApiError::invalid(
                "description",
                format!("description: at most {MAX_DESCRIPTION} characters"),
            ));
        }
        Some(d) if d.chars().any(char::is_control) => {
            return Err(ApiError::invalid(
                "description",
                "description: no control characters",
            ));
        }
        Some(d) if !d.is_empty() => Some(d),
        _ => None,
    };
    let (e, secret) = state
        .services
        .create_endpoint(url, events, description)
        .await?;
    Ok((
        StatusCode::CREATED,
        [(
            header::LOCATION,
            format!("/api/v1/webhook_endpoints/{}", e.id),
        )],
        Json(EndpointView::new(&e, Some(&secret))),
    )
        .into_response())
}

/// Lists the endpoints.
#[utoipa::path(get, path = "/api/v1/webhook_endpoints", tag = "webhooks",
    responses((status = 200, body = EndpointListView), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list_endpoints(
    State(state): State<AppState>,
) -> Result<Json<EndpointListView>, ApiError> {
    let list = state.services.endpoints().await?;
    Ok(Json(EndpointListView {
        data: list.iter().map(|e| EndpointView::new(e, None)).collect(),
    }))
}

/// Reads an endpoint (never its secret).
#[utoipa::path(get, path = "/api/v1/webhook_endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id")),
    responses((status = 200, body = EndpointView), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_endpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<EndpointView>, ApiError> {
    let e = state.services.endpoint(&endpoint_id(&id)?).await?;
    Ok(Json(EndpointView::new(&e, None)))
}

/// Removes an endpoint: nothing more is delivered to it.
#[utoipa::path(delete, path = "/api/v1/webhook_endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id")),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn delete_endpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.services.delete_endpoint(&endpoint_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret (shown only here); the old one keeps signing alongside for 24 hours.
#[utoipa::path(post, path = "/api/v1/webhook_endpoints/{id}/rotate_secret", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id")),
    responses((status = 200, body = EndpointView), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn rotate_secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<EndpointView>, ApiError> {
    let (e, secret) = state
        .services
        .rotate_endpoint_secret(&endpoint_id(&id)?)
        .await?;
    Ok(Json(EndpointView::new(&e, Some(&secret))))
}
