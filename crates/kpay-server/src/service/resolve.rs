//! Resolving unclear outcomes without storms. Every KakaoPay call made to learn what happened is
//! bounded:
//!
//! * **one resolver per payment**: per process through [`Resolvers`], across instances through the
//!   payment's lease, which the living holder renews every few seconds (so a killed instance's
//!   payments are picked up within [`LEASE_MS`]);
//! * **back-off with jitter**: the background resolver looks soon and then less often; the
//!   reconciler pushes each still-unclear payment's next lookup out exponentially (to
//!   [`MAX_BACKOFF`]);
//! * **bounded re-sends**: an approve is re-sent only after its grace period, each re-send restarts
//!   that period and doubles the next wait, at most [`MAX_RESENDS`] per approve claim, claimed in
//!   the database so that only one instance re-sends;
//! * **bounded callbacks**: browser callbacks (which anyone can forge) cause at most
//!   [`CALLBACK_CALLS`] KakaoPay calls per payment per minute.

use super::{ServiceError, Services, SyncReport, token};
use crate::domain::{Payment, PaymentId, RefundId, Timestamp};
use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How long a payment's lease lasts unless renewed. Short, so that a dead holder's payments are
/// picked up within seconds; the living holder renews it every [`RENEW_EVERY`].
pub(crate) const LEASE: Duration = Duration::from_secs(10);
/// How often a holder renews its lease or idempotency lock.
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(3);
/// Re-sends of one approve claim at most.
pub(crate) const MAX_RESENDS: u32 = 6;
/// KakaoPay calls that browser callbacks may cause per payment per [`CALLBACK_WINDOW`].
pub(crate) const CALLBACK_CALLS: i64 = 5;
/// A database write slower than this moves an unclear call's stamp to when it is really sent.
const SLOW_WRITE: Duration = Duration::from_millis(500);
/// When the reconciler looks after a callback's own lookup failed.
const CALLBACK_RETRY: Duration = Duration::from_secs(2);
/// The window of [`CALLBACK_CALLS`].
pub(crate) const CALLBACK_WINDOW: Duration = Duration::from_secs(60);
/// The longest wait between two lookups of a payment that stays unclear.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The payments this process is resolving in the background.
#[derive(Clone, Debug, Default)]
pub(crate) struct Resolvers(Arc<Mutex<HashSet<PaymentId>>>);

/// Membership in [`Resolvers`], given up when dropped (also when the task panics or is aborted).
struct Resolving {
    set: Resolvers,
    id: PaymentId,
}

impl Resolvers {
    fn enter(&self, id: &PaymentId) -> Option<Resolving> {
        let mut set = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        set.insert(id.clone()).then(|| Resolving {
            set: self.clone(),
            id: id.clone(),
        })
    }

    /// Whether a resolver for `id` is running in this process.
    #[cfg(test)]
    pub(crate) fn contains(&self, id: &PaymentId) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(id)
    }
}

impl Drop for Resolving {
    fn drop(&mut self) {
        self.set
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// `d` scaled by a random factor in [½, 1] ("equal jitter"): waits stay near their schedule while
/// many payments that became unclear together (an outage) spread out.
pub(crate) fn jittered(d: Duration) -> Duration {
    use rand::Rng;
    d.mul_f64(rand::rng().random_range(0.5..=1.0))
}

/// The wait before the next lookup of a payment that stayed unclear `attempts` times in a row:
/// one second doubling, at most [`MAX_BACKOFF`], jittered.
pub(crate) fn backoff(attempts: u32) -> Duration {
    jittered(Duration::from_secs(1u64 << attempts.min(16)).min(MAX_BACKOFF))
}

/// A lease owner for one acquisition: the instance, for people reading the table, and a random
/// part, so that two tasks of one instance never share a lease.
pub(crate) fn lease_token(instance: &str) -> String {
    format!("{instance}/{}", token())
}

impl Services {
    /// Looks a payment up at KakaoPay in the background until its unclear step is resolved: soon
    /// and often at first, then leaves it to the reconciler. At most one per payment in this
    /// process; across instances, only while holding the payment's lease.
    pub(crate) fn resolve_in_background(&self, id: PaymentId) {
        let Some(resolving) = self.resolvers.enter(&id) else {
            return;
        };
        let services = self.clone();
        let span = tracing::info_span!("resolve", payment_id = %id);
        let task = async move {
            let _resolving = resolving;
            let horizon = services.grace() + Duration::from_secs(2);
            let mut waited = Duration::ZERO;
            let mut step = Duration::from_millis(100);
            while waited <= horizon {
                let wait = jittered(step);
                tokio::time::sleep(wait).await;
                waited += wait;
                step = (step * 2).min(Duration::from_secs(4));
                match services.sync_leased(&id).await {
                    Ok(Some(report)) if !report.still_unclear => return,
                    Ok(_) => {}
                    Err(ServiceError::Unavailable(e)) => {
                        // KakaoPay is unreachable: the reconciler probes it and catches up.
                        tracing::warn!(payment = %id, error = %e, "background lookup failed; leaving it to the reconciler");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(payment = %id, error = %e, "background lookup failed; will retry")
                    }
                }
            }
        };
        self.tasks
            .spawn(tracing::Instrument::instrument(task, span));
    }

    /// [`Services::sync`] while holding the payment's lease, renewed as long as it runs. `None`
    /// when another resolver (here or in another instance) holds it.
    pub(crate) async fn sync_leased(
        &self,
        id: &PaymentId,
    ) -> Result<Option<SyncReport>, ServiceError> {
        let owner = &lease_token(&self.settings.instance);
        if !self.store.lease_one(id, owner, self.now(), LEASE).await? {
            return Ok(None);
        }
        let result = self.holding_lease(id, owner, self.sync(id)).await;
        if let Err(e) = self.store.release(id, owner).await {
            tracing::warn!(payment = %id, error = %e, "could not release the lease");
        }
        result.map(Some)
    }

    /// Runs `work` while renewing `owner`'s lease of payment `id`.
    pub(crate) async fn holding_lease<F: Future>(
        &self,
        id: &PaymentId,
        owner: &str,
        work: F,
    ) -> F::Output {
        let mut work = std::pin::pin!(work);
        let mut renew = tokio::time::interval(RENEW_EVERY);
        renew.tick().await;
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = renew.tick() => {
                    match self.store.renew_lease(id, owner, self.now().plus(LEASE)).await {
                        Ok(true) => {}
                        // Work already under way finishes (its writes are conditional); another
                        // resolver may now look too, which costs a lookup, not money.
                        Ok(false) => tracing::warn!(payment = %id, "lease lost while resolving"),
                        Err(e) => tracing::warn!(payment = %id, error = %e, "could not renew the lease"),
                    }
                }
            }
        }
    }

