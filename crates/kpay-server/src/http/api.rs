//! The merchant API (contract §4): create, read, list, refund, events, sync.

use super::AppState;
use super::error::{ApiError, ErrorBody, parse_json};
use super::views::{EventList, EventView, PaymentPage, PaymentView, RefundView};
use crate::domain::{Amounts, Channel, PaymentId, PaymentStatus, RefundStatus, Timestamp};
use crate::service::{CreatePayment, IdempotencyKey, RefundInput};
use crate::store::ListFilter;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use kakaopay::{Amount, ItemCode, ItemName, PartnerOrderId, PartnerUserId, Payload, Quantity};
use serde::Deserialize;

/// A payment id from the path. Text that is not a payment id names no payment: 404, like an
/// unknown one.
pub(crate) fn payment_id(id: &str) -> Result<PaymentId, ApiError> {
    crate::service::payment_id(id).map_err(ApiError::from)
}

/// Body of `POST /api/v1/payments`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreatePaymentBody {
    /// The buyer in your terms (no name, phone or e-mail), 1–100 characters.
    pub(crate) partner_user_id: String,
    /// What is sold, 1–100 characters.
    pub(crate) item_name: String,
    /// How many, at least 1.
    pub(crate) quantity: i64,
    /// Total in won, at least 1.
    pub(crate) total_amount: i64,
    /// Tax-free part in won (default 0).
    #[serde(default)]
    pub(crate) tax_free_amount: Option<i64>,
    /// VAT in won (default: KakaoPay's rule, (total − tax-free) / 11 rounded).
    #[serde(default)]
    pub(crate) vat_amount: Option<i64>,
    /// Your order id (default: the payment id).
    #[serde(default)]
    pub(crate) partner_order_id: Option<String>,
    /// Item code.
    #[serde(default)]
    pub(crate) item_code: Option<String>,
    /// Which KakaoPay page the buyer gets: `pc` (QR code, default), `mobile` or `app`.
    #[serde(default)]
    pub(crate) channel: Option<Channel>,
    /// Where the buyer goes after paying, quitting or failing, with `payment_id` and `status`
    /// appended. Without it the server shows its own result page.
    #[serde(default)]
    pub(crate) return_url: Option<String>,
}

/// Body of `POST /api/v1/payments/{id}/cancel`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelBody {
    /// How much to refund, in won (default: everything that is left).
    #[serde(default)]
    pub(crate) amount: Option<i64>,
    /// Its tax-free part (default: in proportion to what is left).
    #[serde(default)]
    pub(crate) tax_free_amount: Option<i64>,
    /// Its VAT part (default: KakaoPay's rule; a full refund takes what is left).
    #[serde(default)]
    pub(crate) vat_amount: Option<i64>,
    /// Why, at most 200 characters (sent to KakaoPay as the payload).
    #[serde(default)]
    pub(crate) reason: Option<String>,
}

/// Query of `GET /api/v1/payments`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only this status.
    pub(crate) status: Option<String>,
    /// Page size, 1–100 (default 20).
    pub(crate) limit: Option<i64>,
    /// From a previous page's `next_cursor`.
    pub(crate) cursor: Option<String>,
    /// Exact payment id, order id or TID.
    pub(crate) q: Option<String>,
    /// Created on or after this day or time (`2026-11-01` or RFC 3339; days are KST).
    pub(crate) from: Option<String>,
    /// Created before this day or time (a day means up to its end).
    pub(crate) to: Option<String>,
}

fn field<T, E: std::fmt::Display>(name: &'static str, r: Result<T, E>) -> Result<T, ApiError> {
    r.map_err(|e| ApiError::invalid(name, format!("{name}: {e}")))
}

fn amount(name: &'static str, won: i64) -> Result<Amount, ApiError> {
    Amount::new(won).map_err(|e| ApiError::invalid(name, format!("{name}: {}", e.reason())))
}

