//! The subscriptions API (contract §5): create, read, list, charges, extra charge, cancel, sync.

use super::AppState;
use super::error::{ApiError, ErrorBody, parse_json};
use crate::domain::{
    Amounts, Cadence, Channel, Charge, ChargeKind, ChargeStatus, Interval, Subscription,
    SubscriptionLogLine, SubscriptionStatus, Timestamp,
};
use crate::service::{CreateSubscription, IdempotencyKey, subscription_id};
use crate::store::SubscriptionFilter;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use kakaopay::{Amount, ItemName, PartnerUserId};
use serde::{Deserialize, Serialize};

/// The largest amount one charge may ask (KakaoPay's per-payment limit is the merchant's
/// contract; this bounds typos).
const MAX_AMOUNT: i64 = 100_000_000;

/// Body of `POST /api/v1/subscriptions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateSubscriptionBody {
    /// The buyer in your terms, 1–100 characters. KakaoPay binds the SID to it.
    pub(crate) partner_user_id: String,
    /// What is sold, 1–100 characters.
    pub(crate) item_name: String,
    /// Charged every period, in won (1 to 100,000,000).
    pub(crate) amount: i64,
    /// Its tax-free part (default 0).
    #[serde(default)]
    pub(crate) tax_free_amount: Option<i64>,
    /// Its VAT (default: KakaoPay's rule).
    #[serde(default)]
    pub(crate) vat_amount: Option<i64>,
    /// `day`, `week`, `month` or `year`.
    pub(crate) interval: String,
    /// How many intervals per period, 1–365 (default 1).
    #[serde(default)]
    pub(crate) interval_count: Option<i64>,
    /// Days before the first charge, 0–730 (default 0: the registration pays the first period;
    /// more: a 0-won registration, KakaoPay's SID-only `ISSUED_SID`).
    #[serde(default)]
    pub(crate) trial_days: Option<i64>,
    /// Which KakaoPay page: `pc` (default), `mobile` or `app`.
    #[serde(default)]
    pub(crate) channel: Option<Channel>,
    /// Where the buyer goes after registering.
    #[serde(default)]
    pub(crate) return_url: Option<String>,
}

/// Body of `POST /api/v1/subscriptions/{id}/charge`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChargeBody {
    /// In won (default: the subscription's amount).
    #[serde(default)]
    pub(crate) amount: Option<i64>,
    /// Item name (default: the subscription's).
    #[serde(default)]
    pub(crate) item_name: Option<String>,
}

/// Body of `POST /api/v1/subscriptions/{id}/cancel`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelSubscriptionBody {
    /// End when the current period ends instead of now (default false).
    #[serde(default)]
    pub(crate) at_period_end: Option<bool>,
}

/// Query of `GET /api/v1/subscriptions`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubscriptionQuery {
    /// Only this status.
    pub(crate) status: Option<String>,
    /// Page size, 1–100 (default 20).
    pub(crate) limit: Option<i64>,
    /// From a previous page's `next_cursor`.
    pub(crate) cursor: Option<String>,
    /// Exact subscription id or partner_user_id.
    pub(crate) q: Option<String>,
}

/// A subscription.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SubscriptionView {
    /// `sub_…`.
    pub(crate) id: String,
    /// Where it stands.
    #[schema(value_type = String, example = "active")]
    pub(crate) status: SubscriptionStatus,
    /// Grows with every change: of two copies, the larger is newer.
    pub(crate) version: i64,
    /// Subscription CID.
    pub(crate) cid: String,
    /// The buyer.
    pub(crate) partner_user_id: String,
    /// Item name.
    pub(crate) item_name: String,
    /// Charged every period.
    pub(crate) amount: Amounts,
    /// Always `KRW`.
    pub(crate) currency: &'static str,
    /// `day`, `week`, `month` or `year`.
    #[schema(value_type = String)]
    pub(crate) interval: Interval,
    /// Intervals per period.
    pub(crate) interval_count: u16,
    /// Trial days before the first charge.
    pub(crate) trial_days: u16,
    /// Until then, the trial (no charge).
    pub(crate) trial_end: Option<String>,
    /// Period 0 starts here (KST anchor of every period).
    pub(crate) billing_anchor: Option<String>,
    /// The current period.
    pub(crate) current_period_start: Option<String>,
    /// Its end.
    pub(crate) current_period_end: Option<String>,
    /// The next charge (or retry).
    pub(crate) next_charge_at: Option<String>,
    /// The first period not paid yet.
    pub(crate) next_period: u32,
    /// Ends when the period ends.
    pub(crate) cancel_at_period_end: bool,
    /// When it was canceled.
    pub(crate) canceled_at: Option<String>,
    /// Why.
    pub(crate) cancel_reason: Option<String>,
    /// When KakaoPay confirmed the SID inactive.
    pub(crate) inactivated_at: Option<String>,
    /// Dunning: retries made since the first refusal of the unpaid period.
    pub(crate) dunning_retries: u32,
    /// When the dunning began.
    pub(crate) past_due_since: Option<String>,
    /// The SID's last 4 characters (never more).
    pub(crate) sid_last4: Option<String>,
    /// The payment the buyer approves to register.
    pub(crate) registration_payment_id: String,
    /// Where to send the buyer to register (while `incomplete`).
    pub(crate) redirect_url: Option<String>,
    /// Where the buyer goes afterwards.
    pub(crate) return_url: Option<String>,
    /// Registered (the buyer's approval).
    pub(crate) registered_at: Option<String>,
    /// Created.
    pub(crate) created_at: String,
    /// Last change.
    pub(crate) updated_at: String,
}

