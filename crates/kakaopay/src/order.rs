//! Order lookup (주문 조회): the status and full history of a TID. The source of truth after any
//! unclear approve or cancel; KakaoPay offers no lookup by order id, so keep the TID.

use crate::wire::{null_as_default, opt_int};
use crate::{
    AmountBreakdown, Cid, CidSecret, KstDateTime, OrderStatus, PartnerOrderId, PartnerUserId,
    PaymentActionDetail, PaymentMethodType, SelectedCardInfo, Tid,
};
use serde::{Deserialize, Serialize};

/// An order lookup request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderRequest {
    /// Merchant code.
    pub cid: Cid,
    /// CID authentication key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid_secret: Option<CidSecret>,
    /// The payment.
    pub tid: Tid,
}

impl OrderRequest {
    /// A lookup of `tid`.
    pub fn new(cid: Cid, tid: Tid) -> Self {
        Self {
            cid,
            cid_secret: None,
            tid,
        }
    }
}

/// Order lookup's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderResponse {
    /// The payment.
    pub tid: Tid,
    /// Merchant code.
    pub cid: Cid,
    /// Where the payment stands.
    pub status: OrderStatus,
    /// The merchant's order id.
    pub partner_order_id: PartnerOrderId,
    /// The merchant's user id.
    pub partner_user_id: PartnerUserId,
    /// `CARD` or `MONEY`, once chosen.
    #[serde(default)]
    pub payment_method_type: Option<PaymentMethodType>,
    /// The SID a subscription CID's approval issued (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<crate::Sid>,
    /// The payment's amounts.
    #[serde(default)]
    pub amount: Option<AmountBreakdown>,
    /// Refunded so far.
    #[serde(default)]
    pub canceled_amount: Option<AmountBreakdown>,
    /// Still refundable.
    #[serde(default)]
    pub cancel_available_amount: Option<AmountBreakdown>,
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
    /// When it was last cancelled.
    #[serde(default)]
    pub canceled_at: Option<KstDateTime>,
    /// The card chosen.
    #[serde(default)]
    pub selected_card_info: Option<SelectedCardInfo>,
    /// Every payment, cancel and SID issuance, oldest first.
    #[serde(default, deserialize_with = "null_as_default")]
    pub payment_action_details: Vec<PaymentActionDetail>,
}
