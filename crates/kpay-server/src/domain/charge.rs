//! A subscription as the ledger keeps it, its charge attempts, and the pure decisions about them:
//! the order id of a period, what a refused renewal does to the dunning state, and whether a
//! charge whose answer was lost was made (judged from KakaoPay's subscription status, never
//! guessed).

use super::billing::{Cadence, Period, period};
use super::{Amounts, ChargeFailure, DunningSchedule, PaymentId, SubscriptionStatus, Timestamp};
use super::{ChargeId, SubscriptionEvent, SubscriptionId};
use kakaopay::{Cid, ItemName, PartnerUserId};
use std::time::Duration;

/// Why a line was written to a subscription's log: its status events, and notes that change no
/// status. The text is the API's `cause`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr, strum::Display,
)]
#[strum(serialize_all = "snake_case")]
pub enum SubscriptionCause {
    /// Created; the buyer was sent to KakaoPay.
    Created,
    /// See [`SubscriptionEvent`].
    Registered,
    /// See [`SubscriptionEvent`].
    RegistrationExpired,
    /// See [`SubscriptionEvent`].
    ChargedCurrent,
    /// See [`SubscriptionEvent`].
    ChargedEarlier,
    /// See [`SubscriptionEvent`].
    RenewalFailed,
    /// See [`SubscriptionEvent`].
    RetriesExhausted,
    /// See [`SubscriptionEvent`].
    Canceled,
    /// An extra charge went through (no status change).
    ExtraCharged,
    /// A charge's answer was lost; a status lookup will decide it.
    ChargeUnknown,
    /// A lookup showed a lost charge was not made.
    ChargeNotApplied,
    /// A lookup could not decide a lost charge: for the operator.
    ChargeUndecidable,
    /// KakaoPay refused the merchant's configuration; renewals wait.
    RenewalHeld,
    /// Set to end at the period's end.
    CancelScheduled,
    /// No longer ends at the period's end.
    CancelUnscheduled,
    /// KakaoPay confirmed the SID inactive.
    Inactivated,
    /// A charge's answer arrived after its attempt had been judged by lookup: its payment is
    /// recorded; if the period is now paid twice, one is for the operator to refund.
    LateCharge,
}

impl From<SubscriptionEvent> for SubscriptionCause {
    fn from(e: SubscriptionEvent) -> Self {
        use SubscriptionEvent as E;
        match e {
            E::Registered => Self::Registered,
            E::RegistrationExpired => Self::RegistrationExpired,
            E::ChargedCurrent => Self::ChargedCurrent,
            E::ChargedEarlier => Self::ChargedEarlier,
            E::RenewalFailed => Self::RenewalFailed,
            E::RetriesExhausted => Self::RetriesExhausted,
            E::Canceled => Self::Canceled,
        }
    }
}

/// A line of a subscription's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionLogLine {
    /// Before (`None` for the first line).
    pub from: Option<SubscriptionStatus>,
    /// After.
    pub to: SubscriptionStatus,
    /// Why.
    pub cause: SubscriptionCause,
    /// KakaoPay's code and a text.
    pub detail: super::Detail,
    /// When.
    pub at: Timestamp,
}

/// What a subscription becomes when dunning gives up (`--dunning-final`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr, strum::Display,
)]
#[strum(serialize_all = "snake_case")]
pub enum DunningFinal {
    /// Kept, not renewed any more (the merchant may cancel it or charge it by hand).
    Unpaid,
    /// Canceled, and its SID inactivated at KakaoPay.
    Canceled,
}