fn time(t: Timestamp) -> String {
    t.rfc3339()
}

impl SubscriptionView {
    pub(crate) fn new(s: &Subscription, redirect_url: Option<String>) -> Self {
        let current = s.current_period();
        let renewing = matches!(
            s.status,
            SubscriptionStatus::Active | SubscriptionStatus::PastDue
        );
        Self {
            version: s.version,
            id: s.id.to_string(),
            status: s.status,
            cid: s.cid.as_str().to_owned(),
            partner_user_id: s.partner_user_id.as_str().to_owned(),
            item_name: s.item_name.as_str().to_owned(),
            amount: s.amounts,
            currency: "KRW",
            interval: s.cadence.interval(),
            interval_count: s.cadence.count(),
            trial_days: s.trial_days,
            trial_end: (s.trial_days > 0)
                .then_some(s.billing_anchor)
                .flatten()
                .map(time),
            billing_anchor: s.billing_anchor.map(time),
            current_period_start: current.map(|c| time(c.0)),
            current_period_end: current.map(|c| time(c.1)),
            next_charge_at: if renewing && !s.cancel_at_period_end {
                s.next_charge_at.map(time)
            } else {
                None
            },
            next_period: s.next_period,
            cancel_at_period_end: s.cancel_at_period_end,
            canceled_at: s.canceled_at.map(time),
            cancel_reason: s.cancel_reason.clone(),
            inactivated_at: s.inactivated_at.map(time),
            dunning_retries: s.dunning_retries,
            past_due_since: s.dunning_started_at.map(time),
            sid_last4: s.sid_last4.clone(),
            registration_payment_id: s.registration_payment_id.to_string(),
            redirect_url: (s.status == SubscriptionStatus::Incomplete)
                .then_some(redirect_url)
                .flatten(),
            return_url: s.return_url.clone(),
            registered_at: s.registered_at.map(time),
            created_at: time(s.created_at),
            updated_at: time(s.updated_at),
        }
    }
}

/// A charge attempt.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ChargeView {
    /// `sch_…`.
    pub(crate) id: String,
    /// `pending`, `succeeded`, `failed` or `unknown`.
    #[schema(value_type = String)]
    pub(crate) status: ChargeStatus,
    /// `registration`, `renewal` or `extra`.
    #[schema(value_type = String)]
    pub(crate) kind: ChargeKind,
    /// The period paid (absent for an extra charge).
    pub(crate) period: Option<u32>,
    /// Its start.
    pub(crate) period_start: Option<String>,
    /// Its end.
    pub(crate) period_end: Option<String>,
    /// The how-many-th attempt of its period.
    pub(crate) attempt: u32,
    /// Asked.
    pub(crate) amount: Amounts,
    /// The payment a success created (refund it through its cancel).
    pub(crate) payment_id: Option<String>,
    /// `soft`, `hard`, `merchant`, `not_applied`, `sealed` or `not_sent`.
    pub(crate) failure: Option<String>,
    /// KakaoPay's code.
    pub(crate) kakaopay_code: Option<i64>,
    /// For people.
    pub(crate) message: Option<String>,
    /// The order id sent.
    pub(crate) partner_order_id: String,
    /// Recorded (before the call).
    pub(crate) attempted_at: String,
    /// Its outcome recorded.
    pub(crate) finished_at: Option<String>,
}

