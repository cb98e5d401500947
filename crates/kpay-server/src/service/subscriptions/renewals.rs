//! The scheduler's side of subscriptions, run with every reconciler pass (and by the test clock
//! until nothing is due): registrations settled, due periods charged exactly once, refusals
//! dunned, lost answers judged by KakaoPay's subscription status, SIDs of canceled subscriptions
//! inactivated.
//!
//! A renewal is three phases, as every call toward KakaoPay here: the attempt is recorded and
//! committed (under the subscription's row lock, checking the period is still unpaid and no other
//! attempt is open), the call is made outside any transaction, and its outcome is recorded with
//! the payment it created. An instance that dies mid-call leaves a `pending` attempt; whoever
//! leases the subscription next treats it as a lost answer — looked up, never re-sent blindly.

use super::super::{ServiceError, Services};
use crate::domain::{
    Amounts, Charge, ChargeFailure, ChargeFailureKind, ChargeId, ChargeKind, ChargeStatus, Detail,
    Dunning, DunningFinal, Payment, PaymentId, PaymentStatus, SEND_BUDGET, Subscription,
    SubscriptionCause, SubscriptionEvent, SubscriptionStatus, Timestamp, Verdict, after_refusal,
    attempt_window, charge_failure, judge_lost_charge,
};
use crate::store::{ChargeEnd, Claim, Finished, SubWrite};
use kakaopay::{ApproveResponse, PartnerOrderId, Quantity, Sid, SubscriptionRequest};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Registrations settled per pass at most.
const BATCH: u32 = 256;
/// Subscriptions a lane leases at once (all of them sent together).
const LANE_BATCH: usize = 16;
/// Lease batches per pass at most, all lanes together (a pass stays bounded; the next one
/// continues).
const MAX_BATCHES: usize = 10_000;
/// Attempts of one period at most, whatever happens (dunning retries plus lost answers shown
/// not applied): a cap per subscription on calls toward KakaoPay.
const EXTRA_ATTEMPTS: usize = 4;
/// The longest wait between lookups of an unresolved charge.
const MAX_CHECK_BACKOFF: Duration = Duration::from_secs(3_600);

/// Whether a subscription's lease is still to be given back after its step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lease {
    /// Given back with the step's own write (a claimed charge).
    Released,
    /// Still held.
    Held,
}

/// What a renewal pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RenewalReport {
    /// Subscriptions looked at (leased or settled).
    pub(crate) handled: usize,
}

fn kst_time(t: Option<kakaopay::KstDateTime>) -> Option<Timestamp> {
    t.map(|t| t.to_utc().into())
}

