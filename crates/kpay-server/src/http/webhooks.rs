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
use std::sync::Arc;
use std::time::Duration;

/// How often a long poll looks again.
const LONG_POLL_STEP: Duration = Duration::from_millis(200);

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
    /// Since when every delivery to it has failed (five days of that disable it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) failing_since: Option<String>,
    /// Created (KST).
    pub(crate) created_at: String,
}

impl EndpointView {
    pub(crate) fn new(e: &WebhookEndpoint, secret: Option<&kpay_webhooks::Secret>) -> Self {
        Self {
            id: e.id.to_string(),
            url: e.url.as_str().to_owned(),
            events: e.events.names(),
            description: e.description.clone(),
            status: e.status.into(),
            disabled_reason: e.disabled_reason.clone(),
            secret: secret.map(kpay_webhooks::Secret::expose),
            previous_secret_expires_at: e.previous_secret.as_ref().map(|(_, t)| time(*t)),
            failing_since: e.failing_since.map(time),
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

pub(crate) fn endpoint_id(id: &str) -> Result<WebhookEndpointId, ApiError> {
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

/// Query of `GET /api/v1/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventQuery {
    /// Only this event type (e.g. `payment.approved`).
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    /// Page size, 1–100 (default 20).
    pub(crate) limit: Option<i64>,
    /// From a previous page's `next_cursor`: the events after it.
    pub(crate) cursor: Option<String>,
    /// The same as `cursor` (the name `kpay listen` follows the feed with).
    pub(crate) after: Option<String>,
    /// Seconds to wait for an event when there is none yet (long polling, 0–60; default 0).
    pub(crate) wait: Option<i64>,
}

/// An event: what happened, and the object as the API showed it right after.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EventView {
    /// `evt_…`: the `webhook-id` of its deliveries.
    pub(crate) id: String,
    /// The event type.
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    /// When it happened (KST).
    pub(crate) created_at: String,
    /// `{"object": …}`: the payment (or subscription) as `GET` showed it then, with its
    /// `version`.
    #[schema(value_type = Object)]
    pub(crate) data: serde_json::Value,
}

impl EventView {
    fn new(e: &crate::store::EventRecord) -> Self {
        Self {
            id: e.id.to_string(),
            kind: e.kind.into(),
            created_at: time(e.created_at),
            data: serde_json::from_str(&e.data).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// A page of events.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EventPageView {
    /// Oldest first.
    pub(crate) data: Vec<EventView>,
    /// Pass as `cursor` for the events after these (also when this page is empty: `null` then).
    pub(crate) next_cursor: Option<String>,
}

/// Every event, oldest first: what webhooks deliver, to page through or follow.
#[utoipa::path(get, path = "/api/v1/events", tag = "webhooks", params(EventQuery),
    responses((status = 200, body = EventPageView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list_events(
    State(state): State<AppState>,
    query: Result<axum::extract::Query<EventQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EventPageView>, ApiError> {
    let axum::extract::Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let kind = q
        .kind
        .as_deref()
        .filter(|k| !k.is_empty())
        .map(|k| {
            k.parse::<crate::domain::EventType>()
                .map_err(|_| ApiError::invalid("type", format!("type: unknown event type {k:?}")))
        })
        .transpose()?;
    let limit = match q.limit {
        None => 20,
        Some(n @ 1..=100) => n as u32,
        Some(_) => {
            return Err(ApiError::invalid("limit", "limit: 1 to 100"));
        }
    };
    let after = match q
        .cursor
        .as_deref()
        .or(q.after.as_deref())
        .filter(|c| !c.is_empty())
    {
        None => None,
        Some(c) => Some(crate::store::parse_cursor(c).ok_or_else(|| {
            ApiError::invalid("cursor", "cursor: not a next_cursor of this feed")
        })?),
    };
    let wait = match q.wait {
        None => Duration::ZERO,
        Some(n @ 0..=60) => Duration::from_secs(n.unsigned_abs()),
        Some(_) => return Err(ApiError::invalid("wait", "wait: 0 to 60 seconds")),
    };
    // Long polling: the feed is read again every 200 ms until something comes or the wait
    // ends (a cheap indexed read; the writers are never waited on).
    let services = &state.services;
    let slot = match wait.is_zero() {
        true => None,
        false => Arc::clone(&services.long_polls).try_acquire_owned().ok(),
    };
    let until = tokio::time::Instant::now() + if slot.is_some() { wait } else { Duration::ZERO };
    let page = loop {
        let page = services.event_feed(after, kind, limit).await?;
        if !page.events.is_empty() || tokio::time::Instant::now() >= until {
            break page;
        }
        tokio::select! {
            () = services.stopping.cancelled() => break page,
            () = tokio::time::sleep(LONG_POLL_STEP.min(until - tokio::time::Instant::now())) => {}
        }
    };
    drop(slot);
    Ok(Json(EventPageView {
        data: page.events.iter().map(EventView::new).collect(),
        next_cursor: page.next,
    }))
}

/// One event.
#[utoipa::path(get, path = "/api/v1/events/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Event id")),
    responses((status = 200, body = EventView), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_event(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<EventView>, ApiError> {
    let id = crate::domain::EventId::parse(&id)
        .map_err(|_| ApiError::from(crate::service::ServiceError::NotFound(id.clone())))?;
    let e = state.services.feed_event(&id).await?;
    Ok(Json(EventView::new(&e)))
}