    /// The grace period of an approve is judged from the moment it is sent. Stamped in the claim,
    /// that is before the database write, which may have waited (a busy SQLite writer, a
    /// PostgreSQL pool at its limit): after a slow write the stamp moves to now, so a lookup never
    /// believes "not applied" while the call may still be out.
    pub(crate) async fn restamp_approve(
        &self,
        mut p: Payment,
        stamped: Timestamp,
    ) -> Result<Payment, ServiceError> {
        let now = self.now();
        if now.since(stamped) > SLOW_WRITE
            && self.store.restamp_approve(&p.id, stamped, now).await?
        {
            p.approve_started_at = Some(now);
        }
        Ok(p)
    }

    /// [`Services::restamp_approve`] for a refund about to be sent.
    pub(crate) async fn restamp_refund(
        &self,
        refund_id: &RefundId,
        stamped: Timestamp,
    ) -> Result<(), ServiceError> {
        let now = self.now();
        if now.since(stamped) > SLOW_WRITE {
            self.store.restamp_refund(refund_id, now).await?;
        }
        Ok(())
    }

    /// A lookup caused by a browser callback (cancel, fail, a late approve): made only while the
    /// payment's callback budget lasts; otherwise the payment as known.
    #[tracing::instrument(skip_all, fields(payment_id = %id))]
    pub(crate) async fn sync_from_callback(&self, id: &PaymentId) -> Result<Payment, ServiceError> {
        let now = self.now();
        if !self
            .store
            .take_callback_budget(id, now, CALLBACK_WINDOW, CALLBACK_CALLS)
            .await?
        {
            tracing::info!(payment = %id, "callback budget spent; answering without a lookup");
            return self.payment(id).await;
        }
        match self.sync(id).await {
            Ok(report) => Ok(report.payment),
            Err(ServiceError::NotFound(missing)) => Err(ServiceError::NotFound(missing)),
            Err(e) => {
                // KakaoPay unreachable: show what is known, and let the reconciler look soon (the
                // buyer's news, say a quit, must not wait for the 15 minutes).
                tracing::warn!(payment = %id, error = %e, "lookup after a callback failed");
                self.store.check_by(id, now.plus(CALLBACK_RETRY)).await?;
                self.payment(id).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn backoff_grows_and_stays_capped(attempts in 0u32..1000) {
            let d = backoff(attempts);
            let full = Duration::from_secs(1u64 << attempts.min(16)).min(MAX_BACKOFF);
            prop_assert!(d <= full);
            prop_assert!(d >= full / 2);
        }
    }

    #[test]
    fn one_resolver_per_payment() {
        let r = Resolvers::default();
        let (one, two) = (PaymentId::generate(), PaymentId::generate());
        let first = r.enter(&one);
        assert!(first.is_some());
        assert!(r.enter(&one).is_none(), "a second resolver is refused");
        assert!(r.enter(&two).is_some());
        drop(first);
        assert!(!r.contains(&one));
        assert!(r.enter(&one).is_some(), "free again once the first ended");
    }
}
