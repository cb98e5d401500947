//! Ready (결제 준비): create a payment and get its TID and the buyer's redirect URLs.

use crate::wire::{json_or_json_string, opt_bool, ser_yn};
use crate::{
    Amount, Cid, CidSecret, InstallMonth, ItemCode, ItemName, KstDateTime, PartnerOrderId,
    PartnerUserId, PaymentMethodType, Quantity, RedirectUrl, Tid, ValidationError, default_vat,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A ready request. Build it with [`ReadyRequest::builder`]; the client validates it again before
/// sending ([`ReadyRequest::validate`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadyRequest {
    /// Merchant code.
    pub cid: Cid,
    /// CID authentication key, when the merchant has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid_secret: Option<CidSecret>,
    /// The merchant's order id; approve must repeat it.
    pub partner_order_id: PartnerOrderId,
    /// The merchant's user id; approve must repeat it.
    pub partner_user_id: PartnerUserId,
    /// Item name shown to the buyer.
    pub item_name: ItemName,
    /// Item code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_code: Option<ItemCode>,
    /// Item count.
    pub quantity: Quantity,
    /// Total amount.
    pub total_amount: Amount,
    /// Tax-free part of the total (0 if none).
    pub tax_free_amount: Amount,
    /// VAT; KakaoPay applies [`default_vat`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vat_amount: Option<Amount>,
    /// Cup deposit; a payment with one can only be cancelled in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub green_deposit: Option<Amount>,
    /// Where the buyer lands after authenticating, with `pg_token` appended.
    pub approval_url: RedirectUrl,
    /// Where the buyer lands after quitting.
    pub cancel_url: RedirectUrl,
    /// Where the buyer lands after a failure or expiry.
    pub fail_url: RedirectUrl,
    /// Card companies allowed (needs an agreement with KakaoPay), e.g. `["KB","BC"]`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "json_or_json_string"
    )]
    pub available_cards: Option<Vec<String>>,
    /// Restrict to `CARD` or `MONEY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_method_type: Option<PaymentMethodType>,
    /// Card installment months.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_month: Option<InstallMonth>,
    /// Shared interest-free installment (`Y`/`N` on the wire).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_yn",
        deserialize_with = "opt_bool"
    )]
    pub use_share_installment: Option<bool>,
    /// Predefined add-on features (`return_custom_url`, …).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "json_or_json_string"
    )]
    pub custom_json: Option<BTreeMap<String, String>>,
    /// App-scheme redirect (current generation only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_scheme_url: Option<String>,
}

impl ReadyRequest {
    /// A builder taking plain values; [`ReadyRequestBuilder::build`] parses and checks them all.
    pub fn builder() -> ReadyRequestBuilder {
        ReadyRequestBuilder::default()
    }

    /// The VAT KakaoPay will record: `vat_amount`, or the default rule.
    pub fn effective_vat(&self) -> Option<Amount> {
        self.vat_amount
            .or_else(|| default_vat(self.total_amount, self.tax_free_amount))
    }

    /// Cross-field checks that the field types alone cannot express.
    pub fn validate(&self) -> Result<(), ValidationError> {
        crate::money::check_order_amounts(
            self.total_amount,
            self.tax_free_amount,
            self.vat_amount,
            self.green_deposit,
        )?;
        if let Some(PaymentMethodType::Unknown(_)) = &self.payment_method_type {
            return Err(ValidationError::new(
                "payment_method_type",
                "must be CARD or MONEY",
            ));
        }
        let bad_card = |c: &String| c.is_empty() || !c.bytes().all(|b| b.is_ascii_alphanumeric());
        if self
            .available_cards
            .as_ref()
            .is_some_and(|cards| cards.iter().any(bad_card))
        {
            return Err(ValidationError::new(
                "available_cards",
                "must list card company codes such as KB or BC",
            ));
        }
        if self
            .redirect_scheme_url
            .as_ref()
            .is_some_and(|u| u.chars().count() > 255)
        {
            return Err(ValidationError::new(
                "redirect_scheme_url",
                "must be at most 255 characters",
            ));
        }
        Ok(())
    }
}

/// Collects plain values for a [`ReadyRequest`]; [`ReadyRequestBuilder::build`] is the one
/// validation step.
#[derive(Clone, Debug, Default)]
pub struct ReadyRequestBuilder {
    cid: Option<String>,
    cid_secret: Option<String>,
    partner_order_id: Option<String>,
    partner_user_id: Option<String>,
    item_name: Option<String>,
    item_code: Option<String>,
    quantity: Option<i64>,
    total_amount: Option<i64>,
    tax_free_amount: Option<i64>,
    vat_amount: Option<i64>,
    green_deposit: Option<i64>,
    approval_url: Option<String>,
    cancel_url: Option<String>,
    fail_url: Option<String>,
    available_cards: Option<Vec<String>>,
    payment_method_type: Option<PaymentMethodType>,
    install_month: Option<i64>,
    use_share_installment: Option<bool>,
    custom_json: Option<BTreeMap<String, String>>,
    redirect_scheme_url: Option<String>,
}

