//! The reconciler: finds payments whose check is due (stuck in `ready` past 15 minutes, `approving`,
//! a pending refund), leases them so that each is handled by one instance at a time, looks them up
//! at KakaoPay and converges the ledger. `kpay reconcile` runs one pass by hand with a full report.

use super::resolve::{LEASE, backoff, jittered, lease_token};
use super::{ServiceError, Services, SyncReport, token};
use crate::domain::Payment;
use crate::store::ReconcilerRun;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Payments looked at per batch.
const BATCH: i64 = 64;
/// How soon a payment whose lookup found KakaoPay down is probed again.
const OUTAGE_RETRY: Duration = Duration::from_secs(5);
/// Batches per pass at most: a pass ends, whatever is due.
const MAX_BATCHES: usize = 32;
/// Lookups in flight at once.
const PARALLEL: usize = 8;

/// One reconciled payment, for reports.
#[derive(Clone, Debug)]
pub struct Line {
    /// Payment id.
    pub id: String,
    /// TID.
    pub tid: String,
    /// What changed, as `from → to`.
    pub change: Option<String>,
    /// Disagreement with KakaoPay after the sync.
    pub mismatch: Option<String>,
    /// Why the lookup failed.
    pub error: Option<String>,
}

/// What a pass did.
#[derive(Clone, Debug, Default)]
pub struct PassReport {
    /// Payments looked at.
    pub checked: usize,
    /// Lines for payments that changed, disagree or failed.
    pub lines: Vec<Line>,
}

impl PassReport {
    /// How many payments changed.
    pub fn changed(&self) -> usize {
        self.lines.iter().filter(|l| l.change.is_some()).count()
    }
    /// How many disagree with KakaoPay.
    pub fn mismatches(&self) -> usize {
        self.lines.iter().filter(|l| l.mismatch.is_some()).count()
    }
}

fn line(id: String, tid: String, result: Result<SyncReport, ServiceError>) -> Option<Line> {
    match result {
        Ok(r) => {
            let change = r.changed.map(|(a, b)| format!("{a} → {b}"));
            (change.is_some() || r.mismatch.is_some()).then_some(Line {
                id,
                tid,
                change,
                mismatch: r.mismatch,
                error: None,
            })
        }
        Err(e) => Some(Line {
            id,
            tid,
            change: None,
            mismatch: None,
            error: Some(e.to_string()),
        }),
    }
}

/// Looks one leased payment up, unless its lease was lost while it waited in the batch or KakaoPay
/// turned out to be down during this pass (then no call is made: during an outage a pass probes
/// KakaoPay with a few payments instead of calling for every one, and the next pass catches up).
/// `None`: skipped.
#[tracing::instrument(name = "reconcile", skip_all, fields(payment_id = %p.id))]
async fn reconcile_one(
    services: &Services,
    p: &Payment,
    owner: &str,
    outage: &AtomicBool,
) -> Option<Result<SyncReport, ServiceError>> {
    if outage.load(Ordering::Relaxed) {
        return None;
    }
    match services
        .store
        .renew_lease(&p.id, owner, services.now().plus(LEASE))
        .await
    {
        Ok(true) => {}
        Ok(false) => return None,
        Err(e) => return Some(Err(e.into())),
    }
    let result = services
        .holding_lease(&p.id, owner, services.sync(&p.id))
        .await;
    let next = match &result {
        // Still unclear although KakaoPay answered: look again later and later.
        Ok(r) if r.still_unclear => Some(services.now().plus(backoff(p.check_attempts))),
        Ok(_) => {
            // Settled: nothing more to look up (unless the sync scheduled a later check itself).
            if let Err(e) = services.store.settle_check(&p.id, services.now()).await {
                tracing::warn!(payment = %p.id, error = %e, "could not settle the check");
            }
            None
        }
        Err(ServiceError::Unavailable(e)) => {
            // KakaoPay is down: the pass stops calling (the flag), and the payment is probed again
            // soon without growing its back-off, so that it is settled within seconds of the end
            // of the outage. Calls stay bounded by the pass, not by the payment.
            tracing::warn!(payment = %p.id, error = %e, "reconciler lookup failed: KakaoPay unavailable");
            outage.store(true, Ordering::Relaxed);
            let retry = services.now().plus(jittered(OUTAGE_RETRY));
            if let Err(e) = services.store.schedule_check(&p.id, Some(retry)).await {
                tracing::warn!(payment = %p.id, error = %e, "could not schedule the next lookup");
            }
            None
        }
        Err(e) => {
            tracing::warn!(payment = %p.id, error = %e, "reconciler lookup failed");
            Some(services.now().plus(backoff(p.check_attempts.max(3))))
        }
    };
    if let Some(at) = next
        && let Err(e) = services.store.back_off_check(&p.id, at).await
    {
        tracing::warn!(payment = %p.id, error = %e, "could not schedule the next lookup");
    }
    Some(result)
}