impl Services {
    /// One pass: registrations to settle, then every due subscription, in leased batches.
    pub(crate) async fn run_renewals(&self, owner: &str) -> RenewalReport {
        let mut report = RenewalReport::default();
        match self.store.registrations_to_settle(BATCH).await {
            Ok(list) => {
                for (sub, p) in list {
                    report.handled += 1;
                    if let Err(e) = self.settle_registration(&sub, &p, None).await {
                        tracing::warn!(subscription = %sub.id, error = %e, "could not settle the registration");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not list registrations to settle"),
        }
        // Batches are leased as the calls of the previous one go out, so the next lease
        // overlaps the calls in flight; a batch is as large as the concurrency, so a claimed
        // attempt waits at most about one call for its turn (and is withdrawn, not sent, if
        // it waited too long: see `send_deadline`).
        // Lanes, each leasing a small batch, claiming its due periods in the lease's
        // transaction and sending them all at once: a claimed attempt goes out right after its
        // claim (never queued behind other calls), and the lanes keep the machine busy while
        // one waits for its slowest call.
        let concurrency = self.settings.renewal_concurrency.max(1);
        let batch = concurrency.min(LANE_BATCH);
        let lanes = concurrency.div_ceil(batch);
        let left = AtomicUsize::new(MAX_BATCHES);
        let handled = AtomicUsize::new(0);
        let batch = u32::try_from(batch).unwrap_or(u32::MAX);
        futures_util::future::join_all(
            (0..lanes).map(|_| self.renewal_lane(owner, batch, &left, &handled)),
        )
        .await;
        report.handled += handled.load(Ordering::Relaxed);
        report
    }

    /// When an attempt claimed at `now` is looked at again if nobody records its outcome (its
    /// instance died): once the call must have ended either way.
    pub(crate) fn open_check_at(&self, now: Timestamp) -> Timestamp {
        self.attempt_window(now).0
    }

    /// [`attempt_window`] with this server's grace and timeout.
    fn attempt_window(&self, attempted_at: Timestamp) -> (Timestamp, Timestamp) {
        attempt_window(attempted_at, self.grace(), self.settings.kakaopay_timeout)
    }

    /// One lane of a pass: batches until nothing is due or the pass's budget of batches is
    /// spent.
    async fn renewal_lane(
        &self,
        owner: &str,
        batch: u32,
        left: &AtomicUsize,
        handled: &AtomicUsize,
    ) {
        while left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
        {
            let now = self.now();
            let until = now.plus(self.lease_time());
            let due = match self
                .store
                .lease_due_subscriptions(
                    owner,
                    now,
                    until,
                    batch,
                    self.open_check_at(now),
                    &self.settings.dunning_schedule,
                )
                .await
            {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "could not lease due subscriptions");
                    return;
                }
            };
            let n = due.len();
            handled.fetch_add(n, Ordering::Relaxed);
            futures_util::future::join_all(
                due.into_iter().map(|item| self.renewal_step(item, owner)),
            )
            .await;
            // A short batch: nothing more is due.
            if n < batch as usize {
                return;
            }
        }
    }

    /// One leased subscription's step, and its lease given back if the step did not.
    async fn renewal_step(&self, (sub, claimed): (Subscription, Option<Charge>), owner: &str) {
        let step = match claimed {
            // Claimed with the lease (and the lease given back then).
            Some(charge) => {
                crate::crashpoint::hit("renewal.after_claim");
                self.charge_claimed(&sub, &charge)
                    .await
                    .map(|()| Lease::Released)
            }
            None => self.renew_one(&sub, owner).await,
        };
        match step {
            Ok(Lease::Released) => {}
            Ok(Lease::Held) => {
                if let Err(e) = self.store.release_subscription(&sub.id, owner).await {
                    tracing::warn!(subscription = %sub.id, error = %e, "could not release the lease");
                }
            }
            // The lease is kept until it runs out: the subscription is looked at again then,
            // not at once in every batch of this pass.
            Err(e) => {
                tracing::warn!(subscription = %sub.id, error = %e, "renewal step failed; retried when its lease ends");
            }
        }
    }

    /// A lease outlives a call (its timeout) with room to record it.
    fn lease_time(&self) -> Duration {
        self.settings.kakaopay_timeout * 2 + Duration::from_secs(10)
    }

    /// Whatever is due for one leased subscription. The common case, a due period, goes
    /// straight to its claim (which finds an open attempt itself); anything else looks for an
    /// open attempt first, since one is always resolved before anything else happens.
    async fn renew_one(&self, sub: &Subscription, owner: &str) -> Result<Lease, ServiceError> {
        let now = self.now();
        if let Some(charge) = self.due_renewal(sub, now) {
            let allowed = [SubscriptionStatus::Active, SubscriptionStatus::PastDue];
            let check_at = self.open_check_at(now);
            match self
                .store
                .begin_charge(&charge, &allowed, Some(owner), now, check_at)
                .await?
            {
                Claim::Claimed(charge) => {
                    crate::crashpoint::hit("renewal.after_claim");
                    self.charge_claimed(sub, &charge).await?;
                    return Ok(Lease::Released);
                }
                Claim::Refused => return Ok(Lease::Held),
                Claim::Open => {}
            }
        }
        if let Some(open) = self.store.open_charge(&sub.id).await? {
            self.resolve_open(sub, &open, false).await?;
            return Ok(Lease::Held);
        }
        match sub.status {
            SubscriptionStatus::Canceled if sub.inactivated_at.is_none() => {
                if !self.inactivate(sub).await {
                    self.reschedule(sub, Some(now.plus(self.grace() * 4)))
                        .await?;
                }
                return Ok(Lease::Held);
            }
            SubscriptionStatus::Active | SubscriptionStatus::PastDue => {}
            _ => {
                self.reschedule(sub, None).await?;
                return Ok(Lease::Held);
            }
        }
        if sub.cancel_at_period_end {
            self.end_subscription(sub, "canceled at the end of its period")
                .await?;
            return Ok(Lease::Held);
        }
        match sub.next_renewal_at(&self.settings.dunning_schedule) {
            None => self.reschedule(sub, None).await?,
            // Not yet (its period, or its dunning retry): back then.
            Some(at) if at > now => self.reschedule(sub, Some(at)).await?,
            // Due, and its open attempt settled meanwhile: the next lease claims it.
            Some(_) => {}
        }
        Ok(Lease::Held)
    }

    /// The attempt to record for `sub`'s next period, if it is due now and may be charged.
    fn due_renewal(&self, sub: &Subscription, now: Timestamp) -> Option<Charge> {
        sub.due_renewal(now, &self.settings.dunning_schedule)
            .map(|n| Charge::renewal(sub, n, now))
    }

    /// A renewal attempt recorded: the call, unless the period had every attempt it can have.
    async fn charge_claimed(
        &self,
        sub: &Subscription,
        charge: &Charge,
    ) -> Result<(), ServiceError> {
        let cap = self.settings.dunning_schedule.len() + 1 + EXTRA_ATTEMPTS;
        if charge.attempt as usize > cap {
            // Never reached in a normal life.
            let n = charge.period.unwrap_or_default();
            let end = self.ended(charge, ChargeStatus::Failed, sub, |w| {
                w.event = Some(SubscriptionEvent::RetriesExhausted);
                w.change.next_charge_at = Some(None);
                w.log = Some((
                    SubscriptionCause::RetriesExhausted,
                    Detail::text(format!("period {n}: {cap} attempts made")),
                ));
            });
            self.store.finish_charge(&end, self.now()).await?;
            return Ok(());
        }
        self.send_charge(sub, charge).await
    }

    async fn reschedule(
        &self,
        sub: &Subscription,
        at: Option<Timestamp>,
    ) -> Result<(), ServiceError> {
        let mut w = SubWrite::new(&sub.id);
        w.change.next_charge_at = Some(at);
        self.store.change_subscription(&w, self.now()).await?;
        Ok(())
    }

    /// An end of `charge` with the subscription write `f` builds.
    fn ended(
        &self,
        charge: &Charge,
        status: ChargeStatus,
        sub: &Subscription,
        f: impl FnOnce(&mut SubWrite),
    ) -> ChargeEnd {
        let mut w = SubWrite::new(&sub.id);
        f(&mut w);
        ChargeEnd {
            charge: charge.id.clone(),
            status,
            failure: None,
            code: None,
            message: None,
            kakaopay_approved_at: None,
            payment: None,
            check_attempts: None,
            sub: w,
        }
    }

    /// Calls `/subscription` for a recorded attempt and records the outcome.
    pub(crate) async fn send_charge(
        &self,
        sub: &Subscription,
        charge: &Charge,
    ) -> Result<(), ServiceError> {
        let Some(sid) = self.open_sid(sub) else {
            let mut end = self.ended(charge, ChargeStatus::Failed, sub, |w| {
                w.change.next_charge_at = Some(Some(self.now().plus(crate::domain::MERCHANT_HOLD)));
                w.log = Some((
                    SubscriptionCause::RenewalHeld,
                    Detail::text("the SID does not open with this server's encryption key"),
                ));
            });
            end.failure = Some(ChargeFailureKind::Sealed);
            end.message = Some(
                "the SID does not open with this server's encryption key (KPAY_ENCRYPTION_KEY)"
                    .into(),
            );
            self.store.finish_charge(&end, self.now()).await?;
            return Ok(());
        };
        let request = self.charge_request(sub, charge, sid)?;
        // Sent only while no one else may judge the attempt lost: by this server's clock (the
        // test clock may jump) and by the wall clock (a stalled process).
        let (_, deadline) = self.attempt_window(charge.attempted_at);
        let left = deadline.since(self.now());
        let by = std::time::Instant::now() + left;
        let fresh = || self.now() < deadline && std::time::Instant::now() < by;
        let Some(outcome) = self.kakaopay.subscription(&request, fresh).await else {
            return self.withdraw(sub, charge).await;
        };
        if outcome.is_ok() {
            crate::crashpoint::hit("renewal.after_kakaopay");
        }
        let now = self.now();
        match outcome {
            Ok(resp) => self.record_charged(sub, charge, Some(&resp), None).await,
            Err(e) => {
                let failure = charge_failure(&e);
                let code = e.code().map(|c| c.code());
                tracing::info!(subscription = %sub.id, charge = %charge.id, error = %e, ?failure, "subscription charge not confirmed");
                if failure == ChargeFailure::Unknown {
                    let mut end = self.ended(charge, ChargeStatus::Unknown, sub, |w| {
                        w.change.next_charge_at =
                            Some(Some(self.attempt_window(charge.attempted_at).0));
                        w.log = Some((
                            SubscriptionCause::ChargeUnknown,
                            Detail::text(format!("charge {}: {e}", charge.id)).code(code),
                        ));
                    });
                    end.code = code;
                    end.message = Some(e.to_string());
                    self.store.finish_charge(&end, now).await?;
                    return Ok(());
                }
                self.record_refusal(sub, charge, failure, code, e.to_string())
                    .await
            }
        }
    }

    /// An attempt that was never sent: recorded as such, the period claimed again at once.
    async fn withdraw(&self, sub: &Subscription, charge: &Charge) -> Result<(), ServiceError> {
        tracing::warn!(subscription = %sub.id, charge = %charge.id, "a charge attempt was not sent in time; withdrawn, claimed again");
        let now = self.now();
        let mut end = self.ended(charge, ChargeStatus::Failed, sub, |w| {
            // Not at once: a stalled instance should not claim again in a loop.
            w.change.next_charge_at = Some(Some(now.plus(SEND_BUDGET)));
        });
        end.failure = Some(ChargeFailureKind::NotSent);
        end.message = Some("not sent in time; it never reached KakaoPay".into());
        self.store.finish_charge(&end, now).await?;
        self.kakaopay.metrics().renewal("not_sent");
        Ok(())
    }

    fn charge_request(
        &self,
        sub: &Subscription,
        charge: &Charge,
        sid: Sid,
    ) -> Result<SubscriptionRequest, ServiceError> {
        let invalid = |e: kakaopay::ValidationError| ServiceError::Invalid {
            field: e.field(),
            message: e.reason().to_owned(),
        };
        let order = PartnerOrderId::parse(charge.partner_order_id.clone()).map_err(invalid)?;
        Ok(SubscriptionRequest::new(
            sub.cid.clone(),
            sid,
            order,
            sub.partner_user_id.clone(),
            Quantity::new(1).map_err(invalid)?,
            charge.amounts.total,
        )
        .item_name(charge.item_name.clone())
        .tax_free(charge.amounts.tax_free)
        .vat(charge.amounts.vat))
    }

    /// A charge KakaoPay made: the payment (when its answer arrived), the period paid, dunning
    /// over. `seen` is KakaoPay's time of a charge found by a status lookup (no TID then).
    async fn record_charged(
        &self,
        sub: &Subscription,
        charge: &Charge,
        resp: Option<&ApproveResponse>,
        seen: Option<Timestamp>,
    ) -> Result<(), ServiceError> {
        let now = self.now();
        let kakaopay_at = resp.and_then(|r| kst_time(r.approved_at)).or(seen);
        let payment = match resp {
            Some(r) => Some(Payment::charged(
                PaymentId::generate(),
                r.cid.clone(),
                (r.tid.clone(), r.aid.clone()),
                (r.partner_order_id.clone(), r.partner_user_id.clone()),
                (
                    charge.item_name.clone(),
                    Quantity::new(1).map_err(|e| ServiceError::Invalid {
                        field: "quantity",
                        message: e.reason().to_owned(),
                    })?,
                ),
                Amounts::from(&r.amount),
                r.payment_method_type.clone(),
                r.card_info
                    .as_ref()
                    .and_then(|c| serde_json::to_value(c).ok()),
                sub.id.clone(),
                now,
            )),
            None => None,
        };
        if let Some(p) = &payment
            && p.amounts.total != charge.amounts.total
        {
            tracing::error!(subscription = %sub.id, charge = %charge.id, asked = charge.amounts.total.won(), charged = p.amounts.total.won(), "KakaoPay charged another amount than asked; recorded as charged");
        }
        let text = match (&payment, resp) {
            (Some(p), _) => format!("charge {}: payment {} (tid {})", charge.id, p.id, p.tid),
            (None, _) => format!(
                "charge {}: found charged by KakaoPay's subscription status; its TID is unknown (find it in KakaoPay's merchant console to refund it)",
                charge.id
            ),
        };
        let mut end = self.ended(charge, ChargeStatus::Succeeded, sub, |w| {
            w.change.charged = Some((now, kakaopay_at));
            match charge.period {
                Some(n) => {
                    w.event = Some(if n == sub.next_period {
                        SubscriptionEvent::ChargedCurrent
                    } else {
                        SubscriptionEvent::ChargedEarlier
                    });
                    w.change.next_period_at_least = Some(n + 1);
                    w.change.next_charge_at = Some(sub.period(n + 1).map(|p| p.start));
                    w.change.dunning_started_at = Some(None);
                    w.change.dunning_retries = Some(0);
                    w.log = Some((
                        if n == sub.next_period {
                            SubscriptionCause::ChargedCurrent
                        } else {
                            SubscriptionCause::ChargedEarlier
                        },
                        Detail::text(text.clone()),
                    ));
                }
                None => {
                    w.log = Some((SubscriptionCause::ExtraCharged, Detail::text(text.clone())));
                }
            }
        });
        end.kakaopay_approved_at = kakaopay_at;
        end.message = payment.is_none().then(|| text.clone());
        end.payment = payment;
        let late = end.payment.clone();
        match self.store.finish_charge(&end, now).await? {
            Finished::Recorded => {
                self.kakaopay.metrics().renewal("succeeded");
                tracing::info!(subscription = %sub.id, charge = %charge.id, "subscription charged");
            }
            Finished::RecordedCanceled => {
                self.kakaopay.metrics().renewal("succeeded");
                tracing::error!(subscription = %sub.id, charge = %charge.id, "a charge in flight when the subscription was canceled went through; refund it if the buyer should not pay the period");
            }
            // Someone else closed the attempt first (a lookup judged it); the payment KakaoPay
            // made is never dropped.
            Finished::NotOpen => {
                if let Some(p) = late {
                    let twice = self
                        .store
                        .record_late_charge(&charge.id, &sub.id, &p, now)
                        .await?;
                    self.kakaopay.metrics().renewal("late");
                    if twice {
                        tracing::error!(subscription = %sub.id, charge = %charge.id, payment = %p.id, "a charge's answer arrived after it was judged not charged; its payment is recorded — check the period for a second charge and refund one");
                    } else {
                        tracing::warn!(subscription = %sub.id, charge = %charge.id, payment = %p.id, "a charge's late answer linked to the charge found by lookup");
                    }
                }
            }
        }
        Ok(())
    }

    /// A refusal: dunning for a renewal (retry, give up, or hold for a merchant-side refusal);
    /// an extra charge just fails.
    async fn record_refusal(
        &self,
        sub: &Subscription,
        charge: &Charge,
        failure: ChargeFailure,
        code: Option<i64>,
        message: String,
    ) -> Result<(), ServiceError> {
        let now = self.now();
        let detail = Detail::text(format!("charge {}: {message}", charge.id)).code(code);
        let inactive_sid = code == Some(kakaopay::ErrorCode::SidInactive.code());
        let mut end = self.ended(charge, ChargeStatus::Failed, sub, |w| {
            if charge.kind != ChargeKind::Renewal {
                return;
            }
            // Retries count from the period's first refusal.
            let mut at = sub.clone();
            let retries = match sub.dunning_started_at {
                None => {
                    at.dunning_started_at = Some(now);
                    0
                }
                Some(_) => sub.dunning_retries + 1,
            };
            at.dunning_retries = retries;
            let jitter = rand::random::<f64>();
            match after_refusal(&at, failure, &self.settings.dunning_schedule, now, jitter) {
                Dunning::RetryAt(t) => {
                    w.event = Some(SubscriptionEvent::RenewalFailed);
                    w.change.dunning_started_at = Some(at.dunning_started_at);
                    w.change.dunning_retries = Some(retries);
                    w.change.next_charge_at = Some(Some(t));
                    w.log = Some((SubscriptionCause::RenewalFailed, detail.clone()));
                    self.kakaopay.metrics().renewal("retry_scheduled");
                }
                Dunning::GiveUp => {
                    let cancel = inactive_sid || self.settings.dunning_final == DunningFinal::Canceled;
                    w.event = Some(if cancel {
                        SubscriptionEvent::Canceled
                    } else {
                        SubscriptionEvent::RetriesExhausted
                    });
                    if cancel {
                        let why = if inactive_sid {
                            "the SID is inactive at KakaoPay"
                        } else {
                            "renewal retries exhausted (--dunning-final canceled)"
                        };
                        w.change.canceled = Some((now, why.to_owned()));
                        // Back soon to inactivate the SID (already inactive: recorded so).
                        w.change.next_charge_at = Some(Some(now));
                    } else {
                        w.change.next_charge_at = Some(None);
                    }
                    w.log = Some((
                        if cancel {
                            SubscriptionCause::Canceled
                        } else {
                            SubscriptionCause::RetriesExhausted
                        },
                        detail.clone(),
                    ));
                }
                Dunning::HoldUntil(t) => {
                    w.change.next_charge_at = Some(Some(t));
                    w.log = Some((SubscriptionCause::RenewalHeld, detail.clone()));
                    tracing::error!(subscription = %sub.id, code, "KakaoPay refused the merchant's configuration for a renewal; renewals wait an hour");
                }
            }
        });
        end.failure = Some(failure.into());
        end.code = code;
        end.message = Some(message);
        self.store.finish_charge(&end, now).await?;
        self.kakaopay.metrics().renewal("failed");
        Ok(())
    }

    /// Judges an open attempt (pending from a dead instance, or unknown) by KakaoPay's
    /// subscription status. `now_please`: the merchant asked (sync), so not before the grace.
    pub(crate) async fn resolve_open(
        &self,
        sub: &Subscription,
        open: &Charge,
        now_please: bool,
    ) -> Result<(), ServiceError> {
        let now = self.now();
        let (check_at, _) = self.attempt_window(open.attempted_at);
        // "Nothing newer" means "not charged" only once the attempt could no longer be out.
        let grace = check_at.since(open.attempted_at);
        if open.status == ChargeStatus::Pending && now < check_at {
            // Possibly still out (another instance's call): not before it must have ended.
            if !now_please {
                self.reschedule(sub, Some(check_at)).await?;
            }
            return Ok(());
        }
        let Some(sid) = self.open_sid(sub) else {
            return self
                .reschedule(sub, Some(now.plus(MAX_CHECK_BACKOFF)))
                .await;
        };
        let status = match self.kakaopay.subscription_status(&sub.cid, sid).await {
            Ok(s) => s,
            Err(e) => {
                let k = open.check_attempts + 1;
                let wait = (self.grace() * 2u32.saturating_pow(k.min(10))).min(MAX_CHECK_BACKOFF);
                let wait = wait.mul_f64(0.5 + rand::random::<f64>() / 2.0);
                let mut end = self.ended(open, ChargeStatus::Unknown, sub, |w| {
                    w.change.next_charge_at = Some(Some(now.plus(wait)));
                });
                end.check_attempts = Some(k);
                end.code = open.kakaopay_code;
                end.message = Some(format!("status lookup failed: {e}"));
                self.store.finish_charge(&end, now).await?;
                return Ok(());
            }
        };
        let seen = kst_time(status.last_approved_at);
        let verdict = judge_lost_charge(
            sub.last_kakaopay_approved_at,
            seen,
            open.attempted_at,
            sub.last_charged_at,
            now,
            grace,
        );
        tracing::info!(subscription = %sub.id, charge = %open.id, ?verdict, "lost charge judged");
        match verdict {
            Verdict::Charged => self.record_charged(sub, open, None, seen).await,
            Verdict::Wait => {
                let mut end = self.ended(open, ChargeStatus::Unknown, sub, |w| {
                    w.change.next_charge_at = Some(Some(open.attempted_at.plus(grace)));
                });
                end.code = open.kakaopay_code;
                end.message = open.message.clone();
                self.store.finish_charge(&end, now).await?;
                Ok(())
            }
            Verdict::NotCharged
                if open.kakaopay_code.is_some() && open.kind == ChargeKind::Renewal =>
            {
                // KakaoPay answered with a refusal that might have applied (USER_LOCKED); the
                // lookup shows it did not: a refusal, dunned like any soft one.
                let code = open.kakaopay_code;
                let message = open.message.clone().unwrap_or_else(|| "refused".into());
                self.record_refusal(sub, open, ChargeFailure::Soft, code, message)
                    .await
            }
            Verdict::NotCharged => {
                let inactive = status.status == kakaopay::SubscriptionStatus::Inactive;
                let mut end = self.ended(open, ChargeStatus::Failed, sub, |w| {
                    // Not a refusal: the period is tried again at once (bounded by the cap).
                    w.change.next_charge_at = Some(Some(now));
                    w.log = Some((
                        SubscriptionCause::ChargeNotApplied,
                        Detail::text(format!(
                            "charge {}: KakaoPay's status shows no charge since the last one",
                            open.id
                        )),
                    ));
                });
                end.failure = Some(ChargeFailureKind::NotApplied);
                end.message = Some(
                    "KakaoPay's subscription status shows no charge after this attempt".into(),
                );
                self.store.finish_charge(&end, now).await?;
                if inactive && sub.status != SubscriptionStatus::Canceled {
                    self.end_subscription(sub, "the SID is inactive at KakaoPay")
                        .await?;
                }
                Ok(())
            }
            Verdict::Undecidable => {
                let first = open.check_attempts == 0;
                let mut end = self.ended(open, ChargeStatus::Unknown, sub, |w| {
                    w.change.next_charge_at = Some(Some(now.plus(MAX_CHECK_BACKOFF)));
                    if first {
                        w.log = Some((
                            SubscriptionCause::ChargeUndecidable,
                            Detail::text(format!(
                                "charge {}: KakaoPay's status cannot tell it from the charge before; decide in the admin",
                                open.id
                            )),
                        ));
                    }
                });
                end.check_attempts = Some(open.check_attempts + 1);
                end.message = Some(
                    "undecidable from KakaoPay's subscription status: for the operator".into(),
                );
                self.store.finish_charge(&end, now).await?;
                tracing::error!(subscription = %sub.id, charge = %open.id, "a lost subscription charge cannot be decided; shown to the operator");
                Ok(())
            }
        }
    }

    /// Finishes a registration whose payment left `ready`: paid → the SID sealed, `active`,
    /// periods anchored (for a trial at its end); ended unpaid → `incomplete_expired`.
    /// `sid` is approve's, when the caller has it; otherwise an order lookup gives it.
    pub(crate) async fn settle_registration(
        &self,
        sub: &Subscription,
        p: &Payment,
        hint: Option<(Sid, Option<Timestamp>)>,
    ) -> Result<(), ServiceError> {
        let now = self.now();
        if p.status.ends_unpaid()
            || matches!(&p.failure, Some(f) if f.code == crate::domain::FailureCode::AmountMismatch)
        {
            let mut w = SubWrite::new(&sub.id);
            w.expect = Some(vec![SubscriptionStatus::Incomplete]);
            w.event = Some(SubscriptionEvent::RegistrationExpired);
            w.log = Some((
                SubscriptionCause::RegistrationExpired,
                Detail::text(format!("registration payment {} is {}", p.id, p.status)),
            ));
            self.store.change_subscription(&w, now).await?;
            return Ok(());
        }
        let paid = matches!(
            p.status,
            PaymentStatus::Approved | PaymentStatus::PartiallyCanceled | PaymentStatus::Canceled
        );
        if !paid {
            return Ok(());
        }
        let (sid, kakaopay_at) = match hint {
            Some(h) => h,
            None => {
                let order = self
                    .kakaopay
                    .order(&p.cid, &p.tid)
                    .await
                    .map_err(ServiceError::kakaopay)?;
                let sid = order.sid.ok_or(ServiceError::Incomplete {
                    field: "sid",
                    operation: "order",
                })?;
                (sid, kst_time(order.approved_at))
            }
        };
        if sub.status != SubscriptionStatus::Incomplete {
            if sub.status == SubscriptionStatus::Canceled && sub.sid_sealed.is_none() {
                // Canceled before the buyer finished: the SID KakaoPay issued must not stay usable.
                if let Err(e) = self.kakaopay.inactivate(&sub.cid, sid).await {
                    tracing::warn!(subscription = %sub.id, error = %e, "could not inactivate the SID of a canceled registration");
                }
            }
            return Ok(());
        }
        let sealed = self
            .settings
            .vault
            .seal(sub.id.as_str(), sid.as_str())
            .map_err(|e| ServiceError::Invalid {
                field: "sid",
                message: e.to_string(),
            })?;
        let last4: String = {
            let chars: Vec<char> = sid.as_str().chars().collect();
            chars[chars.len().saturating_sub(4)..].iter().collect()
        };
        let registered_at = p.approved_at.unwrap_or(now);
        let anchor = registered_at.plus(Duration::from_secs(u64::from(sub.trial_days) * 86_400));
        let mut next = sub.clone();
        next.billing_anchor = Some(anchor);
        let first_unpaid = if sub.trial_days > 0 { 0 } else { 1 };
        let mut w = SubWrite::new(&sub.id);
        w.expect = Some(vec![SubscriptionStatus::Incomplete]);
        w.event = Some(SubscriptionEvent::Registered);
        w.change.sid = Some((sealed, last4));
        w.change.registered_at = Some(registered_at);
        w.change.billing_anchor = Some(anchor);
        w.change.next_period_at_least = Some(first_unpaid);
        w.change.next_charge_at = Some(next.period(first_unpaid).map(|p| p.start));
        w.change.charged = Some((registered_at, kakaopay_at));
        w.log = Some((
            SubscriptionCause::Registered,
            Detail::text(format!(
                "registration payment {} ({} won)",
                p.id,
                p.amounts.total.won()
            )),
        ));
        let charge = (sub.trial_days == 0).then(|| Charge {
            id: ChargeId::generate(),
            subscription_id: sub.id.clone(),
            kind: ChargeKind::Registration,
            period: Some(0),
            attempt: 1,
            status: ChargeStatus::Succeeded,
            amounts: p.amounts,
            item_name: p.item_name.clone(),
            partner_order_id: p.partner_order_id.to_string(),
            payment_id: Some(p.id.clone()),
            failure: None,
            kakaopay_code: None,
            message: None,
            attempted_at: p.created_at,
            finished_at: Some(registered_at),
            kakaopay_approved_at: kakaopay_at,
            idempotency_key: None,
            check_attempts: 0,
        });
        if self
            .store
            .change_subscription_with_charge(&w, charge.as_ref(), now)
            .await?
            .is_some()
        {
            tracing::info!(subscription = %sub.id, "subscription registered");
        }
        Ok(())
    }
}
