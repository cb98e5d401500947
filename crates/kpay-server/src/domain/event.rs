//! The payment's event log: every status change and every noteworthy outcome that changed no
//! status (an unclear answer, a refund asked, a re-send), append-only, in the same transaction as
//! the change it describes. Causes and failure codes are closed sets; their texts are the wire
//! and database forms (contract §4).

use super::{Event, PaymentId, PaymentStatus, Timestamp};
use kakaopay::OrderStatus;
use std::fmt;

/// Why an event-log line was written.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantArray,
)]
#[strum(serialize_all = "snake_case")]
pub enum Cause {
    /// Ready answered; the payment exists.
    Created,
    /// A status change: the machine's event.
    ApproveClaimed,
    /// KakaoPay approved it.
    Approved,
    /// KakaoPay refused the approve; the buyer may still pay.
    ApproveRetryable,
    /// KakaoPay refused the approve for good.
    ApproveFailed,
    /// An approve that mismatched the order was cancelled at KakaoPay.
    #[strum(serialize = "amount_mismatch_canceled")]
    MismatchCanceled,
    /// The buyer quit.
    BuyerQuit,
    /// Authentication failed.
    AuthFailed,
    /// The 15 minutes ran out.
    Expired,
    /// A refund left some money.
    #[strum(serialize = "refunded_part")]
    PartlyRefunded,
    /// A refund left nothing.
    #[strum(serialize = "refunded_full")]
    FullyRefunded,
    /// The approve's outcome is unknown (timeout, reset, 5xx).
    ApproveUnclear,
    /// A lookup found the buyer authenticated after the grace: the approve was sent again.
    ApproveResent,
    /// KakaoPay's figures do not match the order.
    AmountMismatch,
    /// Cancelling a mismatching approve failed or is unclear; it is tried again.
    MismatchCancelFailed,
    /// A refund was asked (and is being sent).
    RefundRequested,
    /// The refund's outcome is unknown.
    RefundUnclear,
    /// The refund failed; nothing was refunded.
    RefundFailed,
    /// A refund made at KakaoPay that this ledger did not know of was recorded.
    RefundReconciled,
}

impl Cause {
    /// The stored and wire text.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl From<Event> for Cause {
    fn from(e: Event) -> Self {
        match e {
            Event::ApproveClaimed => Cause::ApproveClaimed,
            Event::Approved => Cause::Approved,
            Event::ApproveRetryable => Cause::ApproveRetryable,
            Event::ApproveFailed => Cause::ApproveFailed,
            Event::MismatchCanceled => Cause::MismatchCanceled,
            Event::BuyerQuit => Cause::BuyerQuit,
            Event::AuthFailed => Cause::AuthFailed,
            Event::Expired => Cause::Expired,
            Event::PartlyRefunded => Cause::PartlyRefunded,
            Event::FullyRefunded => Cause::FullyRefunded,
        }
    }
}

/// What kind of failure a payment or refund records. The text forms are the API's
/// `failure.code`: KakaoPay's numeric code, KakaoPay's order status, or the server's reason.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FailureCode {
    /// KakaoPay answered with this error code (e.g. -780).
    KakaoPay(i64),
    /// An order lookup found the order in this status (e.g. `FAIL_AUTH_PASSWORD`).
    OrderStatus(OrderStatus),
    /// KakaoPay failed without a code.
    KakaoPayError,
    /// KakaoPay could not be reached; nothing happened.
    KakaoPayUnavailable,
    /// KakaoPay's approve did not match the order; it was cancelled.
    AmountMismatch,
    /// KakaoPay did not apply the refund (a lookup after the grace period).
    NotApplied,
}