/// A subscription of the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// Its id.
    pub id: SubscriptionId,
    /// Where it stands.
    pub status: SubscriptionStatus,
    /// The subscription CID it was registered with.
    pub cid: Cid,
    /// The buyer (KakaoPay binds the SID to it).
    pub partner_user_id: PartnerUserId,
    /// What is sold.
    pub item_name: ItemName,
    /// Charged every period.
    pub amounts: Amounts,
    /// How often.
    pub cadence: Cadence,
    /// Days before the first charge (0: the registration pays the first period).
    pub trial_days: u16,
    /// Where the buyer goes after registering.
    pub return_url: Option<String>,
    /// The payment the buyer approves to register (0 won for a trial).
    pub registration_payment_id: PaymentId,
    /// The SID, sealed; `None` until registered.
    pub sid_sealed: Option<String>,
    /// The SID's last 4 characters, for people.
    pub sid_last4: Option<String>,
    /// When the buyer's approval registered it.
    pub registered_at: Option<Timestamp>,
    /// Period 0 starts here (the registration, or the trial's end).
    pub billing_anchor: Option<Timestamp>,
    /// The first period not yet paid.
    pub next_period: u32,
    /// When the scheduler is due for it (a renewal, a retry, a lookup, the period's end).
    pub next_charge_at: Option<Timestamp>,
    /// When the current dunning began (the first refusal of the unpaid period).
    pub dunning_started_at: Option<Timestamp>,
    /// Retries made since.
    pub dunning_retries: u32,
    /// Ends at the current period's end instead of renewing.
    pub cancel_at_period_end: bool,
    /// When it was canceled.
    pub canceled_at: Option<Timestamp>,
    /// Why.
    pub cancel_reason: Option<String>,
    /// When KakaoPay confirmed the SID inactive.
    pub inactivated_at: Option<Timestamp>,
    /// When the last known charge was recorded (this server's clock).
    pub last_charged_at: Option<Timestamp>,
    /// When KakaoPay says the last known charge was made (KakaoPay's clock): what a lost answer
    /// is compared with.
    pub last_kakaopay_approved_at: Option<Timestamp>,
    /// The Idempotency-Key of the create request.
    pub idempotency_key: Option<String>,
    /// Created.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Grows by one with every change: of two copies, the larger is newer.
    pub version: i64,
}

impl Subscription {
    /// The period a renewal would charge now: the next unpaid one, if the subscription renews
    /// (active or past due, not ending at its period's end) and [`Self::next_renewal_at`] has
    /// come. The dunning schedule is enforced here, not only by `next_charge_at`: whatever else
    /// brings the scheduler early (an extra charge's lookup) never retries a refusal early.
    pub fn due_renewal(&self, now: Timestamp, schedule: &DunningSchedule) -> Option<u32> {
        let renews = matches!(
            self.status,
            SubscriptionStatus::Active | SubscriptionStatus::PastDue
        ) && !self.cancel_at_period_end;
        (renews && self.next_renewal_at(schedule)? <= now).then_some(self.next_period)
    }

    /// When the next unpaid period may be charged: its start, and while past due not before
    /// the dunning retry scheduled for it (the earliest its jitter allows).
    pub fn next_renewal_at(&self, schedule: &DunningSchedule) -> Option<Timestamp> {
        let start = self.period(self.next_period)?.start;
        let retry = match (self.status, self.dunning_started_at) {
            (SubscriptionStatus::PastDue, Some(started)) => {
                let k = usize::try_from(self.dunning_retries).unwrap_or(usize::MAX);
                schedule
                    .retry(k)
                    .map(|offset| started.plus(offset).minus(retry_spread(schedule, k)))
            }
            _ => None,
        };
        Some(retry.map_or(start, |r| r.max(start)))
    }

    /// Period `n` of this subscription, once it has an anchor.
    pub fn period(&self, n: u32) -> Option<Period> {
        period(self.billing_anchor?, self.cadence, n)
    }

    /// The period shown as current: the last one paid while active; the one being dunned while
    /// past due or unpaid; during a trial, `[registered, anchor)` as period `None`.
    pub fn current_period(&self) -> Option<(Timestamp, Timestamp)> {
        let anchor = self.billing_anchor?;
        match self.status {
            SubscriptionStatus::PastDue | SubscriptionStatus::Unpaid => {
                self.period(self.next_period).map(|p| (p.start, p.end))
            }
            _ if self.next_period == 0 => Some((self.registered_at?, anchor)),
            _ => self.period(self.next_period - 1).map(|p| (p.start, p.end)),
        }
    }

