//! The payment state machine: `ready → approving → approved → partially_canceled → canceled`, and
//! the ends `quit`, `failed`, `expired`. One pure function decides every transition; the store
//! applies it with a conditional update so that concurrent actors cannot both win.

use super::Amounts;
use kakaopay::OrderStatus;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a payment stands, from the merchant's side (contract §4).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum PaymentStatus {
    /// Waiting for the buyer.
    Ready,
    /// Approve sent; the outcome is not known yet (its truth is at KakaoPay).
    Approving,
    /// Paid.
    Approved,
    /// Paid, part refunded.
    PartiallyCanceled,
    /// Fully refunded (or cancelled at once after an amount mismatch).
    Canceled,
    /// The buyer quit.
    Quit,
    /// Authentication or approval failed; nothing was taken.
    Failed,
    /// Not paid within 15 minutes.
    Expired,
}

impl PaymentStatus {
    /// Every status, for metrics and filters.
    pub const ALL: [PaymentStatus; 8] = [
        Self::Ready,
        Self::Approving,
        Self::Approved,
        Self::PartiallyCanceled,
        Self::Canceled,
        Self::Quit,
        Self::Failed,
        Self::Expired,
    ];

    /// The wire and database text.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses the wire text.
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    /// Nothing more can happen to it.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            Self::Canceled | Self::Quit | Self::Failed | Self::Expired
        )
    }

    /// It ended without money taken: quit, failed or expired. The merchant order may then be
    /// paid by a new payment.
    pub const fn ends_unpaid(self) -> bool {
        matches!(self, Self::Quit | Self::Failed | Self::Expired)
    }

    /// Money was taken (and not all of it given back).
    pub const fn is_refundable(self) -> bool {
        matches!(self, Self::Approved | Self::PartiallyCanceled)
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a refund stands.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RefundStatus {
    /// Sent (or about to be); the outcome is not known yet.
    Pending,
    /// KakaoPay refunded it.
    Succeeded,
    /// KakaoPay refused it; nothing was refunded.
    Failed,
}

impl RefundStatus {
    /// The wire and database text.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
    /// Parses the wire text.
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

/// What happened to a payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// A callback with a pg_token claimed the approve.
    ApproveClaimed,
    /// KakaoPay approved it and the amounts match.
    Approved,
    /// KakaoPay refused the approve but the buyer may still pay (wrong or early pg_token).
    ApproveRetryable,
    /// KakaoPay refused the approve for good.
    ApproveFailed,
    /// KakaoPay approved an amount that does not match; it was cancelled at once.
    MismatchCanceled,
    /// The buyer quit on KakaoPay's page.
    BuyerQuit,
    /// The buyer failed authentication.
    AuthFailed,
    /// The 15 minutes ran out without a payment.
    Expired,
    /// A refund succeeded and some money is left.
    PartlyRefunded,
    /// A refund succeeded and nothing is left.
    FullyRefunded,
}

impl Event {
    /// The text stored as the event's cause.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ApproveClaimed => "approve_claimed",
            Self::Approved => "approved",
            Self::ApproveRetryable => "approve_retryable",
            Self::ApproveFailed => "approve_failed",
            Self::MismatchCanceled => "amount_mismatch_canceled",
            Self::BuyerQuit => "buyer_quit",
            Self::AuthFailed => "auth_failed",
            Self::Expired => "expired",
            Self::PartlyRefunded => "refunded_part",
            Self::FullyRefunded => "refunded_full",
        }
    }
}

/// An event that cannot happen in the payment's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a payment that is {from} cannot take the event {}", event.as_str())]
pub struct TransitionError {
    /// The status.
    pub from: PaymentStatus,
    /// The event.
    pub event: Event,
}

