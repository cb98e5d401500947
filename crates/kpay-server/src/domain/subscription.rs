//! Where a subscription stands and the one function that changes it; the dunning schedule; and
//! what a charge's outcome means for it. Pure, like the payment machine: the store applies what
//! [`subscription_transition`] decides with a conditional update.
//!
//! ```text
//!  incomplete ──buyer approves──▶ active ◀──── the current period is charged ────┐
//!      │                           │  └─renewal refused (soft)─▶ past_due ──retry─┤
//!      └──never finished──▶ incomplete_expired   │                 └─retries spent─▶ unpaid
//!                                  └─refused for good (hard)───────────────────────▶ unpaid
//!  canceled ◀── cancel now / at the period's end / dunning's final step / a lookup finds the SID inactive
//! ```
//!
//! Decided where the spec is silent: a hard refusal (-750, -751, -753) goes to `unpaid` at once
//! (no retry can succeed, so `past_due` would promise one); an `unpaid` subscription is not renewed
//! any more (only an extra charge or a cancel moves it); a charge for an earlier period changes no
//! status ("active for the period it paid").

use std::fmt;
use std::time::Duration;

/// Where a subscription stands (contract §5).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum SubscriptionStatus {
    /// Waiting for the buyer's first approval.
    Incomplete,
    /// The buyer never finished the registration.
    IncompleteExpired,
    /// Charged for its current period (or in its trial).
    Active,
    /// A renewal failed; retries are scheduled.
    PastDue,
    /// Retries exhausted (or a refusal that no retry can fix).
    Unpaid,
    /// Ended; its SID is inactive at KakaoPay.
    Canceled,
}

impl SubscriptionStatus {
    /// Nothing more can happen to it.
    pub fn is_final(self) -> bool {
        matches!(self, Self::IncompleteExpired | Self::Canceled)
    }
}

/// What happened to a subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum SubscriptionEvent {
    /// The buyer approved the registration; the SID is kept.
    Registered,
    /// The registration's time ran out.
    RegistrationExpired,
    /// The current period was charged.
    ChargedCurrent,
    /// An earlier period was charged late (a retry that finally went through): no status change.
    ChargedEarlier,
    /// A renewal was refused; it will be retried.
    RenewalFailed,
    /// A renewal was refused for good, or its retries are spent.
    RetriesExhausted,
    /// Canceled now, at the period's end, by dunning's final step, or a lookup found the SID
    /// inactive at KakaoPay.
    Canceled,
}

/// An event that cannot happen in the subscription's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a subscription that is {from} cannot take the event {}", <&str>::from(*event))]
pub struct SubscriptionTransitionError {
    /// The status.
    pub from: SubscriptionStatus,
    /// The event.
    pub event: SubscriptionEvent,
}

/// The transition function of subscriptions.
pub fn subscription_transition(
    from: SubscriptionStatus,
    event: SubscriptionEvent,
) -> Result<SubscriptionStatus, SubscriptionTransitionError> {
    use SubscriptionEvent as E;
    use SubscriptionStatus as S;
    let to = match (from, event) {
        (S::Incomplete, E::Registered) => S::Active,
        (S::Incomplete, E::RegistrationExpired) => S::IncompleteExpired,
        // A success returns a failing subscription to active for the period it paid.
        (S::Active | S::PastDue | S::Unpaid, E::ChargedCurrent) => S::Active,
        (S::Active | S::PastDue | S::Unpaid, E::ChargedEarlier) => from,
        (S::Active | S::PastDue, E::RenewalFailed) => S::PastDue,
        (S::Active | S::PastDue, E::RetriesExhausted) => S::Unpaid,
        (S::Incomplete | S::Active | S::PastDue | S::Unpaid, E::Canceled) => S::Canceled,
        _ => return Err(SubscriptionTransitionError { from, event }),
    };
    Ok(to)
}

/// When failed renewals are retried: offsets after the first failure (`--dunning-schedule`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DunningSchedule(Vec<Duration>);

