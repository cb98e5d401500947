//! HTTP: handlers parse and answer; everything else happens in [`crate::service`].
//!
//! | path | who | what |
//! |---|---|---|
//! | `/api/v1/…` | the merchant's backend (API key) | payments: create, read, list, refund, events, sync; subscriptions: create, read, list, charges, charge, cancel, sync; webhook endpoints: create, list, read, delete, rotate_secret, disable, enable, deliveries; events: feed (long poll), read, deliveries, redeliver |
//! | `/pay/{id}/…` | the buyer's browser (public) | KakaoPay's redirects: approve, cancel, fail; result pages |
//! | `/healthz`, `/readyz`, `/metrics`, `/openapi.json` | operators | operations |
//! | `/sandbox/…` | tests, demos | the built-in KakaoPay sandbox, when no key is configured |

pub(crate) mod api;
pub(crate) mod auth;
pub(crate) mod body;
pub(crate) mod deliveries;
pub(crate) mod error;
pub(crate) mod idempotency;
pub(crate) mod ops;
pub(crate) mod request_id;
pub(crate) mod subscriptions;
pub(crate) mod test_clock;
pub(crate) mod views;
pub(crate) mod webhooks;

pub(crate) use error::ApiError;

use crate::metrics::Metrics;
use crate::service::Services;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use std::sync::Arc;

/// Shared state of the handlers.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    /// The use cases.
    pub(crate) services: Services,
    /// Metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// API key verification.
    pub(crate) api_keys: Arc<auth::ApiKeys>,
    /// For readiness probes.
    pub(crate) http: reqwest::Client,
}

/// The OpenAPI document, generated from the handlers' annotations.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "kpay merchant API", description = "KakaoPay payments for your shop: create a payment, send the buyer to KakaoPay, get the result, refund. Errors are `{\"error\":{\"code\",\"message\",\"field\"?,\"kakaopay_code\"?}}`."),
    paths(
        api::create_payment, api::list_payments, api::get_payment, api::cancel_payment, api::payment_events, api::sync_payment,
        subscriptions::create_subscription, subscriptions::list_subscriptions, subscriptions::get_subscription,
        subscriptions::list_charges, subscriptions::subscription_events, subscriptions::extra_charge,
        subscriptions::cancel_subscription, subscriptions::sync_subscription,
        webhooks::create_endpoint, webhooks::list_endpoints, webhooks::get_endpoint,
        webhooks::delete_endpoint, webhooks::rotate_secret, webhooks::list_events, webhooks::get_event,
        deliveries::event_deliveries, deliveries::redeliver, deliveries::endpoint_deliveries,
        deliveries::disable_endpoint, deliveries::enable_endpoint,
        test_clock::now, test_clock::advance,
        ops::healthz, ops::readyz, ops::metrics, ops::openapi,
    ),
    modifiers(&BearerAuth),
    tags((name = "payments", description = "Merchant API (Authorization: Bearer <api key>)"), (name = "subscriptions", description = "Subscriptions (정기 결제): registration, renewals, dunning, cancel (Authorization: Bearer <api key>)"), (name = "webhooks", description = "Webhook endpoints: signed deliveries of events to your backend (Standard Webhooks; Authorization: Bearer <api key>)"), (name = "operations", description = "Health and monitoring"), (name = "test clock", description = "Only while KakaoPay is a sandbox: move time and run what became due")),
)]
pub(crate) struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

async fn count_requests(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let resp = next.run(req).await;
    metrics.observe_http(&route, resp.status().as_u16());
    resp
}

/// The merchant API routes (behind the API key and idempotency layers).
fn api_routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/payments",
            post(api::create_payment).get(api::list_payments),
        )
        .route("/api/v1/payments/{id}", get(api::get_payment))
        .route("/api/v1/payments/{id}/cancel", post(api::cancel_payment))
        .route("/api/v1/payments/{id}/events", get(api::payment_events))
        .route("/api/v1/payments/{id}/sync", post(api::sync_payment))
        .route(
            "/api/v1/subscriptions",
            post(subscriptions::create_subscription).get(subscriptions::list_subscriptions),
        )
        .route(
            "/api/v1/subscriptions/{id}",
            get(subscriptions::get_subscription),
        )
        .route(
            "/api/v1/subscriptions/{id}/charges",
            get(subscriptions::list_charges),
        )
        .route(
            "/api/v1/subscriptions/{id}/events",
            get(subscriptions::subscription_events),
        )
        .route(
            "/api/v1/subscriptions/{id}/charge",
            post(subscriptions::extra_charge),
        )
        .route(
            "/api/v1/subscriptions/{id}/cancel",
            post(subscriptions::cancel_subscription),
        )
        .route(
            "/api/v1/subscriptions/{id}/sync",
            post(subscriptions::sync_subscription),
        )
        .route(
            "/api/v1/webhook_endpoints",
            post(webhooks::create_endpoint).get(webhooks::list_endpoints),
        )
        .route(
            "/api/v1/webhook_endpoints/{id}",
            get(webhooks::get_endpoint).delete(webhooks::delete_endpoint),
        )
        .route(
            "/api/v1/webhook_endpoints/{id}/rotate_secret",
            post(webhooks::rotate_secret),
        )
        .route("/api/v1/events", get(webhooks::list_events))
        .route("/api/v1/events/{id}", get(webhooks::get_event))
        .route(
            "/api/v1/events/{id}/deliveries",
            get(deliveries::event_deliveries),
        )
        .route("/api/v1/events/{id}/redeliver", post(deliveries::redeliver))
        .route(
            "/api/v1/webhook_endpoints/{id}/deliveries",
            get(deliveries::endpoint_deliveries),
        )
        .route(
            "/api/v1/webhook_endpoints/{id}/disable",
            post(deliveries::disable_endpoint),
        )
        .route(
            "/api/v1/webhook_endpoints/{id}/enable",
            post(deliveries::enable_endpoint),
        )
        .route("/api/v1/test/clock", get(test_clock::now))
        .route("/api/v1/test/clock/advance", post(test_clock::advance))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::idempotency,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ))
        .layer(middleware::from_fn(body::buffer))
}

/// Every route of the server: the merchant API and operations, and `pages` (the browser's routes,
/// which the caller brings: `http` does not depend on `web`).
pub(crate) fn router(state: AppState, pages: Router<AppState>) -> Router {
    let metrics = Arc::clone(&state.metrics);
    Router::new()
        .merge(api_routes(&state))
        .merge(pages)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .fallback(not_found)
        .with_state(state)
        .layer(middleware::from_fn_with_state(metrics, count_requests))
}

async fn not_found(uri: axum::http::Uri) -> Response {
    use axum::response::IntoResponse;
    if uri.path().starts_with("/api/") {
        error::ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            format!("no route {}", uri.path()),
        )
        .into_response()
    } else {
        (axum::http::StatusCode::NOT_FOUND, axum::response::Html("<!doctype html><html lang=\"ko\"><meta charset=\"utf-8\"><title>404</title><p>페이지를 찾을 수 없습니다. <a href=\"/\">처음으로</a></p></html>")).into_response()
    }
}
