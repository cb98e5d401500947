//! Objects and value sets shared by several operations: timestamps, statuses, card details.

use crate::wire::{opt_amount, opt_int, opt_text, string_enum};
use crate::{Aid, Amount};
use chrono::{FixedOffset, NaiveDateTime, TimeZone};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A KakaoPay timestamp: local Korean time (KST, UTC+9) without an offset, e.g. `2016-11-15T21:18:22`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KstDateTime(pub NaiveDateTime);

impl KstDateTime {
    /// The KST offset.
    pub fn offset() -> FixedOffset {
        // 9 hours is always a valid offset.
        FixedOffset::east_opt(9 * 3600).unwrap_or_else(|| unreachable!())
    }
    /// The same instant in UTC.
    pub fn to_utc(self) -> chrono::DateTime<chrono::Utc> {
        match Self::offset().from_local_datetime(&self.0) {
            chrono::LocalResult::Single(t) => t.with_timezone(&chrono::Utc),
            // A fixed offset has no gaps or folds.
            _ => chrono::DateTime::from_naive_utc_and_offset(self.0, chrono::Utc),
        }
    }
    /// The KST wall-clock time of a UTC instant.
    pub fn from_utc(t: chrono::DateTime<chrono::Utc>) -> Self {
        Self(t.with_timezone(&Self::offset()).naive_local())
    }
    /// Parses the wire form; also accepts fractional seconds, a space separator and an explicit
    /// offset (converted to KST).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
            if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
                return Some(Self(t));
            }
        }
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| Self::from_utc(t.with_timezone(&chrono::Utc)))
    }
}

impl fmt::Display for KstDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M:%S"))
    }
}
impl Serialize for KstDateTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for KstDateTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not a KakaoPay timestamp: {s:?}")))
    }
}

string_enum!(
    /// How the buyer paid.
    PaymentMethodType {
        /// A card.
        Card = "CARD",
        /// KakaoPay Money (balance / linked bank account).
        Money = "MONEY",
    }
);

string_enum!(
    /// The status of an order (a TID) at KakaoPay.
    OrderStatus {
        /// Ready was called.
        Ready = "READY",
        /// A KakaoTalk payment message was sent (PC flow).
        SendTms = "SEND_TMS",
        /// The buyer opened the payment screen.
        OpenPayment = "OPEN_PAYMENT",
        /// A method was selected.
        SelectMethod = "SELECT_METHOD",
        /// Phone (ARS) authentication in progress.
        ArsWaiting = "ARS_WAITING",
        /// Password authentication done: ready for approve.
        AuthPassword = "AUTH_PASSWORD",
        /// Only a SID was issued (subscription registration).
        IssuedSid = "ISSUED_SID",
        /// Paid.
        SuccessPayment = "SUCCESS_PAYMENT",
        /// Partly refunded.
        PartCancelPayment = "PART_CANCEL_PAYMENT",
        /// Fully refunded.
        CancelPayment = "CANCEL_PAYMENT",
        /// The buyer failed password authentication.
        FailAuthPassword = "FAIL_AUTH_PASSWORD",
        /// The buyer quit.
        QuitPayment = "QUIT_PAYMENT",
        /// Approval failed.
        FailPayment = "FAIL_PAYMENT",
    }
);

impl OrderStatus {
    /// Waiting for the buyer or for approve: the outcome is not decided yet.
    pub fn is_pending(&self) -> bool {
        matches!(
            self,
            Self::Ready
                | Self::SendTms
                | Self::OpenPayment
                | Self::SelectMethod
                | Self::ArsWaiting
                | Self::AuthPassword
        )
    }
    /// Money was taken (possibly refunded since, in part or in full).
    pub fn is_paid(&self) -> bool {
        matches!(
            self,
            Self::SuccessPayment | Self::PartCancelPayment | Self::CancelPayment
        )
    }
    /// Ended without payment.
    pub fn is_failed(&self) -> bool {
        matches!(
            self,
            Self::FailAuthPassword | Self::QuitPayment | Self::FailPayment
        )
    }
}

string_enum!(
    /// What one entry of `payment_action_details` records.
    PaymentActionType {
        /// A payment.
        Payment = "PAYMENT",
        /// A cancel (refund).
        Cancel = "CANCEL",
        /// A SID issuance.
        IssuedSid = "ISSUED_SID",
    }
);

string_enum!(
    /// Whether a SID can still be charged.
    SubscriptionStatus {
        /// Chargeable.
        Active = "ACTIVE",
        /// Inactivated.
        Inactive = "INACTIVE",
    }
);

string_enum!(
    /// Which kind of interest-free installment applied (new generation, since 2024-02).
    InstallmentType {
        /// Card-industry interest-free installment.
        CardInstallment = "CARD_INSTALLMENT",
        /// Shared interest-free installment.
        ShareInstallment = "SHARE_INSTALLMENT",
    }
);