/// A schedule that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DunningScheduleError {
    /// An entry is not `<n>d`, `<n>h`, `<n>m` or `<n>s`.
    #[error("dunning schedule entry {0:?}: expected a number with d, h, m or s, like 3d")]
    Entry(String),
    /// Entries must grow strictly.
    #[error("dunning schedule must grow: {0:?} is not after the entry before it")]
    NotIncreasing(String),
    /// No entry, or more than 20.
    #[error("dunning schedule must have 1 to 20 entries")]
    Length,
}

impl DunningSchedule {
    /// The default: 1, 3, 5 and 7 days after the first failure.
    pub fn standard() -> Self {
        Self(
            [1u64, 3, 5, 7]
                .map(|d| Duration::from_secs(d * 86_400))
                .to_vec(),
        )
    }

    /// The latest retry: a year after the first failure.
    pub const MAX_OFFSET: Duration = Duration::from_secs(366 * 86_400);

    /// Parses `1d,3d,5d,7d` (also `h`, `m`, `s`), each at most a year.
    pub fn parse(s: &str) -> Result<Self, DunningScheduleError> {
        let mut out: Vec<Duration> = Vec::new();
        for raw in s.split(',').map(str::trim) {
            let entry = || DunningScheduleError::Entry(raw.to_owned());
            let (n, secs) = [("d", 86_400u64), ("h", 3_600), ("m", 60), ("s", 1)]
                .into_iter()
                .find_map(|(unit, secs)| raw.strip_suffix(unit).map(|n| (n, secs)))
                .ok_or_else(entry)?;
            let d = n
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .and_then(|n| n.checked_mul(secs))
                .map(Duration::from_secs)
                .filter(|d| *d <= Self::MAX_OFFSET)
                .ok_or_else(entry)?;
            if out.last().is_some_and(|last| *last >= d) {
                return Err(DunningScheduleError::NotIncreasing(raw.to_owned()));
            }
            out.push(d);
        }
        if out.is_empty() || out.len() > 20 {
            return Err(DunningScheduleError::Length);
        }
        Ok(Self(out))
    }

    /// When retry `k` (0-based) is due after the first failure; `None` once they are spent.
    pub fn retry(&self, k: usize) -> Option<Duration> {
        self.0.get(k).copied()
    }