/// The background reconciler of one instance.
#[derive(Clone, Debug)]
pub struct Reconciler {
    services: Services,
    interval: Duration,
}

impl Reconciler {
    /// A reconciler running every `interval`.
    pub fn new(services: Services, interval: Duration) -> Self {
        Self { services, interval }
    }

    /// Leases due payments in batches and syncs each; records the run.
    pub async fn run_pass(&self) -> PassReport {
        let started = self.services.now();
        let owner = &lease_token(&self.services.settings.instance);
        let mut report = PassReport::default();
        for _ in 0..MAX_BATCHES {
            let due = match self
                .services
                .store
                .lease_due(owner, self.services.now(), LEASE, BATCH)
                .await
            {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "reconciler could not lease payments");
                    break;
                }
            };
            let batch = due.len();
            let outage = Arc::new(AtomicBool::new(false));
            let mut set = JoinSet::new();
            for p in due {
                if set.len() >= PARALLEL
                    && let Some(Ok(Some(l))) = set.join_next().await
                {
                    report.lines.push(l);
                }
                let services = self.services.clone();
                let owner = owner.clone();
                let outage = Arc::clone(&outage);
                report.checked += 1;
                set.spawn(async move {
                    let result = reconcile_one(&services, &p, &owner, &outage).await;
                    if let Err(e) = services.store.release(&p.id, &owner).await {
                        tracing::warn!(payment = %p.id, error = %e, "could not release the lease");
                    }
                    result.and_then(|r| line(p.id.to_string(), p.tid.to_string(), r))
                });
            }
            while let Some(r) = set.join_next().await {
                if let Ok(Some(l)) = r {
                    report.lines.push(l);
                }
            }
            if outage.load(Ordering::Relaxed) {
                tracing::warn!("KakaoPay is unavailable; the next pass probes it again");
                break;
            }
            if i64::try_from(batch).unwrap_or(0) < BATCH {
                break;
            }
        }
        // Subscriptions: registrations to settle, renewals, retries and lost answers due.
        report.checked += self.services.run_renewals(owner).await.handled;
        // Idempotency keys are kept for a day.
        let _ = self
            .services
            .store
            .idem_expire(self.services.now().minus(Duration::from_secs(86_400)))
            .await;
        if report.checked > 0 {
            let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
            let run = ReconcilerRun {
                id: format!("run_{}", token()),
                instance: self.services.settings.instance.clone(),
                started_at: started,
                finished_at: self.services.now(),
                checked: count(report.checked),
                changed: count(report.changed()),
                mismatches: count(report.mismatches()),
            };
            if let Err(e) = self.services.store.record_run(&run).await {
                tracing::warn!(error = %e, "could not record the reconciler run");
            }
            tracing::info!(
                checked = report.checked,
                changed = report.changed(),
                mismatches = report.mismatches(),
                "reconciler pass"
            );
        }
        report
    }

    /// Runs passes until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            self.run_pass().await;
        }
    }

    /// `kpay reconcile`: a pass over everything due, plus a comparison of every payment changed in
    /// the last `since` with KakaoPay.
    pub async fn full_report(&self, since: Duration) -> PassReport {
        let mut report = self.run_pass().await;
        let recent = match self
            .services
            .store
            .updated_since(self.services.now().minus(since), 10_000)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                report.lines.push(Line {
                    id: "-".into(),
                    tid: "-".into(),
                    change: None,
                    mismatch: None,
                    error: Some(e.to_string()),
                });
                return report;
            }
        };
        let seen: std::collections::HashSet<String> =
            report.lines.iter().map(|l| l.id.clone()).collect();
        for p in recent.into_iter().filter(|p| !seen.contains(p.id.as_str())) {
            report.checked += 1;
            let result = self.services.sync(&p.id).await;
            if let Some(l) = line(p.id.to_string(), p.tid.to_string(), result) {
                report.lines.push(l);
            }
        }
        report
    }
}
