//! The shop as a reference webhook receiver. At start (KakaoPay a sandbox) it registers its own
//! endpoint through the merchant API, as a merchant's backend would, and keeps the endpoint's
//! id and secret; `POST /shop/webhooks` verifies every delivery (Standard Webhooks, 5 minutes
//! of tolerance), answers 401 to anything unsigned, and fulfils an order from a verified
//! `payment.approved` whose payment and amount are the order's — not from the buyer's
//! redirect. Fulfilment happens once, whatever the retries (keyed by the order).

use super::ShopState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use kpay_webhooks::Secret;
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

/// The path deliveries come to.
pub(crate) const PATH: &str = "/shop/webhooks";

/// The secrets the shop verifies with (the endpoint's, once registered).
#[derive(Debug, Default)]
pub(crate) struct ShopHook {
    secrets: RwLock<Vec<Secret>>,
}

#[derive(Debug, Deserialize)]
struct Delivery {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: DeliveryData,
}

#[derive(Debug, Deserialize)]
struct DeliveryData {
    object: Object,
}

#[derive(Debug, Deserialize)]
struct Object {
    id: String,
    #[serde(default)]
    partner_order_id: Option<String>,
    #[serde(default)]
    amount: Option<super::api::Amounts>,
}

#[derive(Debug, Deserialize)]
struct Created {
    id: String,
    secret: String,
}

impl ShopState {
    fn hook_url(&self) -> String {
        format!("{}{PATH}", self.api_base)
    }

    /// Registers the shop's endpoint (or finds the one registered before) and loads its
    /// secret; tries for a minute while the server comes up.
    pub(crate) async fn register_webhook(self) {
        for _ in 0..120 {
            match self.try_register().await {
                Ok(id) => {
                    tracing::info!(endpoint = %id, "the demo shop receives webhooks at {PATH}");
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "the demo shop's webhook endpoint is not registered yet");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        tracing::warn!(
            "the demo shop could not register its webhook endpoint; its orders show payments without fulfilment"
        );
    }

    async fn try_register(&self) -> Result<String, String> {
        let url = self.hook_url();
        let key = self.api_key.expose_secret();
        if let Some((id, secret)) = self.orders.hook(&url).await.map_err(|e| e.to_string())? {
            let r = self
                .http
                .get(format!("{}/api/v1/webhook_endpoints/{id}", self.api_base))
                .bearer_auth(key)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if r.status().is_success() {
                self.keep(&secret)?;
                return Ok(id);
            }
        }
        let r = self
            .http
            .post(format!("{}/api/v1/webhook_endpoints", self.api_base))
            .bearer_auth(key)
            .json(&serde_json::json!({
                "url": url,
                "events": ["payment.approved"],
                "description": "kpay demo shop: fulfils orders",
            }))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("the merchant API answered {}", r.status()));
        }
        let created: Created = r.json().await.map_err(|e| e.to_string())?;
        self.orders
            .set_hook(&url, &created.id, &created.secret)
            .await
            .map_err(|e| e.to_string())?;
        self.keep(&created.secret)?;
        Ok(created.id)
    }

    fn keep(&self, secret: &str) -> Result<(), String> {
        let s = Secret::parse(secret).map_err(|e| e.to_string())?;
        *self
            .hook
            .secrets
            .write()
            .unwrap_or_else(PoisonError::into_inner) = vec![s];
        Ok(())
    }
}

/// `POST /shop/webhooks`.
pub(crate) async fn receive(
    State(s): State<ShopState>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let secrets = s
        .hook
        .secrets
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let refs: Vec<&Secret> = secrets.iter().collect();
    if let Err(e) = kpay_webhooks::verify(
        &refs,
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
        &body,
        chrono::Utc::now().timestamp(),
    ) {
        tracing::warn!(error = %e, "the demo shop refused an unverified webhook");
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(d) = serde_json::from_slice::<Delivery>(&body) else {
        tracing::warn!("the demo shop got a signed webhook it cannot read");
        return StatusCode::BAD_REQUEST;
    };
    if d.kind != "payment.approved" {
        return StatusCode::NO_CONTENT;
    }
    let Some(order_id) = d.data.object.partner_order_id.as_deref() else {
        return StatusCode::NO_CONTENT;
    };
    let order = match s.orders.get(order_id).await {
        Ok(Some(o)) => o,
        // Not a shop order (a payment made through the API directly).
        Ok(None) => return StatusCode::NO_CONTENT,
        // Try again later: a non-2xx makes the server retry.
        Err(e) => {
            tracing::error!(error = %e, "the demo shop could not read its order");
            return StatusCode::SERVICE_UNAVAILABLE;
        }
    };
    let paid = d.data.object.amount.map(|a| a.total);
    if order.payment_id.as_deref() != Some(d.data.object.id.as_str()) || paid != Some(order.total) {
        tracing::error!(order = %order.id, payment = %d.data.object.id, ?paid, expected = order.total,
            "a payment.approved does not match the shop's order; not fulfilled");
        return StatusCode::NO_CONTENT;
    }
    match s
        .orders
        .fulfil(&order.id, &d.id, crate::domain::Timestamp::now().millis())
        .await
    {
        Ok(true) => {
            tracing::info!(order = %order.id, event = %d.id, "demo shop order fulfilled by its webhook");
            StatusCode::NO_CONTENT
        }
        Ok(false) => StatusCode::NO_CONTENT,
        Err(e) => {
            tracing::error!(error = %e, "the demo shop could not fulfil its order");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}
