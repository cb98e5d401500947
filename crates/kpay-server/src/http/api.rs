//! The merchant API (contract §4): create, read, list, refund, events, sync.

use super::AppState;
use super::error::{ApiError, ErrorBody, parse_json};
use crate::domain::{
    Amounts, Channel, Payment, PaymentEvent, PaymentId, PaymentStatus, Refund, RefundStatus,
    Timestamp,
};
use crate::service::{CreatePayment, IdempotencyKey, RefundInput, ServiceError};
use crate::store::ListFilter;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use kakaopay::{Amount, ItemCode, ItemName, PartnerOrderId, PartnerUserId, Payload, Quantity};
use serde::{Deserialize, Serialize};

/// A time as the API shows it: RFC 3339 in Korean time.
pub(crate) fn time(t: Timestamp) -> String {
    t.rfc3339()
}

/// A payment id from the path. Text that is not a payment id names no payment: 404, like an
/// unknown one.
pub(crate) fn payment_id(id: &str) -> Result<PaymentId, ApiError> {
    PaymentId::parse(id).map_err(|_| ApiError::from(ServiceError::NotFound(id.to_owned())))
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

/// Redirect URLs of all channels.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RedirectUrls {
    /// Desktop (QR code page).
    pub(crate) pc: Option<String>,
    /// Mobile web.
    pub(crate) mobile: Option<String>,
    /// Native app.
    pub(crate) app: Option<String>,
}

/// Why a payment failed.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct FailureView {
    /// KakaoPay's code or the server's reason.
    pub(crate) code: String,
    /// Explanation.
    pub(crate) message: Option<String>,
}

/// A refund.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RefundView {
    /// Refund id.
    pub(crate) id: String,
    /// `pending`, `succeeded` or `failed`.
    pub(crate) status: RefundStatus,
    /// Amount refunded.
    pub(crate) amount: i64,
    /// Tax-free part.
    pub(crate) tax_free_amount: i64,
    /// VAT part.
    pub(crate) vat_amount: i64,
    /// KakaoPay's AID of the cancel.
    pub(crate) aid: Option<String>,
    /// Why it was asked.
    pub(crate) reason: Option<String>,
    /// Why it failed.
    pub(crate) failure: Option<FailureView>,
    /// When it was asked.
    pub(crate) created_at: String,
    /// Last change.
    pub(crate) updated_at: String,
}

impl From<&Refund> for RefundView {
    fn from(r: &Refund) -> Self {
        Self {
            id: r.id.to_string(),
            status: r.status,
            amount: r.amounts.total.won(),
            tax_free_amount: r.amounts.tax_free.won(),
            vat_amount: r.amounts.vat.won(),
            aid: r.aid.as_ref().map(|a| a.text(&r.id)),
            reason: r.reason.clone(),
            failure: r.failure.as_ref().map(|f| FailureView {
                code: f.code.to_string(),
                message: f.message.clone(),
            }),
            created_at: time(r.created_at),
            updated_at: time(r.updated_at),
        }
    }
}

/// A payment.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PaymentView {
    /// Payment id.
    pub(crate) id: String,
    /// Where it stands.
    pub(crate) status: PaymentStatus,
    /// KakaoPay's payment id.
    pub(crate) tid: String,
    /// KakaoPay's approve request id, once approved.
    pub(crate) aid: Option<String>,
    /// Merchant code.
    pub(crate) cid: String,
    /// Your order id.
    pub(crate) partner_order_id: String,
    /// Your user id.
    pub(crate) partner_user_id: String,
    /// Item name.
    pub(crate) item_name: String,
    /// Item code.
    pub(crate) item_code: Option<String>,
    /// Item count.
    pub(crate) quantity: i64,
    /// What is charged.
    pub(crate) amount: Amounts,
    /// Refunded so far, in won.
    pub(crate) canceled_amount: i64,
    /// What can still be refunded, in won.
    pub(crate) cancelable_amount: i64,
    /// Refunded so far, by part.
    pub(crate) canceled: Amounts,
    /// `CARD` or `MONEY`, once paid.
    pub(crate) payment_method_type: Option<String>,
    /// Card details KakaoPay reported.
    #[schema(value_type = Option<Object>)]
    pub(crate) card_info: Option<serde_json::Value>,
    /// `pc`, `mobile` or `app`.
    pub(crate) channel: Channel,
    /// Where to send the buyer (fits the channel).
    pub(crate) redirect_url: String,
    /// Every channel's URL.
    pub(crate) redirect_urls: RedirectUrls,
    /// Where the buyer goes afterwards.
    pub(crate) return_url: Option<String>,
    /// Why it failed or was cancelled by the server.
    pub(crate) failure: Option<FailureView>,
    /// Whether a refund is being processed.
    pub(crate) refund_in_progress: bool,
    /// Refunds, oldest first (single payment reads only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) refunds: Option<Vec<RefundView>>,
    /// The refund this request made (refund answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) refund: Option<RefundView>,
    /// Created.
    pub(crate) created_at: String,
    /// Last change.
    pub(crate) updated_at: String,
    /// Unpaid payments expire then.
    pub(crate) expires_at: String,
    /// Approved.
    pub(crate) approved_at: Option<String>,
    /// Last refunded.
    pub(crate) canceled_at: Option<String>,
}