    /// Whether it is in its trial (registered, nothing charged yet, before the anchor).
    pub fn in_trial(&self) -> bool {
        self.trial_days > 0 && self.next_period == 0
    }

    /// The deterministic order id of period `n` (the same on every retry of the period).
    pub fn period_order_id(&self, n: u32) -> String {
        format!("{}-{n}", self.id)
    }
}

/// Where a charge attempt stands.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ChargeStatus {
    /// Recorded, its call out (or its instance died during the call).
    Pending,
    /// KakaoPay charged it.
    Succeeded,
    /// KakaoPay refused it, or a lookup showed it was not made.
    Failed,
    /// The answer was lost: resolved by the subscription status lookup.
    Unknown,
}

impl ChargeStatus {
    /// Pending or unknown: at most one per subscription.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Unknown)
    }
}

/// Why a charge was made.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ChargeKind {
    /// The first period, paid by the buyer's registration.
    Registration,
    /// A period renewed by the scheduler.
    Renewal,
    /// An extra charge asked by the merchant.
    Extra,
}

/// How a failed or unclear charge was classified (the `failure` of a charge).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, strum::EnumString, strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ChargeFailureKind {
    /// Retried on the dunning schedule.
    Soft,
    /// No retry can succeed.
    Hard,
    /// The merchant's configuration was refused.
    Merchant,
    /// The answer was lost, and the status lookup showed no charge.
    NotApplied,
    /// The SID could not be unsealed (a different `KPAY_ENCRYPTION_KEY`).
    Sealed,
    /// Recorded, but not sent in time (the instance fell behind): it never reached KakaoPay,
    /// and the period is claimed again.
    NotSent,
}

impl From<ChargeFailure> for ChargeFailureKind {
    fn from(f: ChargeFailure) -> Self {
        match f {
            ChargeFailure::Soft | ChargeFailure::Unknown => Self::Soft,
            ChargeFailure::Hard => Self::Hard,
            ChargeFailure::Merchant => Self::Merchant,
        }
    }
}

/// One charge attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charge {
    /// Its id.
    pub id: ChargeId,
    /// Whose.
    pub subscription_id: SubscriptionId,
    /// Why.
    pub kind: ChargeKind,
    /// The period it pays (`None` for an extra charge).
    pub period: Option<u32>,
    /// The how-many-th attempt of its period (1-based).
    pub attempt: u32,
    /// Where it stands.
    pub status: ChargeStatus,
    /// What is asked.
    pub amounts: Amounts,
    /// The item name sent.
    pub item_name: ItemName,
    /// The order id sent.
    pub partner_order_id: String,
    /// The payment a success created (`None` when a lookup found the charge but not its TID).
    pub payment_id: Option<PaymentId>,
    /// How a failure was classified.
    pub failure: Option<ChargeFailureKind>,
    /// KakaoPay's code.
    pub kakaopay_code: Option<i64>,
    /// For people.
    pub message: Option<String>,
    /// When it was recorded, before the call.
    pub attempted_at: Timestamp,
    /// When its outcome was recorded.
    pub finished_at: Option<Timestamp>,
    /// KakaoPay's time of the charge.
    pub kakaopay_approved_at: Option<Timestamp>,
    /// The Idempotency-Key of an extra charge.
    pub idempotency_key: Option<String>,
    /// Lookups so far that could not decide it.
    pub check_attempts: u32,
}

impl Charge {
    /// A renewal attempt of `sub`'s period `n`, pending from `now` (its attempt number is the
    /// store's to count).
    pub fn renewal(sub: &Subscription, n: u32, now: Timestamp) -> Self {
        Self {
            id: ChargeId::generate(),
            subscription_id: sub.id.clone(),
            kind: ChargeKind::Renewal,
            period: Some(n),
            attempt: 1,
            status: ChargeStatus::Pending,
            amounts: sub.amounts,
            item_name: sub.item_name.clone(),
            partner_order_id: sub.period_order_id(n),
            payment_id: None,
            failure: None,
            kakaopay_code: None,
            message: None,
            attempted_at: now,
            finished_at: None,
            kakaopay_approved_at: None,
            idempotency_key: None,
            check_attempts: 0,
        }
    }
}

