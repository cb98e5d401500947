//! The KakaoPay client as the server uses it: the merchant's CID, and metrics on every call.

use crate::metrics::Metrics;
use kakaopay::{
    ApproveRequest, ApproveResponse, CancelRequest, CancelResponse, Cid, Client, Error, Operation,
    OrderRequest, OrderResponse, ReadyRequest, ReadyResponse, Tid,
};
use std::sync::Arc;
use std::time::Instant;

/// KakaoPay, for this merchant.
#[derive(Clone, Debug)]
pub(crate) struct Gateway {
    client: Client,
    cid: Cid,
    metrics: Arc<Metrics>,
}

impl Gateway {
    /// Wraps a client.
    pub(crate) fn new(client: Client, cid: Cid, metrics: Arc<Metrics>) -> Self {
        Self {
            client,
            cid,
            metrics,
        }
    }
    /// The merchant's CID.
    pub(crate) fn cid(&self) -> &Cid {
        &self.cid
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
        let t = Instant::now();
        let r = self.client.ready(req).await;
        self.observe(Operation::Ready, t, &r);
        r
    }
    /// approve.
    pub(crate) async fn approve(&self, req: &ApproveRequest) -> Result<ApproveResponse, Error> {
        let t = Instant::now();
        let r = self.client.approve(req).await;
        self.observe(Operation::Approve, t, &r);
        r
    }
    /// cancel.
    pub(crate) async fn cancel(&self, req: &CancelRequest) -> Result<CancelResponse, Error> {
        let t = Instant::now();
        let r = self.client.cancel(req).await;
        self.observe(Operation::Cancel, t, &r);
        r
    }
    /// Order lookup of `tid`.
    pub(crate) async fn order(&self, tid: &Tid) -> Result<OrderResponse, Error> {
        let t = Instant::now();
        let r = self
            .client
            .order(&OrderRequest::new(self.cid.clone(), tid.clone()))
            .await;
        self.observe(Operation::Order, t, &r);
        r
    }
}