impl PaymentView {
    /// The view of a record.
    pub(crate) fn new(p: &Payment, refunds: Option<&[Refund]>) -> Self {
        Self {
            id: p.id.to_string(),
            status: p.status,
            tid: p.tid.as_str().to_owned(),
            aid: p.aid.as_ref().map(|a| a.as_str().to_owned()),
            cid: p.cid.as_str().to_owned(),
            partner_order_id: p.partner_order_id.as_str().to_owned(),
            partner_user_id: p.partner_user_id.as_str().to_owned(),
            item_name: p.item_name.as_str().to_owned(),
            item_code: p.item_code.as_ref().map(|c| c.as_str().to_owned()),
            quantity: i64::from(p.quantity.get()),
            amount: p.amounts,
            canceled_amount: p.canceled.total.won(),
            cancelable_amount: p.cancelable().won(),
            canceled: p.canceled,
            payment_method_type: p.method.as_ref().map(|m| m.as_str().to_owned()),
            card_info: p.card_info.clone(),
            channel: p.channel,
            redirect_url: p.redirects.url.clone(),
            redirect_urls: RedirectUrls {
                pc: p.redirects.pc.clone(),
                mobile: p.redirects.mobile.clone(),
                app: p.redirects.app.clone(),
            },
            return_url: p.return_url.clone(),
            failure: p.failure.as_ref().map(|f| FailureView {
                code: f.code.to_string(),
                message: f.message.clone(),
            }),
            refund_in_progress: p.refund_in_flight.is_some(),
            refunds: refunds.map(|r| r.iter().map(RefundView::from).collect()),
            refund: None,
            created_at: time(p.created_at),
            updated_at: time(p.updated_at),
            expires_at: time(p.expires_at),
            approved_at: p.approved_at.map(time),
            canceled_at: p.canceled_at.map(time),
        }
    }
}

/// A page of payments.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PaymentPage {
    /// Newest first.
    pub(crate) data: Vec<PaymentView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub(crate) next_cursor: Option<String>,
}

/// One entry of the event log.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EventView {
    /// Sequence number (increasing).
    pub(crate) id: i64,
    /// Status before (`null` for the creation).
    pub(crate) from: Option<PaymentStatus>,
    /// Status after.
    pub(crate) to: PaymentStatus,
    /// What caused it, e.g. `created`, `approve_claimed`, `approved`, `refund_requested`, `refunded_part`.
    pub(crate) cause: String,
    /// KakaoPay's code, when it answered with one.
    pub(crate) kakaopay_code: Option<i64>,
    /// Details (of the last occurrence).
    pub(crate) detail: Option<String>,
    /// When.
    pub(crate) at: String,
    /// How many identical outcomes in a row this entry stands for (1: just this one).
    pub(crate) count: u32,
    /// When the last of them happened, if more than one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) last_at: Option<String>,
}

impl From<&PaymentEvent> for EventView {
    fn from(e: &PaymentEvent) -> Self {
        Self {
            id: e.seq,
            from: e.from,
            to: e.to,
            cause: e.cause.as_str().to_owned(),
            kakaopay_code: e.kakaopay_code,
            detail: e.detail.clone(),
            at: time(e.at),
            count: e.repeats,
            last_at: e.last_at.map(time),
        }
    }
}

/// The event log of a payment.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EventList {
    /// Oldest first.
    pub(crate) data: Vec<EventView>,
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