/// Parses a day (`2026-11-01`, KST) or an RFC 3339 time; `end` moves a day to its end.
pub(crate) fn parse_time(name: &'static str, s: &str, end: bool) -> Result<Timestamp, ApiError> {
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let day = if end { d.succ_opt().unwrap_or(d) } else { d };
        let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
        return Ok(kakaopay::KstDateTime(midnight).to_utc().into());
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.to_utc().into())
        .map_err(|_| {
            ApiError::invalid(
                name,
                format!("{name}: expected a day like 2026-11-01 or an RFC 3339 time"),
            )
        })
}

/// Turns the create body into a validated payment.
pub(crate) fn parse_create(body: CreatePaymentBody) -> Result<CreatePayment, ApiError> {
    let total = amount("total_amount", body.total_amount)?;
    let tax_free = amount("tax_free_amount", body.tax_free_amount.unwrap_or(0))?;
    let vat = body
        .vat_amount
        .map(|v| amount("vat_amount", v))
        .transpose()?;
    let amounts =
        Amounts::for_order(total, tax_free, vat).map_err(crate::service::ServiceError::from)?;
    if let Some(url) = &body.return_url {
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
    Ok(CreatePayment {
        partner_user_id: field(
            "partner_user_id",
            PartnerUserId::parse(body.partner_user_id).map_err(|e| e.reason().to_owned()),
        )?,
        item_name: field(
            "item_name",
            ItemName::parse(body.item_name).map_err(|e| e.reason().to_owned()),
        )?,
        item_code: body
            .item_code
            .map(|c| {
                field(
                    "item_code",
                    ItemCode::parse(c).map_err(|e| e.reason().to_owned()),
                )
            })
            .transpose()?,
        quantity: field(
            "quantity",
            Quantity::new(body.quantity).map_err(|e| e.reason().to_owned()),
        )?,
        amounts,
        partner_order_id: body
            .partner_order_id
            .map(|o| {
                field(
                    "partner_order_id",
                    PartnerOrderId::parse(o).map_err(|e| e.reason().to_owned()),
                )
            })
            .transpose()?,
        channel: body.channel.unwrap_or_default(),
        return_url: body.return_url,
    })
}

/// Creates a payment and calls KakaoPay's ready.
#[utoipa::path(post, path = "/api/v1/payments", tag = "payments", request_body = CreatePaymentBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key and body: the stored answer again")),
    responses(
        (status = 201, description = "Created; send the buyer to redirect_url", body = PaymentView),
        (status = 400, description = "Invalid request (names the field)", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 413, description = "Body larger than 64 KiB", body = ErrorBody),
        (status = 409, description = "Same Idempotency-Key still in flight, or the order already has a live or paid payment (duplicate_order)", body = ErrorBody),
        (status = 422, description = "Idempotency-Key reused with another body, or KakaoPay refused", body = ErrorBody),
        (status = 502, description = "KakaoPay unavailable; nothing was created", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn create_payment(
    State(state): State<AppState>,
    key: Option<Extension<IdempotencyKey>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let input = parse_create(parse_json(&body)?)?;
    let p = state
        .services
        .create_payment(input, key.as_ref().map(|k| &k.0))
        .await?;
    let location = format!("/api/v1/payments/{}", p.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(PaymentView::new(&p, Some(&[]))),
    )
        .into_response())
}

/// Reads a payment, with its refunds.
#[utoipa::path(get, path = "/api/v1/payments/{id}", tag = "payments",
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, body = PaymentView), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_payment(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PaymentView>, ApiError> {
    let (p, refunds) = state
        .services
        .payment_with_refunds(&payment_id(&id)?)
        .await?;
    Ok(Json(PaymentView::new(&p, Some(&refunds))))
}

/// Lists payments, newest first.
#[utoipa::path(get, path = "/api/v1/payments", tag = "payments", params(ListQuery),
    responses((status = 200, body = PaymentPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list_payments(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<PaymentPage>, ApiError> {
    let Query(q) = query
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    let filter = list_filter(&q)?;
    let page = state.services.payments(&filter).await?;
    Ok(Json(PaymentPage {
        data: page
            .payments
            .iter()
            .map(|p| PaymentView::new(p, None))
            .collect(),
        next_cursor: page.next.map(|(at, id)| format!("{}_{id}", at.millis())),
    }))
}

/// Parses list parameters (shared with the dashboard).
pub(crate) fn list_filter(q: &ListQuery) -> Result<ListFilter, ApiError> {
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(PaymentStatus::parse(s).ok_or_else(|| {
            ApiError::invalid("status", "status: must be one of ready, approving, approved, partially_canceled, canceled, quit, failed, expired")
        })?),
        None => None,
    };
    let limit = q.limit.unwrap_or(20);
    let limit = u32::try_from(limit)
        .ok()
        .filter(|l| (1..=100).contains(l))
        .ok_or_else(|| ApiError::invalid("limit", "limit: must be 1 to 100"))?;
    let after = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => {
            let (at, id) = c
                .split_once('_')
                .ok_or_else(|| ApiError::invalid("cursor", "cursor: not a cursor from this API"))?;
            let at = at
                .parse::<i64>()
                .ok()
                .and_then(Timestamp::from_millis)
                .ok_or_else(|| ApiError::invalid("cursor", "cursor: not a cursor from this API"))?;
            Some((at, id.to_owned()))
        }
        None => None,
    };
    Ok(ListFilter {
        status,
        from: q
            .from
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| parse_time("from", s, false))
            .transpose()?,
        to: q
            .to
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| parse_time("to", s, true))
            .transpose()?,
        search: q
            .q
            .as_ref()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty()),
        after,
        limit,
    })
}

