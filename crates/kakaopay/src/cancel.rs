//! Cancel (결제 취소): refund a payment in full or in part.

use crate::wire::opt_int;
use crate::{
    Aid, Amount, AmountBreakdown, Cid, CidSecret, KstDateTime, OrderStatus, PartnerOrderId,
    PartnerUserId, Payload, PaymentMethodType, Tid, ValidationError, default_vat,
};
use serde::{Deserialize, Serialize};

/// A cancel request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CancelRequest {
    /// Merchant code.
    pub cid: Cid,
    /// CID authentication key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid_secret: Option<CidSecret>,
    /// The payment.
    pub tid: Tid,
    /// Amount to refund now.
    pub cancel_amount: Amount,
    /// Tax-free part of it.
    pub cancel_tax_free_amount: Amount,
    /// VAT part; KakaoPay applies [`default_vat`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_vat_amount: Option<Amount>,
    /// The cancellable amount the merchant believes remains *before* this cancel: a concurrency
    /// guard, refused when KakaoPay's figure differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_available_amount: Option<Amount>,
    /// Stored with this cancel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Payload>,
}

impl CancelRequest {
    /// A cancel of `amount`, of which `tax_free` is tax-free.
    pub fn new(cid: Cid, tid: Tid, amount: Amount, tax_free: Amount) -> Self {
        Self {
            cid,
            cid_secret: None,
            tid,
            cancel_amount: amount,
            cancel_tax_free_amount: tax_free,
            cancel_vat_amount: None,
            cancel_available_amount: None,
            payload: None,
        }
    }
    /// Sets the VAT part.
    pub fn vat(mut self, vat: Amount) -> Self {
        self.cancel_vat_amount = Some(vat);
        self
    }
    /// Sets the concurrency guard (what remains cancellable before this cancel).
    pub fn expect_available(mut self, remaining: Amount) -> Self {
        self.cancel_available_amount = Some(remaining);
        self
    }
    /// Adds a payload.
    pub fn payload(mut self, payload: Payload) -> Self {
        self.payload = Some(payload);
        self
    }
    /// Adds the CID authentication key.
    pub fn cid_secret(mut self, secret: CidSecret) -> Self {
        self.cid_secret = Some(secret);
        self
    }

    /// The VAT KakaoPay will record for this cancel.
    pub fn effective_vat(&self) -> Option<Amount> {
        self.cancel_vat_amount
            .or_else(|| default_vat(self.cancel_amount, self.cancel_tax_free_amount))
    }

    /// Cross-field checks: a positive amount, tax-free and VAT parts within it, the guard not below it.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.cancel_amount == Amount::ZERO {
            return Err(ValidationError::new("cancel_amount", "must be at least 1"));
        }
        let taxable = self
            .cancel_amount
            .checked_sub(self.cancel_tax_free_amount)
            .ok_or_else(|| {
                ValidationError::new("cancel_tax_free_amount", "must not exceed cancel_amount")
            })?;
        if self.cancel_vat_amount.is_some_and(|v| v > taxable) {
            return Err(ValidationError::new(
                "cancel_vat_amount",
                "must not exceed cancel_amount minus cancel_tax_free_amount",
            ));
        }
        if self
            .cancel_available_amount
            .is_some_and(|a| a < self.cancel_amount)
        {
            return Err(ValidationError::new(
                "cancel_available_amount",
                "is below cancel_amount: the refund cannot fit",
            ));
        }
        Ok(())
    }
}

/// Cancel's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelResponse {
    /// Request id of this cancel.
    pub aid: Aid,
    /// The payment.
    pub tid: Tid,
    /// Merchant code.
    pub cid: Cid,
    /// `PART_CANCEL_PAYMENT` or `CANCEL_PAYMENT`.
    pub status: OrderStatus,
    /// The merchant's order id.
    pub partner_order_id: PartnerOrderId,
    /// The merchant's user id.
    pub partner_user_id: PartnerUserId,
    /// `CARD` or `MONEY`.
    #[serde(default)]
    pub payment_method_type: Option<PaymentMethodType>,
    /// The original payment.
    pub amount: AmountBreakdown,
    /// What this request refunded.
    pub approved_cancel_amount: AmountBreakdown,
    /// Refunded so far, this request included.
    pub canceled_amount: AmountBreakdown,
    /// Still refundable.
    pub cancel_available_amount: AmountBreakdown,
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
    /// When this cancel happened.
    #[serde(default)]
    pub canceled_at: Option<KstDateTime>,
    /// Echo of the payload.
    #[serde(default)]
    pub payload: Option<String>,
}