    /// How many retries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true: a schedule has at least one entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for DunningSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|d| match d.as_secs() {
                s if s % 86_400 == 0 => format!("{}d", s / 86_400),
                s if s % 3_600 == 0 => format!("{}h", s / 3_600),
                s if s % 60 == 0 => format!("{}m", s / 60),
                s => format!("{s}s"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// What a failed charge means for the subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChargeFailure {
    /// It may have been charged (a timeout, a reset, a 5xx, KakaoPay's "duplicate request"): a
    /// state resolved by the subscription status lookup, never retried blindly.
    Unknown,
    /// The buyer's side may succeed later (account locked for a while, a card problem, a connection
    /// that never reached KakaoPay): retried on the dunning schedule.
    Soft,
    /// No retry can succeed (the SID does not exist, is inactive, or belongs to another user):
    /// dunning stops at once.
    Hard,
    /// The merchant's configuration is refused (CID, its secret, IP, domain, limits): not the
    /// buyer's failure — nothing moves, the operator is told.
    Merchant,
}

/// How a failed `/subscription` charge is handled.
pub fn charge_failure(e: &kakaopay::Error) -> ChargeFailure {
    use kakaopay::ErrorCode as C;
    if e.may_have_applied() {
        return ChargeFailure::Unknown;
    }
    match e.code() {
        Some(C::SidNotFound | C::SidInactive | C::SidUserMismatch) => ChargeFailure::Hard,
        Some(C::ApprovalFailed | C::SubscriptionFailed | C::SidMonthlyLimit) => ChargeFailure::Soft,
        Some(
            C::InvalidCid
            | C::InvalidCidSecret
            | C::InvalidGid
            | C::InvalidMerchantApp
            | C::IpNotAllowed
            | C::DomainMismatch
            | C::OverTransactionLimit
            | C::InvalidParameter
            | C::InvalidHeader,
        ) => ChargeFailure::Merchant,
        // Never reached KakaoPay (refused to connect): nothing happened, try again later.
        None if e.is_retryable() => ChargeFailure::Soft,
        // Anything else KakaoPay refuses with, conservatively: retried, bounded by the schedule.
        _ => ChargeFailure::Soft,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use strum::VariantArray;

    #[test]
    fn the_lifecycle() {
        use SubscriptionEvent as E;
        use SubscriptionStatus as S;
        let mut s = S::Incomplete;
        for (e, want) in [
            (E::Registered, S::Active),
            (E::ChargedCurrent, S::Active),
            (E::RenewalFailed, S::PastDue),
            (E::RenewalFailed, S::PastDue),
            (E::ChargedCurrent, S::Active),
            (E::RenewalFailed, S::PastDue),
            (E::RetriesExhausted, S::Unpaid),
            (E::ChargedCurrent, S::Active),
            (E::Canceled, S::Canceled),
        ] {
            s = subscription_transition(s, e).unwrap();
            assert_eq!(s, want, "{e:?}");
        }
        assert_eq!(
            subscription_transition(S::Canceled, E::ChargedCurrent)
                .unwrap_err()
                .to_string(),
            "a subscription that is canceled cannot take the event charged_current"
        );
    }

    #[test]
    fn dunning_schedules_parse_and_print() {
        let s = DunningSchedule::parse("1d, 3d,5d,7d").unwrap();
        assert_eq!(s, DunningSchedule::standard());
        assert_eq!(s.to_string(), "1d,3d,5d,7d");
        assert_eq!(s.retry(1), Some(Duration::from_secs(3 * 86_400)));
        assert_eq!(s.retry(4), None);
        assert_eq!(
            DunningSchedule::parse("30s,2m,1h").unwrap().to_string(),
            "30s,2m,1h"
        );
        for bad in [
            "",
            "3",
            "1d,1d",
            "2d,1d",
            "0d",
            "1w",
            "x d",
            "3일",
            "31536000d",
            "-1d",
        ] {
            assert!(DunningSchedule::parse(bad).is_err(), "{bad:?}");
        }
    }

    fn refused(status: u16, code: i64) -> kakaopay::Error {
        kakaopay::Error::Api {
            operation: kakaopay::Operation::Subscription,
            error: Box::new(kakaopay::ApiError {
                status,
                code: kakaopay::ErrorCode::from_code(code),
                message: "no".into(),
                method_result_code: None,
                method_result_message: None,
            }),
        }
    }

    #[test]
    fn charge_failures_are_classified() {
        assert_eq!(charge_failure(&refused(400, -751)), ChargeFailure::Hard);
        assert_eq!(charge_failure(&refused(400, -750)), ChargeFailure::Hard);
        assert_eq!(charge_failure(&refused(400, -753)), ChargeFailure::Hard);
        assert_eq!(charge_failure(&refused(400, -731)), ChargeFailure::Merchant);
        assert_eq!(charge_failure(&refused(400, -798)), ChargeFailure::Merchant);
        assert_eq!(charge_failure(&refused(400, -752)), ChargeFailure::Soft);
        // May have charged: looked up, never retried blindly.
        assert_eq!(charge_failure(&refused(500, -1)), ChargeFailure::Unknown);
        assert_eq!(charge_failure(&refused(400, -785)), ChargeFailure::Unknown);
    }

    #[test]
    fn a_late_charge_for_an_earlier_period_changes_nothing() {
        use SubscriptionEvent as E;
        use SubscriptionStatus as S;
        for s in [S::Active, S::PastDue, S::Unpaid] {
            assert_eq!(subscription_transition(s, E::ChargedEarlier), Ok(s));
            assert_eq!(subscription_transition(s, E::ChargedCurrent), Ok(S::Active));
        }
    }

    proptest! {
        /// No event sequence leaves the machine, final states take nothing, and a refused event
        /// says which status and event it refused.
        #[test]
        fn random_sequences_stay_legal(events in proptest::collection::vec(0usize..7, 0..40)) {
            let mut s = SubscriptionStatus::Incomplete;
            for i in events {
                let e = SubscriptionEvent::VARIANTS[i];
                match subscription_transition(s, e) {
                    Ok(next) => {
                        prop_assert!(!s.is_final(), "left a final state");
                        s = next;
                    }
                    Err(err) => prop_assert_eq!((err.from, err.event), (s, e)),
                }
            }
        }
    }
}
