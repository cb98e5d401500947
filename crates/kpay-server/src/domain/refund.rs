//! A refund: part or all of a paid payment given back, with its own status and KakaoPay's AID of
//! the cancel. One is in flight per payment at a time; its end decides the payment's next status
//! through [`super::refund_event`].

use super::{Amounts, Failure, PaymentId, RefundId, RefundStatus, Timestamp};
use kakaopay::{Aid, Amount};

/// A refund of the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refund {
    /// Its id.
    pub id: RefundId,
    /// The payment it gives money back from.
    pub payment_id: PaymentId,
    /// Where it stands.
    pub status: RefundStatus,
    /// How much, by part.
    pub amounts: Amounts,
    /// What could be refunded when it was asked (KakaoPay's `cancel_available_amount` guard).
    pub cancelable_before: Amount,
    /// Why it was asked (sent to KakaoPay as the payload).
    pub reason: Option<String>,
    /// KakaoPay's AID of the cancel. A refund confirmed only by a lookup that listed no new
    /// cancel has none.
    pub aid: Option<RefundAid>,
    /// Why it failed.
    pub failure: Option<Failure>,
    /// Asked.
    pub created_at: Timestamp,
    /// Last change (its grace is judged from it while pending).
    pub updated_at: Timestamp,
    /// The Idempotency-Key of the refund request that made it.
    pub idempotency_key: Option<String>,
}

/// What is known of a refund's cancel at KakaoPay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefundAid {
    /// KakaoPay's AID.
    Known(Aid),
    /// Confirmed by an order lookup that did not name the cancel (stored as `unknown-<refund>`).
    Unknown,
}

impl RefundAid {
    /// The text shown and stored for the refund `id`.
    pub fn text(&self, id: &RefundId) -> String {
        match self {
            RefundAid::Known(aid) => aid.as_str().to_owned(),
            RefundAid::Unknown => format!("unknown-{id}"),
        }
    }
}

impl Refund {
    /// A new pending refund of `amounts` from `payment`, asked at `now`.
    pub fn pending(
        payment_id: PaymentId,
        amounts: Amounts,
        cancelable_before: Amount,
        reason: Option<String>,
        idempotency_key: Option<String>,
        now: Timestamp,
    ) -> Refund {
        Refund {
            id: RefundId::generate(),
            payment_id,
            status: RefundStatus::Pending,
            amounts,
            cancelable_before,
            reason,
            aid: None,
            failure: None,
            created_at: now,
            updated_at: now,
            idempotency_key,
        }
    }
}