impl ChargeView {
    pub(crate) fn new(c: &Charge, s: Option<&Subscription>) -> Self {
        let period = c.period.and_then(|n| s.and_then(|s| s.period(n)));
        Self {
            id: c.id.to_string(),
            status: c.status,
            kind: c.kind,
            period: c.period,
            period_start: period.map(|p| time(p.start)),
            period_end: period.map(|p| time(p.end)),
            attempt: c.attempt,
            amount: c.amounts,
            payment_id: c.payment_id.as_ref().map(ToString::to_string),
            failure: c.failure.map(|f| <&str>::from(f).to_owned()),
            kakaopay_code: c.kakaopay_code,
            message: c.message.clone(),
            partner_order_id: c.partner_order_id.clone(),
            attempted_at: time(c.attempted_at),
            finished_at: c.finished_at.map(time),
        }
    }
}

/// Charges, oldest first.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ChargeList {
    /// The attempts.
    pub(crate) data: Vec<ChargeView>,
}

/// A page of subscriptions.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SubscriptionPageView {
    /// Newest first.
    pub(crate) data: Vec<SubscriptionView>,
    /// Pass as `cursor` for the next page.
    pub(crate) next_cursor: Option<String>,
}

/// A line of a subscription's log.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SubscriptionEventView {
    /// Before.
    pub(crate) from: Option<String>,
    /// After.
    pub(crate) to: String,
    /// Why.
    pub(crate) cause: String,
    /// KakaoPay's code.
    pub(crate) kakaopay_code: Option<i64>,
    /// Details.
    pub(crate) detail: Option<String>,
    /// When.
    pub(crate) at: String,
}

impl From<&SubscriptionLogLine> for SubscriptionEventView {
    fn from(l: &SubscriptionLogLine) -> Self {
        Self {
            from: l.from.map(|s| s.to_string()),
            to: l.to.to_string(),
            cause: l.cause.to_string(),
            kakaopay_code: l.detail.kakaopay_code,
            detail: l.detail.text.clone(),
            at: time(l.at),
        }
    }
}

fn amount(name: &'static str, won: i64, min: i64) -> Result<Amount, ApiError> {
    if !(min..=MAX_AMOUNT).contains(&won) {
        return Err(ApiError::invalid(
            name,
            format!("{name}: must be {min} to {MAX_AMOUNT} won"),
        ));
    }
    Amount::new(won).map_err(|e| ApiError::invalid(name, format!("{name}: {}", e.reason())))
}

/// Turns the create body into a validated subscription.
pub(crate) fn parse_create(b: CreateSubscriptionBody) -> Result<CreateSubscription, ApiError> {
    let total = amount("amount", b.amount, 1)?;
    let tax_free = amount("tax_free_amount", b.tax_free_amount.unwrap_or(0), 0)?;
    let vat = b
        .vat_amount
        .map(|v| amount("vat_amount", v, 0))
        .transpose()?;
    let amounts = Amounts::for_order(total, tax_free, vat).map_err(|e| {
        let err = crate::service::ServiceError::from(e);
        match err {
            crate::service::ServiceError::Invalid { field, message } => {
                let field = if field == "total_amount" {
                    "amount"
                } else {
                    field
                };
                ApiError::invalid(field, message.replace("total_amount", "amount"))
            }
            other => ApiError::from(other),
        }
    })?;
    let interval = b
        .interval
        .parse::<Interval>()
        .map_err(|_| ApiError::invalid("interval", "interval: must be day, week, month or year"))?;
    let cadence = Cadence::new(interval, b.interval_count.unwrap_or(1))
        .map_err(|e| ApiError::invalid("interval_count", format!("{e}")))?;
    let trial = b.trial_days.unwrap_or(0);
    let trial_days = u16::try_from(trial)
        .ok()
        .filter(|t| *t <= 730)
        .ok_or_else(|| ApiError::invalid("trial_days", "trial_days: must be 0 to 730"))?;
    if let Some(url) = &b.return_url {
        match url::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && url.len() <= 2000 => {}
            _ => {
                return Err(ApiError::invalid(
                    "return_url",
                    "return_url: must be an absolute http(s) URL of at most 2000 characters",
                ));
            }
        }
    }
    Ok(CreateSubscription {
        partner_user_id: PartnerUserId::parse(b.partner_user_id).map_err(|e| {
            ApiError::invalid(
                "partner_user_id",
                format!("partner_user_id: {}", e.reason()),
            )
        })?,
        item_name: ItemName::parse(b.item_name)
            .map_err(|e| ApiError::invalid("item_name", format!("item_name: {}", e.reason())))?,
        amounts,
        cadence,
        trial_days,
        channel: b.channel.unwrap_or_default(),
        return_url: b.return_url,
    })
}