/// Refunds all or part of a payment. 200 when KakaoPay confirmed it; 202 when its outcome is being
/// confirmed (the refund is `pending`; read the payment again).
#[utoipa::path(post, path = "/api/v1/payments/{id}/cancel", tag = "payments", request_body = CancelBody,
    params(("id" = String, Path, description = "Payment id"), ("Idempotency-Key" = Option<String>, Header, description = "Same key and body: the stored answer again")),
    responses(
        (status = 200, description = "Refunded", body = PaymentView),
        (status = 202, description = "Sent; the outcome is being confirmed", body = PaymentView),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Not refundable, or another refund in progress", body = ErrorBody),
        (status = 413, description = "Body larger than 64 KiB", body = ErrorBody),
        (status = 422, description = "KakaoPay refused", body = ErrorBody),
        (status = 502, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn cancel_payment(
    State(state): State<AppState>,
    Path(id): Path<String>,
    key: Option<Extension<IdempotencyKey>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: CancelBody = parse_json(&body)?;
    let input = RefundInput {
        amount: body.amount.map(|v| amount("amount", v)).transpose()?,
        tax_free: body
            .tax_free_amount
            .map(|v| amount("tax_free_amount", v))
            .transpose()?,
        vat: body
            .vat_amount
            .map(|v| amount("vat_amount", v))
            .transpose()?,
        reason: body
            .reason
            .filter(|r| !r.trim().is_empty())
            .map(|r| {
                field(
                    "reason",
                    Payload::parse(r).map_err(|e| e.reason().to_owned()),
                )
            })
            .transpose()?,
    };
    let result = state
        .services
        .refund(&payment_id(&id)?, input, key.as_ref().map(|k| &k.0))
        .await?;
    let status = if result.refund.status == RefundStatus::Pending {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let mut view = PaymentView::new(&result.payment, Some(&result.refunds));
    view.refund = Some(RefundView::from(&result.refund));
    Ok((status, Json(view)).into_response())
}

/// Every state change of a payment, oldest first.
#[utoipa::path(get, path = "/api/v1/payments/{id}/events", tag = "payments",
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, body = EventList), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn payment_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<EventList>, ApiError> {
    let events = state.services.events(&payment_id(&id)?).await?;
    Ok(Json(EventList {
        data: events.iter().map(EventView::from).collect(),
    }))
}

/// Looks the order up at KakaoPay now and reconciles the payment.
#[utoipa::path(post, path = "/api/v1/payments/{id}/sync", tag = "payments",
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, body = PaymentView), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn sync_payment(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PaymentView>, ApiError> {
    let id = payment_id(&id)?;
    state.services.sync(&id).await?;
    let (payment, refunds) = state.services.payment_with_refunds(&id).await?;
    Ok(Json(PaymentView::new(&payment, Some(&refunds))))
}