/// The transition function: the status after `event`, or why it cannot happen.
pub fn transition(from: PaymentStatus, event: Event) -> Result<PaymentStatus, TransitionError> {
    use Event as E;
    use PaymentStatus as S;
    let to = match (from, event) {
        (S::Ready, E::ApproveClaimed) => S::Approving,
        (S::Approving, E::Approved) => S::Approved,
        (S::Approving, E::ApproveRetryable) => S::Ready,
        (S::Approving, E::ApproveFailed) => S::Failed,
        (S::Approving, E::MismatchCanceled) => S::Canceled,
        // A lookup may learn of a quit, a failure or the expiry while an approve was unclear.
        (S::Ready | S::Approving, E::BuyerQuit) => S::Quit,
        (S::Ready | S::Approving, E::AuthFailed) => S::Failed,
        (S::Ready | S::Approving, E::Expired) => S::Expired,
        // A lookup may learn of an approve whose callback never arrived or whose answer was lost.
        (S::Ready, E::Approved) => S::Approved,
        (S::Ready, E::MismatchCanceled) => S::Canceled,
        (S::Approved | S::PartiallyCanceled, E::PartlyRefunded) => S::PartiallyCanceled,
        (S::Approved | S::PartiallyCanceled, E::FullyRefunded) => S::Canceled,
        _ => return Err(TransitionError { from, event }),
    };
    Ok(to)
}

/// The event a successful refund is for the payment: the refund that leaves nothing to refund
/// (or was asked as "everything left") ends it `canceled`, any other leaves it
/// `partially_canceled`. `refunded` is the payment's refunded total after the refund.
pub fn refund_event(paid: &Amounts, refunded: &Amounts, asked_for_all: bool) -> Event {
    if asked_for_all || refunded.total >= paid.total {
        Event::FullyRefunded
    } else {
        Event::PartlyRefunded
    }
}

/// What an order lookup says, reduced to what the ledger needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    /// KakaoPay's status.
    pub status: OrderStatus,
    /// Whether the payment's 15 minutes are over (by the merchant's clock and ready's time).
    pub past_expiry: bool,
}

/// The event a lookup implies for a payment in `local` status, if any. Paid states are reconciled
/// by the refund ledger, not here.
pub fn reconcile(local: PaymentStatus, remote: &Remote) -> Option<Event> {
    use OrderStatus as K;
    if local.is_final() || local.is_refundable() {
        return None;
    }
    match &remote.status {
        K::SuccessPayment | K::PartCancelPayment | K::CancelPayment => Some(Event::Approved),
        K::QuitPayment => Some(Event::BuyerQuit),
        K::FailAuthPassword => Some(Event::AuthFailed),
        K::FailPayment => Some(if local == PaymentStatus::Approving {
            Event::ApproveFailed
        } else {
            Event::AuthFailed
        }),
        s if s.is_pending() && remote.past_expiry => Some(Event::Expired),
        _ => None,
    }
}

