//! The KakaoPay client as the server uses it: the merchant's CID, and metrics on every call.

use crate::metrics::Metrics;
use kakaopay::{
    ApproveRequest, ApproveResponse, CancelRequest, CancelResponse, Cid, Client, Error, Operation,
    OrderRequest, OrderResponse, ReadyRequest, ReadyResponse, Sid, SidRequest,
    SubscriptionInactiveResponse, SubscriptionRequest, SubscriptionStatusResponse, Tid,
};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

/// KakaoPay, for this merchant.
#[derive(Clone, Debug)]
pub(crate) struct Gateway {
    client: Client,
    cid: Cid,
    subscription_cid: Cid,
    metrics: Arc<Metrics>,
    /// With a test clock: every call holds this shared while it is out, and moving the clock
    /// takes it exclusively, so that no call is in flight while time jumps (a lookup right after
    /// the jump must not judge a call that is still out by the new time).
    calls: Option<Arc<RwLock<()>>>,
}

impl Gateway {
    /// Wraps a client.
    pub(crate) fn new(
        client: Client,
        cids: (Cid, Cid),
        metrics: Arc<Metrics>,
        test_clock: bool,
    ) -> Self {
        Self {
            client,
            cid: cids.0,
            subscription_cid: cids.1,
            metrics,
            calls: test_clock.then(|| Arc::new(RwLock::new(()))),
        }
    }

    /// Waits until no call is in flight and holds new ones back until the guard is dropped
    /// (only with a test clock; `None` otherwise).
    pub(crate) async fn pause_calls(&self) -> Option<OwnedRwLockWriteGuard<()>> {
        match &self.calls {
            Some(gate) => Some(Arc::clone(gate).write_owned().await),
            None => None,
        }
    }

    async fn call_permit(&self) -> Option<OwnedRwLockReadGuard<()>> {
        match &self.calls {
            Some(gate) => Some(Arc::clone(gate).read_owned().await),
            None => None,
        }
    }
    /// The merchant's CID.
    pub(crate) fn cid(&self) -> &Cid {
        &self.cid
    }
    /// The metrics.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }
    /// The merchant's subscription CID.
    pub(crate) fn subscription_cid(&self) -> &Cid {
        &self.subscription_cid
    }
    /// The base URL calls go to.
    pub(crate) fn base_url(&self) -> &str {
        self.client.base_url()
    }

    fn observe<T>(&self, op: Operation, started: Instant, result: &Result<T, Error>) {
        self.metrics
            .observe_kakaopay(op, started.elapsed(), result.as_ref().err());
    }

    /// ready.
    pub(crate) async fn ready(&self, req: &ReadyRequest) -> Result<ReadyResponse, Error> {
        let _permit = self.call_permit().await;
        let t = Instant::now();
        let r = self.client.ready(req).await;
        self.observe(Operation::Ready, t, &r);
        r
    }
    /// approve.
    pub(crate) async fn approve(&self, req: &ApproveRequest) -> Result<ApproveResponse, Error> {
        let _permit = self.call_permit().await;
        let t = Instant::now();
        let r = self.client.approve(req).await;
        self.observe(Operation::Approve, t, &r);
        r
    }
    /// cancel.
    pub(crate) async fn cancel(&self, req: &CancelRequest) -> Result<CancelResponse, Error> {
        let _permit = self.call_permit().await;
        let t = Instant::now();
        let r = self.client.cancel(req).await;
        self.observe(Operation::Cancel, t, &r);
        r
    }
    /// Order lookup of `tid`, made with `cid`.
    pub(crate) async fn order(&self, cid: &Cid, tid: &Tid) -> Result<OrderResponse, Error> {
        let _permit = self.call_permit().await;
        let t = Instant::now();
        let r = self
            .client
            .order(&OrderRequest::new(cid.clone(), tid.clone()))
            .await;
        self.observe(Operation::Order, t, &r);
        r
    }
    /// A subscription charge.
    ///
    /// `still_fresh` is asked once the call may go (after any pause of the test clock), right
    /// before it is sent: `false` sends nothing and gives `None`. A charge claimed long ago must
    /// not go out once another instance may judge it lost and charge the period again.
    pub(crate) async fn subscription(
        &self,
        req: &SubscriptionRequest,
        still_fresh: impl FnOnce() -> bool,
    ) -> Option<Result<ApproveResponse, Error>> {
        let _permit = self.call_permit().await;
        if !still_fresh() {
            return None;
        }
        let t = Instant::now();
        let r = self.client.subscription(req).await;
        self.observe(Operation::Subscription, t, &r);
        Some(r)
    }
    /// Inactivates a SID.
    pub(crate) async fn inactivate(
        &self,
        cid: &Cid,
        sid: Sid,
    ) -> Result<SubscriptionInactiveResponse, Error> {
        let _permit = self.call_permit().await;
        let t = Instant::now();
        let r = self
            .client
            .inactivate_subscription(&SidRequest::new(cid.clone(), sid))
            .await;
        self.observe(Operation::SubscriptionInactive, t, &r);
        r
    }
    /// A SID's status.
    pub(crate) async fn subscription_status(
        &self,
        cid: &Cid,
        sid: Sid,
    ) -> Result<SubscriptionStatusResponse, Error> {
        let _permit = self.call_permit().await;
        let t = Instant::now();
        let r = self
            .client
            .subscription_status(&SidRequest::new(cid.clone(), sid))
            .await;
        self.observe(Operation::SubscriptionStatus, t, &r);
        r
    }
}