fn sub_id(id: &str) -> Result<crate::domain::SubscriptionId, ApiError> {
    subscription_id(id).map_err(ApiError::from)
}

/// Starts a subscription: ready with the subscription CID; send the buyer to `redirect_url`.
#[utoipa::path(post, path = "/api/v1/subscriptions", tag = "subscriptions", request_body = CreateSubscriptionBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key and body: the stored answer again")),
    responses(
        (status = 201, description = "Created (`incomplete`); send the buyer to redirect_url", body = SubscriptionView),
        (status = 400, description = "Invalid request (names the field)", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 409, description = "Same Idempotency-Key still in flight", body = ErrorBody),
        (status = 422, description = "Idempotency-Key reused with another body, or KakaoPay refused", body = ErrorBody),
        (status = 502, description = "KakaoPay unavailable; nothing was created", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn create_subscription(
    State(state): State<AppState>,
    key: Option<Extension<IdempotencyKey>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let input = parse_create(parse_json(&body)?)?;
    let (s, p) = state
        .services
        .create_subscription(input, key.as_ref().map(|k| &k.0))
        .await?;
    let location = format!("/api/v1/subscriptions/{}", s.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(SubscriptionView::new(&s, Some(p.redirects.url.clone()))),
    )
        .into_response())
}

async fn view(state: &AppState, s: &Subscription) -> Result<SubscriptionView, ApiError> {
    let redirect = if s.status == SubscriptionStatus::Incomplete {
        Some(
            state
                .services
                .payment(&s.registration_payment_id)
                .await?
                .redirects
                .url,
        )
    } else {
        None
    };
    Ok(SubscriptionView::new(s, redirect))
}

/// Reads a subscription.
#[utoipa::path(get, path = "/api/v1/subscriptions/{id}", tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 200, body = SubscriptionView), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_subscription(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let s = state.services.subscription(&sub_id(&id)?).await?;
    Ok(Json(view(&state, &s).await?))
}

/// Lists subscriptions, newest first.
#[utoipa::path(get, path = "/api/v1/subscriptions", tag = "subscriptions", params(SubscriptionQuery),
    responses((status = 200, body = SubscriptionPageView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list_subscriptions(
    State(state): State<AppState>,
    query: Result<Query<SubscriptionQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SubscriptionPageView>, ApiError> {
    let Query(q) = query
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    let filter = subscription_filter(&q)?;
    let page = state.services.subscriptions(&filter).await?;
    let mut data = Vec::with_capacity(page.subscriptions.len());
    for s in &page.subscriptions {
        data.push(SubscriptionView::new(s, None));
    }
    Ok(Json(SubscriptionPageView {
        data,
        next_cursor: page.next.map(|(at, id)| format!("{}_{id}", at.millis())),
    }))
}

/// Parses list parameters (shared with the admin).
pub(crate) fn subscription_filter(q: &SubscriptionQuery) -> Result<SubscriptionFilter, ApiError> {
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(s.parse::<SubscriptionStatus>().map_err(|_| {
            ApiError::invalid("status", "status: must be one of incomplete, incomplete_expired, active, past_due, unpaid, canceled")
        })?),
        None => None,
    };
    let limit = u32::try_from(q.limit.unwrap_or(20))
        .ok()
        .filter(|l| (1..=100).contains(l))
        .ok_or_else(|| ApiError::invalid("limit", "limit: must be 1 to 100"))?;
    let bad_cursor = || ApiError::invalid("cursor", "cursor: not a cursor from this API");
    let after = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => {
            let (at, id) = c.split_once('_').ok_or_else(bad_cursor)?;
            let at = at
                .parse::<i64>()
                .ok()
                .and_then(Timestamp::from_millis)
                .ok_or_else(bad_cursor)?;
            Some((at, id.to_owned()))
        }
        None => None,
    };
    Ok(SubscriptionFilter {
        status,
        search: q
            .q
            .as_ref()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty()),
        after,
        limit,
    })
}

/// Every charge attempt, oldest first (the registration's paid first payment first).
#[utoipa::path(get, path = "/api/v1/subscriptions/{id}/charges", tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 200, body = ChargeList), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list_charges(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ChargeList>, ApiError> {
    let id = sub_id(&id)?;
    let s = state.services.subscription(&id).await?;
    let charges = state.services.charges(&id).await?;
    Ok(Json(ChargeList {
        data: charges
            .iter()
            .map(|c| ChargeView::new(c, Some(&s)))
            .collect(),
    }))
}