/// Every event, for tests.
#[cfg(test)]
pub(crate) const EVENTS: [Event; 10] = [
    Event::ApproveClaimed,
    Event::Approved,
    Event::ApproveRetryable,
    Event::ApproveFailed,
    Event::MismatchCanceled,
    Event::BuyerQuit,
    Event::AuthFailed,
    Event::Expired,
    Event::PartlyRefunded,
    Event::FullyRefunded,
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_happy_path() {
        let s = transition(PaymentStatus::Ready, Event::ApproveClaimed).unwrap();
        assert_eq!(s, PaymentStatus::Approving);
        let s = transition(s, Event::Approved).unwrap();
        let s = transition(s, Event::PartlyRefunded).unwrap();
        assert_eq!(s, PaymentStatus::PartiallyCanceled);
        assert_eq!(
            transition(s, Event::FullyRefunded).unwrap(),
            PaymentStatus::Canceled
        );
    }

    #[test]
    fn a_second_approve_claim_is_refused() {
        let e = transition(PaymentStatus::Approving, Event::ApproveClaimed).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a payment that is approving cannot take the event approve_claimed"
        );
        assert!(transition(PaymentStatus::Approved, Event::ApproveClaimed).is_err());
    }

    #[test]
    fn final_states_take_nothing() {
        for s in PaymentStatus::ALL.into_iter().filter(|s| s.is_final()) {
            for e in EVENTS {
                assert!(transition(s, e).is_err(), "{s} took {e:?}");
            }
        }
    }

    #[test]
    fn status_text_round_trips() {
        for s in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(PaymentStatus::parse("nope"), None);
    }

    #[test]
    fn lookups_resolve_unclear_approves() {
        let remote = |status, past_expiry| Remote {
            status,
            past_expiry,
        };
        let a = PaymentStatus::Approving;
        assert_eq!(
            reconcile(a, &remote(OrderStatus::SuccessPayment, false)),
            Some(Event::Approved)
        );
        assert_eq!(
            reconcile(a, &remote(OrderStatus::AuthPassword, false)),
            None
        );
        assert_eq!(
            reconcile(a, &remote(OrderStatus::AuthPassword, true)),
            Some(Event::Expired)
        );
        assert_eq!(
            reconcile(a, &remote(OrderStatus::FailPayment, false)),
            Some(Event::ApproveFailed)
        );
        let r = PaymentStatus::Ready;
        assert_eq!(
            reconcile(r, &remote(OrderStatus::QuitPayment, false)),
            Some(Event::BuyerQuit)
        );
        assert_eq!(
            reconcile(r, &remote(OrderStatus::Ready, true)),
            Some(Event::Expired)
        );
        assert_eq!(reconcile(r, &remote(OrderStatus::OpenPayment, false)), None);
        assert_eq!(
            reconcile(
                PaymentStatus::Approved,
                &remote(OrderStatus::CancelPayment, false)
            ),
            None
        );
        // Whatever a lookup says, the implied event is one the machine accepts.
        for local in PaymentStatus::ALL {
            for status in [
                OrderStatus::Ready,
                OrderStatus::AuthPassword,
                OrderStatus::SuccessPayment,
                OrderStatus::QuitPayment,
                OrderStatus::FailAuthPassword,
                OrderStatus::FailPayment,
                OrderStatus::CancelPayment,
            ] {
                for past in [false, true] {
                    if let Some(e) = reconcile(local, &remote(status.clone(), past)) {
                        assert!(transition(local, e).is_ok(), "{local} {status} {e:?}");
                    }
                }
            }
        }
    }

    proptest! {
        /// The refund path as the services run it: plan a refund against the balance, add it to
        /// the refunded amounts, ask `refund_event` for the event and `transition` for the status.
        /// Every step is legal, the status is `canceled` exactly when nothing is left, and the
        /// refunded total never exceeds what was paid.
        #[test]
        fn real_refund_sequences_end_canceled_exactly_when_nothing_is_left(
            total in 1i64..2_000_000,
            asks in proptest::collection::vec((1i64..2_000_000, proptest::bool::ANY), 1..12),
        ) {
            use super::super::{RefundRequest, plan_refund};
            use kakaopay::Amount;
            let paid = Amounts::for_order(Amount::new(total).unwrap(), Amount::ZERO, None).unwrap();
            let mut refunded = Amounts::default();
            let mut status = PaymentStatus::Approved;
            for (ask, all) in asks {
                let left = paid.total.won() - refunded.total.won();
                let amount = if all { left } else { ask.min(left.max(1)) };
                let Ok(plan) = plan_refund(&paid, &refunded, RefundRequest {
                    amount: Amount::new(amount).unwrap(), tax_free: None, vat: None,
                }) else {
                    prop_assert!(status == PaymentStatus::Canceled || amount > left);
                    continue;
                };
                prop_assert!(status.is_refundable());
                refunded = refunded.checked_add(&plan.amounts).unwrap();
                prop_assert!(refunded.total <= paid.total);
                let event = refund_event(&paid, &refunded, plan.full);
                status = transition(status, event).unwrap();
                prop_assert_eq!(status == PaymentStatus::Canceled, refunded.total == paid.total);
            }
        }
    }

    proptest! {
        /// No sequence of events leaves the machine; final states stay final; a payment is
        /// approved at most once along any path.
        #[test]
        fn random_event_sequences_stay_legal(events in proptest::collection::vec(0usize..10, 0..40)) {
            let mut status = PaymentStatus::Ready;
            let mut approvals = 0;
            for i in events {
                let e = EVENTS[i];
                if let Ok(next) = transition(status, e) {
                    if status.is_final() {
                        prop_assert!(false, "left a final state");
                    }
                    if e == Event::Approved || e == Event::MismatchCanceled {
                        approvals += 1;
                    }
                    status = next;
                }
                prop_assert!(PaymentStatus::ALL.contains(&status));
            }
            prop_assert!(approvals <= 1);
        }
    }
}
