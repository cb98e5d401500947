//! The merchant's webhook endpoints: stored with their sealed secrets, listed, rotated, removed.

use super::rows::Columns;
use super::{Store, StoreError, read, write, write_tx};
use crate::domain::{
    Destination, EndpointStatus, EventSelection, Timestamp, WebhookEndpoint, WebhookEndpointId,
};

const ENDPOINT_COLUMNS: &str = "id, url, events, description, status, disabled_reason, secret_sealed, previous_secret_sealed, previous_until, failing_since, created_at, updated_at";

#[derive(Debug, sqlx::FromRow)]
struct EndpointRow {
    id: String,
    url: String,
    events: String,
    description: Option<String>,
    status: String,
    disabled_reason: Option<String>,
    secret_sealed: String,
    previous_secret_sealed: Option<String>,
    previous_until: Option<i64>,
    failing_since: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<EndpointRow> for WebhookEndpoint {
    type Error = StoreError;

    fn try_from(r: EndpointRow) -> Result<Self, StoreError> {
        let c = Columns {
            table: "webhook_endpoints",
            id: &r.id,
        };
        let time = |field, ms: i64| Timestamp::from_millis(ms).ok_or_else(|| c.corrupt(field));
        let names: Vec<&str> = r.events.split(',').collect();
        Ok(WebhookEndpoint {
            id: WebhookEndpointId::parse(&r.id).map_err(|_| c.corrupt("id"))?,
            // Stored URLs were checked when created; reading never re-judges them (the
            // sender checks them again for the mode it runs in).
            url: Destination::stored(&r.url).ok_or_else(|| c.corrupt("url"))?,
            events: EventSelection::parse(&names).map_err(|_| c.corrupt("events"))?,
            description: r.description,
            status: r
                .status
                .parse::<EndpointStatus>()
                .map_err(|_| c.corrupt("status"))?,
            disabled_reason: r.disabled_reason,
            secret_sealed: r.secret_sealed,
            previous_secret: match (r.previous_secret_sealed, r.previous_until) {
                (Some(s), Some(until)) => Some((s, time("previous_until", until)?)),
                _ => None,
            },
            failing_since: r
                .failing_since
                .map(|t| time("failing_since", t))
                .transpose()?,
            created_at: time("created_at", r.created_at)?,
            updated_at: time("updated_at", r.updated_at)?,
        })
    }
}

impl Store {
    /// Stores a new endpoint.
    pub async fn insert_endpoint(&self, e: &WebhookEndpoint) -> Result<(), StoreError> {
        let e = e.clone();
        write!(self, |conn| {
            sqlx::query(&format!(
                "INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ))
            .bind(e.id.as_str())
            .bind(e.url.as_str())
            .bind(e.events.names().join(","))
            .bind(e.description.clone())
            .bind(<&str>::from(e.status))
            .bind(e.disabled_reason.clone())
            .bind(e.secret_sealed.clone())
            .bind(e.previous_secret.as_ref().map(|(s, _)| s.clone()))
            .bind(e.previous_secret.as_ref().map(|(_, t)| t.millis()))
            .bind(e.failing_since.map(Timestamp::millis))
            .bind(e.created_at.millis())
            .bind(e.updated_at.millis())
            .execute(&mut *conn)
            .await
            .map(|_| ())
        })
    }

    /// One endpoint.
    pub async fn endpoint(
        &self,
        id: &WebhookEndpointId,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1");
        let row = read!(self, pool => sqlx::query_as::<_, EndpointRow>(&sql).bind(id.as_str()).fetch_optional(pool).await)?;
        row.map(WebhookEndpoint::try_from).transpose()
    }

    /// Every endpoint, oldest first (a merchant has a handful). A row that cannot be read is
    /// logged and left out: one broken endpoint must not stop the others.
    pub async fn endpoints(&self) -> Result<Vec<WebhookEndpoint>, StoreError> {
        Ok(self.endpoints_checked().await?.0)
    }

    /// Every endpoint that can be read, and the ids of those that cannot.
    pub async fn endpoints_checked(
        &self,
    ) -> Result<(Vec<WebhookEndpoint>, Vec<String>), StoreError> {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at, id LIMIT 10000"
        );
        let rows =
            read!(self, pool => sqlx::query_as::<_, EndpointRow>(&sql).fetch_all(pool).await)?;
        let (mut good, mut bad) = (Vec::with_capacity(rows.len()), Vec::new());
        for r in rows {
            let id = r.id.clone();
            match WebhookEndpoint::try_from(r) {
                Ok(e) => good.push(e),
                Err(e) => {
                    tracing::error!(endpoint = %id, error = %e, "a webhook endpoint cannot be read; left out");
                    bad.push(id);
                }
            }
        }
        Ok((good, bad))
    }

    /// Removes an endpoint; `false` if there was none. Its pending deliveries end as failed
    /// (their attempts stay readable per event).
    pub async fn delete_endpoint(
        &self,
        id: &WebhookEndpointId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let id = id.to_string();
        write_tx!(self, |conn| {
            super::deliveries::end_pending!(conn, id.as_str(), "endpoint deleted", now)?;
            sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
                .bind(id.as_str())
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected() == 1)
        })
    }

    /// Enables or disables an endpoint (`reason`: why it was disabled). Disabling ends its
    /// pending deliveries as failed (`redeliver` sends an event again); enabling forgets past
    /// failures. `false` if there is no such endpoint.
    pub async fn set_endpoint_status(
        &self,
        id: &WebhookEndpointId,
        status: EndpointStatus,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let (id, reason) = (id.to_string(), reason.map(str::to_owned));
        write_tx!(self, |conn| {
            // Enabling too: what a fan-out racing the disable left pending belongs to the
            // disabled time (enabled, an endpoint gets the events from then on).
            super::deliveries::end_pending!(conn, id.as_str(), "endpoint disabled", now)?;
            sqlx::query(
                "UPDATE webhook_endpoints SET status = $1, disabled_reason = $2, failing_since = NULL, \
                 updated_at = $3 WHERE id = $4",
            )
            .bind(<&str>::from(status))
            .bind(reason.as_deref())
            .bind(now.millis())
            .bind(id.as_str())
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected() == 1)
        })
    }

    /// A new secret; the current one becomes the previous, signing until `previous_until`.
    /// `false` if there is no such endpoint.
    pub async fn rotate_endpoint_secret(
        &self,
        id: &WebhookEndpointId,
        sealed: &str,
        previous_until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let (id, sealed) = (id.to_string(), sealed.to_owned());
        write!(self, |conn| {
            sqlx::query(
                "UPDATE webhook_endpoints SET previous_secret_sealed = secret_sealed, previous_until = $1, \
                 secret_sealed = $2, updated_at = $3 WHERE id = $4",
            )
            .bind(previous_until.millis())
            .bind(sealed.as_str())
            .bind(now.millis())
            .bind(id.as_str())
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected() == 1)
        })
    }
}
