//! The merchant's webhook endpoints: created with a fresh signing secret (shown once, stored
//! sealed), listed, read, removed, and rotated (the old secret keeps signing for 24 hours, so a
//! receiver can switch without losing a delivery).

use super::{ServiceError, Services};
use crate::domain::{
    Destination, EndpointStatus, EventSelection, WebhookEndpoint, WebhookEndpointId,
};
use kpay_webhooks::Secret;
use std::time::Duration;

/// How long a rotated-out secret keeps signing alongside the new one.
pub(crate) const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3_600);

impl Services {
    /// Whether destinations may be http and private (local development).
    pub(crate) fn webhooks_local(&self) -> bool {
        self.settings.webhooks_local
    }

    fn seal_secret(&self, id: &WebhookEndpointId, s: &Secret) -> Result<String, ServiceError> {
        self.settings
            .vault
            .seal(id.as_str(), &s.expose())
            .map_err(|e| ServiceError::Invalid {
                field: "secret",
                message: e.to_string(),
            })
    }

    /// A new endpoint and its secret (the only time the secret is given out).
    pub(crate) async fn create_endpoint(
        &self,
        url: Destination,
        events: EventSelection,
        description: Option<String>,
    ) -> Result<(WebhookEndpoint, Secret), ServiceError> {
        let id = WebhookEndpointId::generate();
        let secret = Secret::generate();
        let now = self.now();
        let e = WebhookEndpoint {
            secret_sealed: self.seal_secret(&id, &secret)?,
            id,
            url,
            events,
            description,
            status: EndpointStatus::Enabled,
            disabled_reason: None,
            previous_secret: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_endpoint(&e).await?;
        tracing::info!(endpoint = %e.id, url = e.url.as_str(), "webhook endpoint created");
        Ok((e, secret))
    }

    /// Every endpoint.
    pub(crate) async fn endpoints(&self) -> Result<Vec<WebhookEndpoint>, ServiceError> {
        Ok(self.store.endpoints().await?)
    }

    /// One endpoint.
    pub(crate) async fn endpoint(
        &self,
        id: &WebhookEndpointId,
    ) -> Result<WebhookEndpoint, ServiceError> {
        self.store
            .endpoint(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(id.to_string()))
    }

    /// Removes an endpoint: nothing more is delivered to it.
    pub(crate) async fn delete_endpoint(&self, id: &WebhookEndpointId) -> Result<(), ServiceError> {
        if self.store.delete_endpoint(id, self.now()).await? {
            tracing::info!(endpoint = %id, "webhook endpoint removed");
            Ok(())
        } else {
            Err(ServiceError::NotFound(id.to_string()))
        }
    }

    /// A new secret; the current one signs alongside it for [`ROTATION_OVERLAP`].
    pub(crate) async fn rotate_endpoint_secret(
        &self,
        id: &WebhookEndpointId,
    ) -> Result<(WebhookEndpoint, Secret), ServiceError> {
        let secret = Secret::generate();
        let sealed = self.seal_secret(id, &secret)?;
        let now = self.now();
        if !self
            .store
            .rotate_endpoint_secret(id, &sealed, now.plus(ROTATION_OVERLAP), now)
            .await?
        {
            return Err(ServiceError::NotFound(id.to_string()));
        }
        tracing::info!(endpoint = %id, "webhook endpoint secret rotated");
        Ok((self.endpoint(id).await?, secret))
    }
}

impl Services {
    /// A page of events, oldest first.
    pub(crate) async fn event_feed(
        &self,
        after: Option<(i64, i64)>,
        kind: Option<crate::domain::EventType>,
        limit: u32,
    ) -> Result<crate::store::EventPage, ServiceError> {
        Ok(self.store.events_page(after, kind, limit).await?)
    }

    /// One event of the feed.
    pub(crate) async fn feed_event(
        &self,
        id: &crate::domain::EventId,
    ) -> Result<crate::store::EventRecord, ServiceError> {
        self.store
            .event(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(id.to_string()))
    }
}

impl Services {
    /// Sends `id` again to every enabled endpoint that wants it (whenever it was created); the
    /// deliveries start new rounds of the schedule. Answers the endpoints it goes to.
    pub(crate) async fn redeliver(
        &self,
        id: &crate::domain::EventId,
    ) -> Result<Vec<WebhookEndpointId>, ServiceError> {
        let event = self.feed_event(id).await?;
        let to: Vec<WebhookEndpointId> = self
            .store
            .endpoints()
            .await?
            .into_iter()
            .filter(|e| e.status == EndpointStatus::Enabled && e.events.wants(event.kind))
            .map(|e| e.id)
            .collect();
        self.store.redeliver(&event, to.clone(), self.now()).await?;
        self.deliveries_due.notify_one();
        tracing::info!(event = %id, endpoints = to.len(), "event redelivery asked");
        Ok(to)
    }

    /// The deliveries of one event, with every attempt.
    pub(crate) async fn event_deliveries(
        &self,
        id: &crate::domain::EventId,
    ) -> Result<Vec<crate::store::DeliveryRecord>, ServiceError> {
        self.feed_event(id).await?;
        Ok(self.store.event_deliveries(id).await?)
    }

    /// An endpoint's latest deliveries, newest first.
    pub(crate) async fn endpoint_deliveries(
        &self,
        id: &WebhookEndpointId,
        limit: i64,
    ) -> Result<Vec<crate::store::DeliveryRecord>, ServiceError> {
        self.endpoint(id).await?;
        Ok(self.store.endpoint_deliveries(id, limit).await?)
    }

    /// Enables or disables an endpoint by the merchant's hand. Disabling ends its pending
    /// deliveries (failed, "endpoint disabled"); enabling forgets its failures.
    pub(crate) async fn set_endpoint_enabled(
        &self,
        id: &WebhookEndpointId,
        enabled: bool,
    ) -> Result<WebhookEndpoint, ServiceError> {
        let (status, reason) = if enabled {
            (EndpointStatus::Enabled, None)
        } else {
            (EndpointStatus::Disabled, Some("disabled by the merchant"))
        };
        if !self
            .store
            .set_endpoint_status(id, status, reason, self.now())
            .await?
        {
            return Err(ServiceError::NotFound(id.to_string()));
        }
        tracing::info!(endpoint = %id, %status, "webhook endpoint status set");
        self.endpoint(id).await
    }
}
