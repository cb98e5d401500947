//! A stateful local KakaoPay: both API generations at their real paths, the buyer's payment pages,
//! test helpers to drive a payment without a browser, a movable clock, and injectable faults.
//!
//! No machine of this project reaches KakaoPay; every test, demo, benchmark and chaos run goes
//! through this crate. It follows `shared/spec/kakaopay-api.md` (statuses, arithmetic, codes, body
//! shapes) so closely that client code written against it works unchanged against KakaoPay's test
//! mode.
//!
//! * [`router`] gives an axum `Router` to mount anywhere (`kpay serve` mounts it at `/sandbox`);
//! * [`spawn`] runs one on a free loopback port, for tests;
//! * `kpay sandbox` runs one standalone.
//!
//! Module map: [`engine`] decides (status graph, amounts, codes), [`api`] speaks HTTP for both
//! generations, [`pages`] renders the buyer's pages, [`helpers`] is the `/test/v1` control surface,
//! [`faults`] and [`clock`] are the knobs, [`state`] holds payments in sharded maps.

#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod clock;
pub mod engine;
mod error;
pub mod faults;
pub mod helpers;
mod ids;
pub mod magic;
pub mod pages;
pub mod state;

pub use error::SandboxError;

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How the sandbox behaves.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Base URL browsers use to reach the sandbox (payment page links and QR codes are built from
    /// it), without a trailing slash, e.g. `http://127.0.0.1:9090` or `http://127.0.0.1:8080/sandbox`.
    /// Empty: [`spawn`] fills in its own address.
    pub public_url: String,
    /// Accepted current-generation secret keys; empty: any non-empty key.
    pub secret_keys: Vec<String>,
    /// Accepted legacy admin keys; empty: any non-empty key.
    pub admin_keys: Vec<String>,
    /// Single-payment CIDs.
    pub single_cids: Vec<String>,
    /// Subscription CIDs (their approve issues a SID).
    pub subscription_cids: Vec<String>,
    /// How long a ready stays payable (KakaoPay: 15 minutes).
    pub payment_ttl: chrono::Duration,
    /// How long settled payments (paid, cancelled, failed, expired) are kept before eviction.
    pub retention: Duration,
    /// Charges allowed per SID before `-752` (KakaoPay does not publish its limit; `None`: no limit).
    pub sid_monthly_limit: Option<u32>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            public_url: String::new(),
            secret_keys: Vec::new(),
            admin_keys: Vec::new(),
            single_cids: vec!["TC0ONETIME".into()],
            subscription_cids: vec!["TCSUBSCRIP".into()],
            payment_ttl: chrono::Duration::minutes(15),
            retention: Duration::from_secs(3600),
            sid_monthly_limit: None,
        }
    }
}

impl SandboxConfig {
    /// Whether `cid` is accepted at all.
    pub fn is_known_cid(&self, cid: &str) -> bool {
        self.single_cids
            .iter()
            .chain(&self.subscription_cids)
            .any(|c| c == cid)
    }
    /// Whether `cid` is a subscription CID.
    pub fn is_subscription_cid(&self, cid: &str) -> bool {
        self.subscription_cids.iter().any(|c| c == cid)
    }
}

#[derive(Debug)]
struct Inner {
    config: SandboxConfig,
    clock: clock::Clock,
    store: state::Store,
    faults: faults::Faults,
}

/// A sandbox: its state, clock and faults. Cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

impl Sandbox {
    /// A fresh sandbox.
    pub fn new(mut config: SandboxConfig) -> Self {
        config.public_url = config.public_url.trim_end_matches('/').to_owned();
        Self {
            inner: Arc::new(Inner {
                config,
                clock: clock::Clock::default(),
                store: state::Store::default(),
                faults: faults::Faults::default(),
            }),
        }
    }
    /// The configuration.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }
    /// The clock.
    pub fn clock(&self) -> &clock::Clock {
        &self.inner.clock
    }
    /// The state.
    pub fn store(&self) -> &state::Store {
        &self.inner.store
    }
    /// The fault registry.
    pub fn faults(&self) -> &faults::Faults {
        &self.inner.faults
    }

    /// Starts the task that evicts settled payments after the retention; it ends with the sandbox.
    pub fn start_eviction(&self) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let retention = chrono::Duration::from_std(self.config().retention)
            .unwrap_or_else(|_| chrono::Duration::hours(1));
        let every = (self.config().retention / 4)
            .clamp(Duration::from_millis(200), Duration::from_secs(30));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let evicted = inner.store.evict(inner.clock.now(), retention);
                if evicted > 0 {
                    tracing::debug!(evicted, "sandbox evicted settled payments");
                }
            }
        })
    }
}

/// The sandbox's routes: the API at both generations' paths, the payment pages and `/test/v1`.
pub fn router(sandbox: Sandbox) -> axum::Router {
    axum::Router::new()
        .merge(api::routes())
        .merge(pages::routes())
        .merge(helpers::routes())
        .with_state(sandbox)
}

/// A sandbox serving on a loopback port, for tests and examples. Stops when dropped.
#[derive(Debug)]
pub struct SpawnedSandbox {
    sandbox: Sandbox,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
    eviction: tokio::task::JoinHandle<()>,
}

impl SpawnedSandbox {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// The sandbox itself (state, clock, faults).
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }
    /// The buyer authenticates (as `POST /test/v1/payments/{tid}/authorize` does); returns the
    /// pg_token that the approval_url redirect would carry.
    pub fn authorize(&self, tid: &str) -> Result<String, SandboxError> {
        let redirect = self.sandbox.authorize(tid, None)?;
        redirect
            .pg_token
            .ok_or_else(|| SandboxError::api(500, -500, "no pg_token issued"))
    }
}

impl Drop for SpawnedSandbox {
    fn drop(&mut self) {
        self.server.abort();
        self.eviction.abort();
    }
}

/// Runs a sandbox on `127.0.0.1:0`. An empty `public_url` becomes its own address.
pub async fn spawn(mut config: SandboxConfig) -> std::io::Result<SpawnedSandbox> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    if config.public_url.is_empty() {
        config.public_url = format!("http://{addr}");
    }
    let sandbox = Sandbox::new(config);
    let app = router(sandbox.clone());
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "sandbox server stopped");
        }
    });
    let eviction = sandbox.start_eviction();
    Ok(SpawnedSandbox {
        sandbox,
        addr,
        server,
        eviction,
    })
}
