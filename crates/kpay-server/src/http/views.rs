//! What the merchant API answers: payments, refunds and event-log lines as JSON, built from the
//! domain's types (strings appear only here, at serialisation).

use crate::domain::{
    Amounts, Channel, Payment, PaymentEvent, PaymentStatus, Refund, RefundStatus, Timestamp,
};
use serde::Serialize;

/// A time as the API shows it: RFC 3339 in Korean time.
pub(crate) fn time(t: Timestamp) -> String {
    t.rfc3339()
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
    /// The subscription it registers or renews, if any.
    pub(crate) subscription_id: Option<String>,
    /// Grows with every change (status, refunds): of two copies, the larger is newer.
    pub(crate) version: i64,
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

/// The renderer of event objects: a payment as `GET /api/v1/payments/{id}` shows it, a
/// subscription as `GET /api/v1/subscriptions/{id}` (past registration: no redirect).
pub(crate) fn event_renderer() -> crate::store::Renderer {
    crate::store::Renderer::new(
        |p, refunds| {
            serde_json::to_string(&PaymentView::new(p, Some(refunds)))
                .unwrap_or_else(|_| format!("{{\"id\":\"{}\"}}", p.id))
        },
        |s| {
            serde_json::to_string(&super::subscriptions::SubscriptionView::new(s, None))
                .unwrap_or_else(|_| format!("{{\"id\":\"{}\"}}", s.id))
        },
    )
}

impl PaymentView {
    /// The view of a record.
    pub(crate) fn new(p: &Payment, refunds: Option<&[Refund]>) -> Self {
        Self {
            id: p.id.to_string(),
            status: p.status,
            subscription_id: p.subscription_id.as_ref().map(ToString::to_string),
            version: p.version,
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