macro_rules! setters {
    ($($(#[$m:meta])* $name:ident: $ty:ty),+ $(,)?) => {
        $($(#[$m])* pub fn $name(mut self, value: impl Into<$ty>) -> Self {
            self.$name = Some(value.into());
            self
        })+
    };
}

fn required<T>(field: &'static str, v: Option<T>) -> Result<T, ValidationError> {
    v.ok_or_else(|| ValidationError::new(field, "is required"))
}

impl ReadyRequestBuilder {
    setters! {
        /// Merchant code (required), e.g. `TC0ONETIME`.
        cid: String,
        /// CID authentication key.
        cid_secret: String,
        /// The merchant's order id (required).
        partner_order_id: String,
        /// The merchant's user id (required).
        partner_user_id: String,
        /// Item name (required).
        item_name: String,
        /// Item code.
        item_code: String,
        /// Item count (required).
        quantity: i64,
        /// Total amount in won (required).
        total_amount: i64,
        /// Tax-free part in won (defaults to 0).
        tax_free_amount: i64,
        /// VAT in won (defaults to KakaoPay's rule).
        vat_amount: i64,
        /// Cup deposit in won.
        green_deposit: i64,
        /// Success redirect (required).
        approval_url: String,
        /// Buyer-quit redirect (required).
        cancel_url: String,
        /// Failure redirect (required).
        fail_url: String,
        /// Allowed card companies.
        available_cards: Vec<String>,
        /// Restrict the method.
        payment_method_type: PaymentMethodType,
        /// Installment months, 0–12.
        install_month: i64,
        /// Shared interest-free installment.
        use_share_installment: bool,
        /// Add-on features.
        custom_json: BTreeMap<String, String>,
        /// App-scheme redirect.
        redirect_scheme_url: String,
    }

    /// Parses every value and runs [`ReadyRequest::validate`]; the first problem is returned.
    pub fn build(self) -> Result<ReadyRequest, ValidationError> {
        let amount = |field, v: Option<i64>| v.map(|n| Amount::new_for(field, n)).transpose();
        let req = ReadyRequest {
            cid: Cid::parse(required("cid", self.cid)?)?,
            cid_secret: self.cid_secret.map(CidSecret::parse).transpose()?,
            partner_order_id: PartnerOrderId::parse(required(
                "partner_order_id",
                self.partner_order_id,
            )?)?,
            partner_user_id: PartnerUserId::parse(required(
                "partner_user_id",
                self.partner_user_id,
            )?)?,
            item_name: ItemName::parse(required("item_name", self.item_name)?)?,
            item_code: self.item_code.map(ItemCode::parse).transpose()?,
            quantity: Quantity::new(required("quantity", self.quantity)?)?,
            total_amount: Amount::new_for(
                "total_amount",
                required("total_amount", self.total_amount)?,
            )?,
            tax_free_amount: amount("tax_free_amount", self.tax_free_amount)?
                .unwrap_or(Amount::ZERO),
            vat_amount: amount("vat_amount", self.vat_amount)?,
            green_deposit: amount("green_deposit", self.green_deposit)?,
            approval_url: RedirectUrl::parse_for(
                "approval_url",
                required("approval_url", self.approval_url)?,
            )?,
            cancel_url: RedirectUrl::parse_for(
                "cancel_url",
                required("cancel_url", self.cancel_url)?,
            )?,
            fail_url: RedirectUrl::parse_for("fail_url", required("fail_url", self.fail_url)?)?,
            available_cards: self.available_cards,
            payment_method_type: self.payment_method_type,
            install_month: self.install_month.map(InstallMonth::new).transpose()?,
            use_share_installment: self.use_share_installment,
            custom_json: self.custom_json,
            redirect_scheme_url: self.redirect_scheme_url,
        };
        req.validate()?;
        Ok(req)
    }
}

/// Ready's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyResponse {
    /// The payment id: store it with *this* order.
    pub tid: Tid,
    /// For native apps (opens the KakaoTalk app scheme in a webview).
    #[serde(default)]
    pub next_redirect_app_url: Option<String>,
    /// For mobile web.
    #[serde(default)]
    pub next_redirect_mobile_url: Option<String>,
    /// For PC web (QR code / KakaoTalk message page).
    #[serde(default)]
    pub next_redirect_pc_url: Option<String>,
    /// `kakaotalk://kakaopay/pg?url=…` (legacy; internal in the current generation).
    #[serde(default)]
    pub android_app_scheme: Option<String>,
    /// Same format as `android_app_scheme`.
    #[serde(default)]
    pub ios_app_scheme: Option<String>,
    /// When ready was called.
    #[serde(default)]
    pub created_at: Option<KstDateTime>,
    /// Undocumented, seen in legacy answers.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_bool"
    )]
    pub tms_result: Option<bool>,
}
