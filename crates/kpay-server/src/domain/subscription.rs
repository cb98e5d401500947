//! Where a subscription stands and the one function that changes it; the dunning schedule; and
//! what a charge's outcome means for it. Pure, like the payment machine: the store applies what
//! [`subscription_transition`] decides with a conditional update.
//!
//! ```text
//!  incomplete ──buyer approves──▶ active ◀──────── charge succeeds ────────┐
//!      │                           │  └─renewal refused─▶ past_due ──retry─┤
//!      └──never finished──▶ incomplete_expired   │        │  └─retries spent / hard refusal─▶ unpaid
//!                                     cancel / SID inactive at KakaoPay ──▶ canceled ◀── (any live state)
//! ```

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
    /// A charge for a period succeeded.
    Charged,
    /// A renewal was refused; it will be retried.
    RenewalFailed,
    /// A renewal was refused for good, or its retries are spent.
    RetriesExhausted,
    /// Canceled now, at the period's end, by dunning's final step, or found inactive at KakaoPay.
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
        (S::Active | S::PastDue | S::Unpaid, E::Charged) => S::Active,
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

    /// Parses `1d,3d,5d,7d` (also `h`, `m`, `s`).
    pub fn parse(s: &str) -> Result<Self, DunningScheduleError> {
        let mut out: Vec<Duration> = Vec::new();
        for raw in s.split(',').map(str::trim) {
            let (n, unit) = raw.split_at(raw.len().saturating_sub(1));
            let secs = match unit {
                "d" => 86_400,
                "h" => 3_600,
                "m" => 60,
                "s" => 1,
                _ => return Err(DunningScheduleError::Entry(raw.to_owned())),
            };
            let n: u64 = n
                .parse()
                .ok()
                .filter(|n| *n > 0 && *n <= 365 * 86_400)
                .ok_or_else(|| DunningScheduleError::Entry(raw.to_owned()))?;
            let d = Duration::from_secs(n * secs);
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

/// What a refused charge means for the subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// May succeed later (the buyer's account is locked for a while, a card problem, KakaoPay
    /// trouble): retried on the dunning schedule.
    Soft,
    /// No retry can succeed (the SID does not exist, is inactive, or belongs to another user):
    /// dunning stops at once.
    Hard,
}

/// How KakaoPay's refusal of a charge is handled: -750 (unknown SID), -751 (inactive SID) and
/// -753 (user mismatch) are hard; everything else KakaoPay refuses with is soft.
pub fn refusal(code: kakaopay::ErrorCode) -> Refusal {
    use kakaopay::ErrorCode as C;
    match code {
        C::SidNotFound | C::SidInactive | C::SidUserMismatch => Refusal::Hard,
        _ => Refusal::Soft,
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
            (E::Charged, S::Active),
            (E::RenewalFailed, S::PastDue),
            (E::RenewalFailed, S::PastDue),
            (E::Charged, S::Active),
            (E::RenewalFailed, S::PastDue),
            (E::RetriesExhausted, S::Unpaid),
            (E::Charged, S::Active),
            (E::Canceled, S::Canceled),
        ] {
            s = subscription_transition(s, e).unwrap();
            assert_eq!(s, want, "{e:?}");
        }
        assert_eq!(
            subscription_transition(S::Canceled, E::Charged)
                .unwrap_err()
                .to_string(),
            "a subscription that is canceled cannot take the event charged"
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
        for bad in ["", "3", "1d,1d", "2d,1d", "0d", "1w", "x d"] {
            assert!(DunningSchedule::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refusals_that_no_retry_can_fix_are_hard() {
        use kakaopay::ErrorCode as C;
        for c in [C::SidNotFound, C::SidInactive, C::SidUserMismatch] {
            assert_eq!(refusal(c), Refusal::Hard);
        }
        assert_eq!(refusal(C::SubscriptionFailed), Refusal::Soft);
        assert_eq!(refusal(C::ApprovalFailed), Refusal::Soft);
    }

    proptest! {
        /// No event sequence leaves the machine, final states take nothing, and a refused event
        /// says which status and event it refused.
        #[test]
        fn random_sequences_stay_legal(events in proptest::collection::vec(0usize..6, 0..40)) {
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
