//! Webhook deliveries (contract §6): every attempt per event and per endpoint, `redeliver`,
//! and switching an endpoint off and on.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::views::time;
use super::webhooks::{EndpointView, endpoint_id};
use crate::domain::{EventId, Timestamp};
use crate::service::ServiceError;
use crate::store::DeliveryRecord;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// One attempt of a delivery.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AttemptView {
    /// Its number in its round (a redeliver starts a new round at 1).
    pub(crate) attempt: i64,
    /// When it was sent (KST).
    pub(crate) sent_at: String,
    /// Send to last byte read, in milliseconds.
    pub(crate) latency_ms: i64,
    /// The receiver's status code; absent when none came back.
    pub(crate) status_code: Option<i64>,
    /// What went wrong (timeout, connection refused, a non-2xx).
    pub(crate) error: Option<String>,
    /// The first bytes (up to 1 KiB) of the receiver's answer.
    pub(crate) response: Option<String>,
}

/// An event's delivery to one endpoint.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct DeliveryView {
    /// The event (`webhook-id`).
    pub(crate) event_id: String,
    /// The endpoint.
    pub(crate) endpoint_id: String,
    /// `pending` (an attempt is due), `succeeded` (a 2xx came back) or `failed` (the schedule
    /// ran out, or the endpoint was disabled or removed).
    pub(crate) status: &'static str,
    /// Attempts in this round.
    pub(crate) attempts: u32,
    /// When the next attempt is due (pending only).
    pub(crate) next_attempt_at: Option<String>,
    /// The last attempt's status code.
    pub(crate) last_status_code: Option<u16>,
    /// The last attempt's error.
    pub(crate) last_error: Option<String>,
    /// When a 2xx came back.
    pub(crate) delivered_at: Option<String>,
    /// Every attempt, oldest first (per event only; empty in an endpoint's list).
    pub(crate) history: Vec<AttemptView>,
}

impl DeliveryView {
    pub(crate) fn new(d: &DeliveryRecord) -> Self {
        let at = |ms| Timestamp::from_millis(ms).map(time).unwrap_or_default();
        Self {
            event_id: d.event_id.to_string(),
            endpoint_id: d.endpoint_id.clone(),
            status: d.status.into(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at.map(time),
            last_status_code: d.last_status_code,
            last_error: d.last_error.clone(),
            delivered_at: d.delivered_at.map(time),
            history: d
                .history
                .iter()
                .map(|a| AttemptView {
                    attempt: a.attempt,
                    sent_at: at(a.started_at),
                    latency_ms: a.latency_ms,
                    status_code: a.status_code,
                    error: a.error.clone(),
                    response: a.response.clone(),
                })
                .collect(),
        }
    }
}

/// A list of deliveries.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct DeliveryListView {
    /// The deliveries.
    pub(crate) data: Vec<DeliveryView>,
}

/// The answer of `redeliver`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RedeliverView {
    /// The event.
    pub(crate) event_id: String,
    /// The endpoints it is being sent to again (enabled ones that want its type).
    pub(crate) endpoints: Vec<String>,
}

fn event_id(id: &str) -> Result<EventId, ApiError> {
    EventId::parse(id).map_err(|_| ApiError::from(ServiceError::NotFound(id.to_owned())))
}

/// Every delivery of an event, each with its attempts.
#[utoipa::path(get, path = "/api/v1/events/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Event id")),
    responses((status = 200, body = DeliveryListView), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn event_deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeliveryListView>, ApiError> {
    let list = state.services.event_deliveries(&event_id(&id)?).await?;
    Ok(Json(DeliveryListView {
        data: list.iter().map(DeliveryView::new).collect(),
    }))
}

/// Sends an event again, now, to every enabled endpoint that wants it (a new round of the
/// retry schedule, the same `webhook-id`).
#[utoipa::path(post, path = "/api/v1/events/{id}/redeliver", tag = "webhooks",
    params(("id" = String, Path, description = "Event id")),
    responses((status = 202, body = RedeliverView), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn redeliver(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<RedeliverView>), ApiError> {
    let id = event_id(&id)?;
    let to = state.services.redeliver(&id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RedeliverView {
            event_id: id.to_string(),
            endpoints: to.iter().map(ToString::to_string).collect(),
        }),
    ))
}

/// Query of an endpoint's deliveries.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeliveriesQuery {
    /// How many, newest first: 1–100 (default 20).
    pub(crate) limit: Option<i64>,
}

/// An endpoint's latest deliveries, newest first.
#[utoipa::path(get, path = "/api/v1/webhook_endpoints/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id"), DeliveriesQuery),
    responses((status = 200, body = DeliveryListView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn endpoint_deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<DeliveriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeliveryListView>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let limit = match q.limit {
        None => 20,
        Some(n @ 1..=100) => n,
        Some(_) => return Err(ApiError::invalid("limit", "limit: 1 to 100")),
    };
    let list = state
        .services
        .endpoint_deliveries(&endpoint_id(&id)?, limit)
        .await?;
    Ok(Json(DeliveryListView {
        data: list.iter().map(DeliveryView::new).collect(),
    }))
}

/// Stops deliveries to an endpoint; its pending ones end as failed (`redeliver` sends an event
/// again).
#[utoipa::path(post, path = "/api/v1/webhook_endpoints/{id}/disable", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id")),
    responses((status = 200, body = EndpointView), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn disable_endpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<EndpointView>, ApiError> {
    let e = state
        .services
        .set_endpoint_enabled(&endpoint_id(&id)?, false)
        .await?;
    Ok(Json(EndpointView::new(&e, None)))
}

/// Delivers to an endpoint again (from the events that happen from now on; its past failures
/// are forgotten).
#[utoipa::path(post, path = "/api/v1/webhook_endpoints/{id}/enable", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id")),
    responses((status = 200, body = EndpointView), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn enable_endpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<EndpointView>, ApiError> {
    let e = state
        .services
        .set_endpoint_enabled(&endpoint_id(&id)?, true)
        .await?;
    Ok(Json(EndpointView::new(&e, None)))
}
