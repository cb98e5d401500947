//! The merchant API's answer as the shop reads it: only the fields it shows, typed. The shop is a
//! client of the API like any merchant backend, so it decodes the JSON, not the server's types.

use crate::domain::PaymentStatus;
use serde::Deserialize;

/// Amounts of a payment.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Amounts {
    /// Total.
    pub(crate) total: i64,
    /// Tax-free part.
    #[serde(default)]
    pub(crate) tax_free: i64,
    /// VAT.
    #[serde(default)]
    pub(crate) vat: i64,
}

/// A payment, as `GET /api/v1/payments/{id}` and `POST /api/v1/payments` answer.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct ApiPayment {
    /// Payment id.
    pub(crate) id: String,
    /// Where it stands.
    pub(crate) status: PaymentStatus,
    /// What was charged.
    pub(crate) amount: Amounts,
    /// Refunded so far.
    #[serde(default)]
    pub(crate) canceled_amount: i64,
    /// Where to send the buyer.
    pub(crate) redirect_url: String,
    /// `CARD` or `MONEY`.
    #[serde(default)]
    pub(crate) payment_method_type: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    pub(crate) approved_at: Option<String>,
    /// The approve's AID.
    #[serde(default)]
    pub(crate) aid: Option<String>,
}
