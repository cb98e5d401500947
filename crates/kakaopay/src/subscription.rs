//! Subscriptions (정기 결제): charge a SID without the buyer, inactivate it, read its status.
//! The SID comes from the first payment's approve with a subscription CID (test: `TCSUBSCRIP`).

use crate::wire::opt_bool;
use crate::{
    Amount, Cid, CidSecret, ItemCode, ItemName, KstDateTime, PartnerOrderId, PartnerUserId,
    Payload, PaymentMethodType, Quantity, Sid, SubscriptionStatus, ValidationError,
};
use serde::{Deserialize, Serialize};

/// A charge of a SID (2nd and later payments). Answered with an [`crate::ApproveResponse`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionRequest {
    /// Subscription merchant code.
    pub cid: Cid,
    /// CID authentication key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid_secret: Option<CidSecret>,
    /// The subscription.
    pub sid: Sid,
    /// A new order id for this charge.
    pub partner_order_id: PartnerOrderId,
    /// Must equal the user the SID was issued to (`-753` otherwise).
    pub partner_user_id: PartnerUserId,
    /// Item name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_name: Option<ItemName>,
    /// Item code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_code: Option<ItemCode>,
    /// Item count.
    pub quantity: Quantity,
    /// Total amount.
    pub total_amount: Amount,
    /// Tax-free part.
    pub tax_free_amount: Amount,
    /// VAT; the default rule applies when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vat_amount: Option<Amount>,
    /// Cup deposit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub green_deposit: Option<Amount>,
    /// Stored with this charge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Payload>,
}

impl SubscriptionRequest {
    /// A charge of `total` (nothing tax-free) for one item.
    pub fn new(
        cid: Cid,
        sid: Sid,
        partner_order_id: PartnerOrderId,
        partner_user_id: PartnerUserId,
        quantity: Quantity,
        total: Amount,
    ) -> Self {
        Self {
            cid,
            cid_secret: None,
            sid,
            partner_order_id,
            partner_user_id,
            item_name: None,
            item_code: None,
            quantity,
            total_amount: total,
            tax_free_amount: Amount::ZERO,
            vat_amount: None,
            green_deposit: None,
            payload: None,
        }
    }
    /// Sets the item name.
    pub fn item_name(mut self, name: ItemName) -> Self {
        self.item_name = Some(name);
        self
    }
    /// Sets the tax-free part.
    pub fn tax_free(mut self, tax_free: Amount) -> Self {
        self.tax_free_amount = tax_free;
        self
    }
    /// Sets the VAT.
    pub fn vat(mut self, vat: Amount) -> Self {
        self.vat_amount = Some(vat);
        self
    }
    /// Adds a payload.
    pub fn payload(mut self, payload: Payload) -> Self {
        self.payload = Some(payload);
        self
    }

    /// Cross-field checks, as for ready.
    pub fn validate(&self) -> Result<(), ValidationError> {
        crate::money::check_order_amounts(
            self.total_amount,
            self.tax_free_amount,
            self.vat_amount,
            self.green_deposit,
        )
    }
}

/// Names a SID, for inactivate and status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SidRequest {
    /// Subscription merchant code.
    pub cid: Cid,
    /// CID authentication key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid_secret: Option<CidSecret>,
    /// The subscription.
    pub sid: Sid,
}

impl SidRequest {
    /// Names `sid` under `cid`.
    pub fn new(cid: Cid, sid: Sid) -> Self {
        Self {
            cid,
            cid_secret: None,
            sid,
        }
    }
}

/// Inactivate's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionInactiveResponse {
    /// Merchant code.
    pub cid: Cid,
    /// The subscription.
    pub sid: Sid,
    /// `INACTIVE`.
    pub status: SubscriptionStatus,
    /// When the SID was issued.
    #[serde(default)]
    pub created_at: Option<KstDateTime>,
    /// Last successful charge.
    #[serde(default)]
    pub last_approved_at: Option<KstDateTime>,
    /// When it was inactivated.
    #[serde(default)]
    pub inactivated_at: Option<KstDateTime>,
}

/// Status's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionStatusResponse {
    /// Whether the SID can be charged.
    #[serde(default, deserialize_with = "opt_bool")]
    pub available: Option<bool>,
    /// Merchant code.
    pub cid: Cid,
    /// The subscription.
    pub sid: Sid,
    /// `ACTIVE` or `INACTIVE`.
    pub status: SubscriptionStatus,
    /// `CARD` or `MONEY`.
    #[serde(default)]
    pub payment_method_type: Option<PaymentMethodType>,
    /// Item name of the first payment.
    #[serde(default)]
    pub item_name: Option<String>,
    /// When the SID was issued.
    #[serde(default)]
    pub created_at: Option<KstDateTime>,
    /// Last successful charge.
    #[serde(default)]
    pub last_approved_at: Option<KstDateTime>,
    /// When it was inactivated.
    #[serde(default)]
    pub inactivated_at: Option<KstDateTime>,
    /// Whether the buyer pays fully with points (meaning unconfirmed).
    #[serde(default)]
    pub use_point_status: Option<String>,
}