impl FailureCode {
    /// Parses the stored text; `None` for a text no version of this server writes.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "kakaopay_error" => Self::KakaoPayError,
            "kakaopay_unavailable" => Self::KakaoPayUnavailable,
            "amount_mismatch" => Self::AmountMismatch,
            "not_applied" => Self::NotApplied,
            // KakaoPay's codes are negative, but an unknown one may be anything: any integer.
            n if n.parse::<i64>().is_ok() => Self::KakaoPay(n.parse().ok()?),
            status
                if !status.is_empty()
                    && status.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') =>
            {
                match status.parse::<OrderStatus>() {
                    Ok(s) => Self::OrderStatus(s),
                    Err(never) => match never {},
                }
            }
            _ => return None,
        })
    }
}

impl fmt::Display for FailureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KakaoPay(code) => write!(f, "{code}"),
            Self::OrderStatus(s) => f.write_str(s.as_str()),
            Self::KakaoPayError => f.write_str("kakaopay_error"),
            Self::KakaoPayUnavailable => f.write_str("kakaopay_unavailable"),
            Self::AmountMismatch => f.write_str("amount_mismatch"),
            Self::NotApplied => f.write_str("not_applied"),
        }
    }
}

/// What an event-log line says besides its cause: KakaoPay's code and a text for people.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Detail {
    /// KakaoPay's code, when it answered with one.
    pub kakaopay_code: Option<i64>,
    /// For people.
    pub text: Option<String>,
}

impl Detail {
    /// Nothing besides the cause.
    pub fn none() -> Self {
        Self::default()
    }
    /// A text.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            kakaopay_code: None,
            text: Some(text.into()),
        }
    }
    /// Adds KakaoPay's code.
    pub fn code(mut self, code: Option<i64>) -> Self {
        self.kakaopay_code = code;
        self
    }
}

/// A line of the event log as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentEvent {
    /// Sequence number (increasing).
    pub seq: i64,
    /// The payment.
    pub payment_id: PaymentId,
    /// Status before (`None`: the creation).
    pub from: Option<PaymentStatus>,
    /// Status after (the same as before for a note).
    pub to: PaymentStatus,
    /// Why.
    pub cause: Cause,
    /// KakaoPay's code.
    pub kakaopay_code: Option<i64>,
    /// For people (of the last occurrence).
    pub detail: Option<String>,
    /// When.
    pub at: Timestamp,
    /// How many identical outcomes in a row this line stands for.
    pub repeats: u32,
    /// When the last of them happened (`None`: only one).
    pub last_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::VariantArray;

    #[test]
    fn causes_round_trip_through_their_text() {
        for c in Cause::VARIANTS {
            assert_eq!(c.as_str().parse::<Cause>(), Ok(*c));
        }
        assert_eq!(Cause::PartlyRefunded.as_str(), "refunded_part");
        assert_eq!(Cause::MismatchCanceled.as_str(), "amount_mismatch_canceled");
        assert_eq!(Cause::ApproveClaimed.as_str(), "approve_claimed");
        assert!("approve claimed".parse::<Cause>().is_err());
    }

    #[test]
    fn every_machine_event_has_its_cause_with_the_same_text() {
        for e in super::super::machine::EVENTS {
            assert_eq!(Cause::from(e).as_str(), e.as_str());
        }
    }

    #[test]
    fn failure_codes_round_trip_through_their_text() {
        for code in [
            FailureCode::KakaoPay(-780),
            FailureCode::KakaoPay(-723),
            FailureCode::KakaoPay(0),
            FailureCode::KakaoPay(500),
            FailureCode::OrderStatus(OrderStatus::FailAuthPassword),
            FailureCode::OrderStatus(OrderStatus::Ready),
            FailureCode::KakaoPayError,
            FailureCode::KakaoPayUnavailable,
            FailureCode::AmountMismatch,
            FailureCode::NotApplied,
        ] {
            assert_eq!(FailureCode::parse(&code.to_string()), Some(code));
        }
        for bad in ["", "-", "-7a", "what", "Fail", "5 00"] {
            assert_eq!(FailureCode::parse(bad), None, "{bad}");
        }
    }
}