/// Card details in approve and subscription answers (card payments only). Every field is optional:
/// generations and card companies differ in what they send.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardInfo {
    /// Acquirer name as KakaoPay labels it, e.g. `비씨카드`.
    #[serde(default)]
    pub kakaopay_purchase_corp: Option<String>,
    /// Acquirer code, e.g. `104`.
    #[serde(default)]
    pub kakaopay_purchase_corp_code: Option<String>,
    /// Issuer name, e.g. `신한`.
    #[serde(default)]
    pub kakaopay_issuer_corp: Option<String>,
    /// Issuer code.
    #[serde(default)]
    pub kakaopay_issuer_corp_code: Option<String>,
    /// Card BIN.
    #[serde(default)]
    pub bin: Option<String>,
    /// `신용` (credit) or `체크` (check).
    #[serde(default)]
    pub card_type: Option<String>,
    /// Installment months as two digits; `"00"` is a lump sum. Text here, a number in
    /// [`SelectedCardInfo`].
    #[serde(default, deserialize_with = "opt_text")]
    pub install_month: Option<String>,
    /// Card-company approval number.
    #[serde(default)]
    pub approved_id: Option<String>,
    /// Card-company merchant number.
    #[serde(default)]
    pub card_mid: Option<String>,
    /// `Y`/`N`.
    #[serde(default)]
    pub interest_free_install: Option<String>,
    /// Interest-free installment kind (current generation).
    #[serde(default)]
    pub installment_type: Option<InstallmentType>,
    /// Card product code.
    #[serde(default)]
    pub card_item_code: Option<String>,
    /// Legacy acquirer name, e.g. `신한카드`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_corp: Option<String>,
    /// Legacy two-digit acquirer code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_corp_code: Option<String>,
    /// Legacy issuer name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_corp: Option<String>,
    /// Legacy two-digit issuer code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_corp_code: Option<String>,
}

/// The card chosen, as order lookup reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectedCardInfo {
    /// Card BIN.
    #[serde(default)]
    pub card_bin: Option<String>,
    /// Installment months, a number here (text in [`CardInfo`]).
    #[serde(default, deserialize_with = "opt_int")]
    pub install_month: Option<i64>,
    /// Interest-free installment kind (current generation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installment_type: Option<InstallmentType>,
    /// Card company name.
    #[serde(default)]
    pub card_corp_name: Option<String>,
    /// `Y`/`N`.
    #[serde(default)]
    pub interest_free_install: Option<String>,
}

/// One payment, cancel or SID issuance in an order's history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentActionDetail {
    /// Request id of the action.
    #[serde(default)]
    pub aid: Option<Aid>,
    /// When it happened.
    #[serde(default)]
    pub approved_at: Option<KstDateTime>,
    /// Total of the action.
    #[serde(default, deserialize_with = "opt_amount")]
    pub amount: Option<Amount>,
    /// Points part.
    #[serde(default, deserialize_with = "opt_amount")]
    pub point_amount: Option<Amount>,
    /// Discount part.
    #[serde(default, deserialize_with = "opt_amount")]
    pub discount_amount: Option<Amount>,
    /// Cup deposit part.
    #[serde(default, deserialize_with = "opt_amount")]
    pub green_deposit: Option<Amount>,
    /// `PAYMENT`, `CANCEL` or `ISSUED_SID`.
    #[serde(default)]
    pub payment_action_type: Option<PaymentActionType>,
    /// Payload sent with the action.
    #[serde(default)]
    pub payload: Option<String>,
    /// Method of the action (in documentation samples only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_method_type: Option<PaymentMethodType>,
}

/// One method of a sequential payment (current generation, sequential-payment CIDs only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequentialPaymentMethod {
    /// Order in which the method is tried.
    #[serde(default, deserialize_with = "opt_int")]
    pub payment_priority: Option<i64>,
    /// SID of the method.
    #[serde(default)]
    pub sid: Option<String>,
    /// `CARD` or `MONEY`.
    #[serde(default)]
    pub payment_method_type: Option<PaymentMethodType>,
    /// Card details, for cards.
    #[serde(default)]
    pub card_info: Option<CardInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_in_kst() {
        let t = KstDateTime::parse("2016-11-15T21:18:22").unwrap();
        assert_eq!(t.to_string(), "2016-11-15T21:18:22");
        assert_eq!(t.to_utc().to_rfc3339(), "2016-11-15T12:18:22+00:00");
        assert_eq!(
            KstDateTime::parse("2016-11-15T21:18:22.123")
                .unwrap()
                .to_string(),
            "2016-11-15T21:18:22"
        );
        assert_eq!(KstDateTime::parse("2016-11-15T12:18:22Z").unwrap(), t);
        assert!(KstDateTime::parse("yesterday").is_none());
    }

    #[test]
    fn unknown_status_values_are_kept() {
        let s: OrderStatus = serde_json::from_str("\"NEW_THING\"").unwrap();
        assert_eq!(s, OrderStatus::Unknown("NEW_THING".into()));
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"NEW_THING\"");
        assert!(OrderStatus::AuthPassword.is_pending());
        assert!(OrderStatus::PartCancelPayment.is_paid());
    }
}