/// What a refused renewal does (pure; the service applies it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dunning {
    /// `past_due`, retried at this time.
    RetryAt(Timestamp),
    /// Retries spent or pointless: the final status.
    GiveUp,
    /// Not the buyer's failure: nothing moves; the scheduler comes back then.
    HoldUntil(Timestamp),
}

/// How long a claimed attempt may wait for its call to go out (the claim and the call are
/// made together; this covers a stalled process). Past it, the attempt is withdrawn unsent.
pub const SEND_BUDGET: Duration = Duration::from_secs(5);
/// Room between the end of an attempt's longest call and the moment it may be judged lost.
pub const SEND_MARGIN: Duration = Duration::from_secs(5);

/// The window of an attempt recorded at `attempted_at`: `send_by`, the last moment it may be
/// sent, and `check_at`, when it may be judged lost — the longest call sent at `send_by`
/// (`timeout`) has ended, and then KakaoPay had `grace` (at least [`SEND_MARGIN`]) more to
/// apply it, whoever made it.
pub fn attempt_window(
    attempted_at: Timestamp,
    grace: Duration,
    timeout: Duration,
) -> (Timestamp, Timestamp) {
    let send_by = attempted_at.plus(SEND_BUDGET);
    let check_at = send_by.plus(timeout + grace.max(SEND_MARGIN));
    (check_at, send_by)
}

/// How long a merchant-side refusal holds renewals back before trying again.
pub const MERCHANT_HOLD: Duration = Duration::from_secs(3_600);

/// What a refusal of period `sub.next_period` at `now` does: retries count from the first
/// refusal of the period, on `schedule`; `jitter` (0..=1) moves each retry *earlier* by up to a
/// tenth of its gap, at most 30 minutes, so that retries spread out yet never come later than
/// the schedule promises.
pub fn after_refusal(
    sub: &Subscription,
    failure: ChargeFailure,
    schedule: &DunningSchedule,
    now: Timestamp,
    jitter: f64,
) -> Dunning {
    match failure {
        ChargeFailure::Hard => Dunning::GiveUp,
        ChargeFailure::Merchant => Dunning::HoldUntil(now.plus(MERCHANT_HOLD)),
        ChargeFailure::Soft | ChargeFailure::Unknown => {
            let started = sub.dunning_started_at.unwrap_or(now);
            let k = usize::try_from(sub.dunning_retries).unwrap_or(usize::MAX);
            let Some(offset) = schedule.retry(k) else {
                return Dunning::GiveUp;
            };
            let early = retry_spread(schedule, k).mul_f64(jitter.clamp(0.0, 1.0));
            let at = started.plus(offset).minus(early);
            Dunning::RetryAt(if at < now { now } else { at })
        }
    }
}

/// How much earlier than scheduled jitter may bring retry `k`: a tenth of its gap, at most
/// 30 minutes.
fn retry_spread(schedule: &DunningSchedule, k: usize) -> Duration {
    let offset = schedule.retry(k).unwrap_or(Duration::ZERO);
    let gap = offset.saturating_sub(match k {
        0 => Duration::ZERO,
        _ => schedule.retry(k - 1).unwrap_or(Duration::ZERO),
    });
    (gap / 10).min(Duration::from_secs(1_800))
}

/// What KakaoPay's subscription status says about a charge whose answer was lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Charged (KakaoPay's last approval is newer than every charge the ledger knows).
    Charged,
    /// Not charged: nothing newer, and the call can no longer be in flight.
    NotCharged,
    /// Too early to believe "nothing newer": look again later.
    Wait,
    /// Cannot be told apart from the previous charge (both in one second): for the operator.
    Undecidable,
}

