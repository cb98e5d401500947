//! Approve (결제 승인): finish a payment after the buyer authenticated.

use crate::wire::opt_int;
use crate::{
    Aid, Amount, AmountBreakdown, CardInfo, Cid, CidSecret, KstDateTime, PartnerOrderId,
    PartnerUserId, Payload, PaymentMethodType, PgToken, SequentialPaymentMethod, Sid, Tid,
};
use serde::{Deserialize, Serialize};

/// An approve request. Approve is not idempotent: a second one for a paid TID gets `-702`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApproveRequest {
    /// Merchant code, as in ready.
    pub cid: Cid,
    /// CID authentication key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid_secret: Option<CidSecret>,
    /// The payment.
    pub tid: Tid,
    /// Must equal ready's (`-706` otherwise).
    pub partner_order_id: PartnerOrderId,
    /// Must equal ready's (`-707` otherwise).
    pub partner_user_id: PartnerUserId,
    /// From the approval_url redirect (`-708` if wrong).
    pub pg_token: PgToken,
    /// Stored with this approve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Payload>,
    /// When sent, KakaoPay checks it against ready's total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_amount: Option<Amount>,
}

impl ApproveRequest {
    /// An approve with the required fields.
    pub fn new(
        cid: Cid,
        tid: Tid,
        partner_order_id: PartnerOrderId,
        partner_user_id: PartnerUserId,
        pg_token: PgToken,
    ) -> Self {
        Self {
            cid,
            cid_secret: None,
            tid,
            partner_order_id,
            partner_user_id,
            pg_token,
            payload: None,
            total_amount: None,
        }
    }
    /// Adds a payload.
    pub fn payload(mut self, payload: Payload) -> Self {
        self.payload = Some(payload);
        self
    }
    /// Asks KakaoPay to check the total.
    pub fn total_amount(mut self, total: Amount) -> Self {
        self.total_amount = Some(total);
        self
    }
    /// Adds the CID authentication key.
    pub fn cid_secret(mut self, secret: CidSecret) -> Self {
        self.cid_secret = Some(secret);
        self
    }
}

/// Approve's answer; subscription charges answer with the same shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApproveResponse {
    /// Request id of this approve.
    pub aid: Aid,
    /// The payment.
    pub tid: Tid,
    /// Merchant code.
    pub cid: Cid,
    /// Subscription id, for subscription CIDs.
    #[serde(default)]
    pub sid: Option<Sid>,
    /// The merchant's order id.
    pub partner_order_id: PartnerOrderId,
    /// The merchant's user id.
    pub partner_user_id: PartnerUserId,
    /// `CARD` or `MONEY`.
    #[serde(default)]
    pub payment_method_type: Option<PaymentMethodType>,
    /// What was paid. Check it against the order before shipping anything.
    pub amount: AmountBreakdown,
    /// Card details, for card payments.
    #[serde(default)]
    pub card_info: Option<CardInfo>,
    /// Sequential-payment methods (current generation); `null` otherwise.
    #[serde(default)]
    pub sequential_payment_methods: Option<Vec<SequentialPaymentMethod>>,
    /// Item name.
    #[serde(default)]
    pub item_name: Option<String>,
    /// Item code.
    #[serde(default)]
    pub item_code: Option<String>,
    /// Item count.
    #[serde(default, deserialize_with = "opt_int")]
    pub quantity: Option<i64>,
    /// When ready was called.
    #[serde(default)]
    pub created_at: Option<KstDateTime>,
    /// When the payment was approved.
    #[serde(default)]
    pub approved_at: Option<KstDateTime>,
    /// Echo of the payload.
    #[serde(default)]
    pub payload: Option<String>,
}