/// The subscription's log, oldest first.
#[utoipa::path(get, path = "/api/v1/subscriptions/{id}/events", tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 200, body = Vec<SubscriptionEventView>), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn subscription_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = sub_id(&id)?;
    state.services.subscription(&id).await?;
    let log = state.services.subscription_log(&id).await?;
    let data: Vec<SubscriptionEventView> = log.iter().map(SubscriptionEventView::from).collect();
    Ok(Json(serde_json::json!({ "data": data })))
}

/// An extra charge now with the SID. 201 with the charge, whatever KakaoPay answered (its
/// `status` says: `succeeded`, `failed` with the code, or `unknown` while a lookup decides).
#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/charge", tag = "subscriptions", request_body = ChargeBody,
    params(("id" = String, Path, description = "Subscription id"), ("Idempotency-Key" = Option<String>, Header, description = "A retry finds the charge made under it and never charges again")),
    responses(
        (status = 201, body = ChargeView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Not chargeable in its status, or another charge is in flight (charge_in_progress)", body = ErrorBody),
        (status = 422, description = "Idempotency-Key reused with another body", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn extra_charge(
    State(state): State<AppState>,
    Path(id): Path<String>,
    key: Option<Extension<IdempotencyKey>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = sub_id(&id)?;
    let b: ChargeBody = if body.is_empty() {
        ChargeBody::default()
    } else {
        parse_json(&body)?
    };
    let amount = b.amount.map(|a| amount("amount", a, 1)).transpose()?;
    let item_name = b
        .item_name
        .map(|n| {
            ItemName::parse(n)
                .map_err(|e| ApiError::invalid("item_name", format!("item_name: {}", e.reason())))
        })
        .transpose()?;
    let charge = state
        .services
        .extra_charge(&id, amount, item_name, key.as_ref().map(|k| &k.0))
        .await?;
    let s = state.services.subscription(&id).await?;
    Ok((
        StatusCode::CREATED,
        Json(ChargeView::new(&charge, Some(&s))),
    )
        .into_response())
}

/// Cancels now (KakaoPay inactivates the SID) or at the period's end.
#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/cancel", tag = "subscriptions", request_body = CancelSubscriptionBody,
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 200, body = SubscriptionView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Already canceled or expired", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn cancel_subscription(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<SubscriptionView>, ApiError> {
    let id = sub_id(&id)?;
    let b: CancelSubscriptionBody = if body.is_empty() {
        CancelSubscriptionBody::default()
    } else {
        parse_json(&body)?
    };
    let s = state
        .services
        .cancel_subscription(&id, b.at_period_end.unwrap_or(false))
        .await?;
    Ok(Json(view(&state, &s).await?))
}

/// Reads KakaoPay's subscription status now and reconciles.
#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/sync", tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 200, body = SubscriptionView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 502, description = "KakaoPay unavailable", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn sync_subscription(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let s = state.services.sync_subscription(&sub_id(&id)?).await?;
    Ok(Json(view(&state, &s).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> Result<CreateSubscription, ApiError> {
        parse_create(serde_json::from_value(json).unwrap())
    }

    #[test]
    fn every_bad_field_is_named() {
        let ok = serde_json::json!({"partner_user_id":"u","item_name":"커피","amount":9900,"interval":"month"});
        assert!(body(ok.clone()).is_ok());
        for (patch, field) in [
            (serde_json::json!({"amount": 0}), "amount"),
            (serde_json::json!({"amount": 100_000_001}), "amount"),
            (serde_json::json!({"interval": "fortnight"}), "interval"),
            (serde_json::json!({"interval_count": 0}), "interval_count"),
            (serde_json::json!({"interval_count": 366}), "interval_count"),
            (serde_json::json!({"trial_days": 731}), "trial_days"),
            (serde_json::json!({"trial_days": -1}), "trial_days"),
            (
                serde_json::json!({"tax_free_amount": 10_000}),
                "tax_free_amount",
            ),
            (
                serde_json::json!({"partner_user_id": ""}),
                "partner_user_id",
            ),
            (serde_json::json!({"return_url": "ftp://x"}), "return_url"),
        ] {
            let mut b = ok.clone();
            for (k, v) in patch.as_object().unwrap() {
                b[k] = v.clone();
            }
            let e = body(b).expect_err(field);
            assert_eq!(e.field.as_deref(), Some(field), "{patch}");
        }
    }
}