/// The judgement of a lost charge. `known` is KakaoPay's time of the last charge the ledger
/// knows; `seen` KakaoPay's `last_approved_at` now. Both are KakaoPay's clock, so no clock skew
/// between the machines enters. One open attempt per subscription means anything newer than
/// `known` is this attempt. Second precision: if the previous known charge was recorded less than
/// two seconds before this attempt began, equal times could be either, so it is undecidable.
pub fn judge_lost_charge(
    known: Option<Timestamp>,
    seen: Option<Timestamp>,
    attempted_at: Timestamp,
    last_charged_at: Option<Timestamp>,
    now: Timestamp,
    grace: Duration,
) -> Verdict {
    let newer = match (seen, known) {
        (None, _) => false,
        // KakaoPay knows a charge and the ledger knows no time to compare it with (a
        // registration answered without its time): not to be guessed.
        (Some(_), None) => return Verdict::Undecidable,
        (Some(s), Some(k)) => s > k,
    };
    if newer {
        return Verdict::Charged;
    }
    if now < attempted_at.plus(grace) {
        return Verdict::Wait;
    }
    let too_close = last_charged_at
        .is_some_and(|prev| attempted_at.since(prev) < Duration::from_secs(2))
        && seen.is_some();
    if too_close {
        Verdict::Undecidable
    } else {
        Verdict::NotCharged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Interval, SubscriptionStatus};
    use proptest::prelude::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_millis(s * 1000).unwrap()
    }

    fn sub() -> Subscription {
        Subscription {
            id: SubscriptionId::generate(),
            status: SubscriptionStatus::Active,
            cid: "TCSUBSCRIP".parse().unwrap(),
            partner_user_id: "u".parse().unwrap(),
            item_name: "coffee".parse().unwrap(),
            amounts: Amounts::default(),
            cadence: Cadence::new(Interval::Month, 1).unwrap(),
            trial_days: 0,
            return_url: None,
            registration_payment_id: PaymentId::generate(),
            sid_sealed: None,
            sid_last4: None,
            registered_at: Some(ts(1_700_000_000)),
            billing_anchor: Some(ts(1_700_000_000)),
            next_period: 1,
            next_charge_at: None,
            dunning_started_at: None,
            dunning_retries: 0,
            cancel_at_period_end: false,
            canceled_at: None,
            cancel_reason: None,
            inactivated_at: None,
            last_charged_at: None,
            last_kakaopay_approved_at: None,
            idempotency_key: None,
            created_at: ts(1_700_000_000),
            updated_at: ts(1_700_000_000),
            version: 1,
        }
    }

    #[test]
    fn dunning_follows_the_schedule_from_the_first_refusal_then_gives_up() {
        let schedule = DunningSchedule::standard();
        let mut s = sub();
        let first = ts(1_800_000_000);
        s.dunning_started_at = Some(first);
        for (k, days) in [1u64, 3, 5, 7].into_iter().enumerate() {
            s.dunning_retries = k as u32;
            let at = first.plus(Duration::from_secs(days * 86_400));
            assert_eq!(
                after_refusal(&s, ChargeFailure::Soft, &schedule, first, 0.0),
                Dunning::RetryAt(at)
            );
            // Jitter only ever brings a retry forward, by at most 30 minutes here.
            let Dunning::RetryAt(j) = after_refusal(&s, ChargeFailure::Soft, &schedule, first, 1.0)
            else {
                panic!("a retry")
            };
            assert!(j <= at && at.since(j) <= Duration::from_secs(1_800));
        }
        s.dunning_retries = 4;
        assert_eq!(
            after_refusal(&s, ChargeFailure::Soft, &schedule, first, 0.5),
            Dunning::GiveUp
        );
        s.dunning_retries = 0;
        assert_eq!(
            after_refusal(&s, ChargeFailure::Hard, &schedule, first, 0.5),
            Dunning::GiveUp
        );
        assert_eq!(
            after_refusal(&s, ChargeFailure::Merchant, &schedule, first, 0.5),
            Dunning::HoldUntil(first.plus(MERCHANT_HOLD))
        );
    }

    #[test]
    fn a_trial_shows_registration_to_anchor_as_its_current_period() {
        let mut s = sub();
        s.trial_days = 14;
        s.next_period = 0;
        s.billing_anchor = Some(ts(1_700_000_000 + 14 * 86_400));
        assert!(s.in_trial());
        assert_eq!(
            s.current_period(),
            Some((ts(1_700_000_000), ts(1_700_000_000 + 14 * 86_400)))
        );
        assert_eq!(s.period_order_id(3), format!("{}-3", s.id));
    }

    proptest! {
        /// An attempt sent at its last moment has ended, timeout and margin included, before
        /// anyone may judge it lost; and it can always be sent at once.
        #[test]
        fn an_attempt_is_never_out_when_it_may_be_judged_lost(
            at in 0i64..2_000_000_000,
            grace_ms in 0u64..10_000_000,
            timeout_ms in 1u64..600_000,
        ) {
            let (grace, timeout) = (Duration::from_millis(grace_ms), Duration::from_millis(timeout_ms));
            let (check_at, send_by) = attempt_window(ts(at), grace, timeout);
            // Sent at the last moment, its call ended and KakaoPay had the whole grace.
            prop_assert!(send_by.plus(timeout + grace.max(SEND_MARGIN)) <= check_at);
            prop_assert!(send_by > ts(at));
        }

        /// A past-due subscription is never charged before its scheduled retry (at the
        /// earliest its jitter allows), whatever brings the scheduler early; an active one at
        /// its period's start.
        #[test]
        fn renewals_wait_for_their_period_and_their_retry(
            retries in 0u32..4,
            jitter in 0.0f64..=1.0,
            early_s in 0i64..400_000,
            past_due in proptest::bool::ANY,
        ) {
            let schedule = DunningSchedule::standard();
            let mut s = sub();
            s.billing_anchor = Some(ts(1_700_000_000));
            s.next_period = 1;
            let start = s.period(1).unwrap().start;
            if past_due {
                s.status = SubscriptionStatus::PastDue;
                s.dunning_started_at = Some(start);
                s.dunning_retries = retries;
                let Dunning::RetryAt(at) = after_refusal(
                    &Subscription { dunning_retries: retries, ..s.clone() },
                    ChargeFailure::Soft, &schedule, start, jitter,
                ) else { unreachable!() };
                // Due at the retry's time, never before the earliest jitter allows.
                prop_assert_eq!(s.due_renewal(at, &schedule), Some(1));
                let earliest = s.next_renewal_at(&schedule).unwrap();
                prop_assert!(earliest <= at);
                prop_assert_eq!(s.due_renewal(earliest.minus(Duration::from_secs(1)), &schedule), None);
                prop_assert!(earliest.since(start) + Duration::from_secs(1_800) >= schedule.retry(retries as usize).unwrap());
            } else {
                prop_assert_eq!(s.due_renewal(start, &schedule), Some(1));
                prop_assert_eq!(s.due_renewal(start.minus(Duration::from_secs(early_s as u64 + 1)), &schedule), None);
            }
        }

        /// Anything newer than the last known charge is this attempt; nothing newer is "not
        /// charged" only after the grace, and never when it cannot be told from the last one.
        #[test]
        fn a_lost_charge_is_judged_by_kakaopays_clock_only(
            known in proptest::option::of(0i64..1_000),
            seen in proptest::option::of(0i64..1_000),
            started in 0i64..1_000,
            prev_gap in proptest::option::of(0i64..10),
            waited in 0i64..100,
        ) {
            let grace = Duration::from_secs(30);
            let v = judge_lost_charge(
                known.map(ts), seen.map(ts), ts(started),
                prev_gap.map(|g| ts(started - g)), ts(started + waited), grace,
            );
            let newer = match (seen, known) { (Some(s), Some(k)) => s > k, _ => false };
            prop_assert_eq!(v == Verdict::Charged, newer);
            if seen.is_some() && known.is_none() { prop_assert_eq!(v, Verdict::Undecidable); }
                if !newer && waited < 30 && known.is_some() { prop_assert_eq!(v, Verdict::Wait); }
            if v == Verdict::NotCharged {
                prop_assert!(waited >= 30);
                prop_assert!(seen.is_none() || prev_gap.is_none_or(|g| g >= 2));
            }
        }
    }
}
