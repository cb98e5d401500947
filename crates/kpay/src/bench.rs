//! `kpay bench …`: bounded load generators aimed at loopback servers only.

use hdrhistogram::Histogram;
use kakaopay::{ApproveRequest, Client, Credentials, PgToken, ReadyRequest};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum Bench {
    /// ready → authorize (test helper) → approve round trips against a running sandbox.
    Sandbox(SandboxBench),
    /// Complete payments against a running `kpay serve`: create (merchant API) → the buyer
    /// authenticates (sandbox helper) → approval callback.
    Server(ServerBench),
    /// N subscriptions due at once, charged by the scheduler after one test-clock jump
    /// (renewals/s, exactly once by the ledger and by KakaoPay).
    Renewals(crate::bench_renewals::RenewalsBench),
    /// Payments flowing while a local receiver verifies every webhook: deliveries/s, the delay
    /// from the state change to the delivery, payments/s with webhooks on vs off (same run).
    Webhooks(crate::bench_webhooks::WebhooksBench),
}

/// Flags of `kpay bench server`.
#[derive(Debug, clap::Args)]
pub struct ServerBench {
    /// The server's base URL; must be a loopback address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The sandbox the server uses (default: the built-in one at <url>/sandbox).
    #[arg(long)]
    sandbox_url: Option<String>,
    /// The merchant API key (default: read from ./kpay-data/api-key).
    #[arg(long, env = "KPAY_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Seconds to run (1–300).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    duration: u64,
    /// Seconds of warm-up before measuring (0–60).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=60))]
    warmup: u64,
    /// Concurrent buyers (1–1024).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1024))]
    concurrency: u64,
}

/// Flags of `kpay bench sandbox`.
#[derive(Debug, clap::Args)]
pub struct SandboxBench {
    /// Sandbox base URL; must be a loopback address.
    #[arg(long, default_value = "http://127.0.0.1:9090")]
    url: String,
    /// Seconds to run (1–300).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    duration: u64,
    /// Seconds of warm-up before measuring (0–60).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=60))]
    warmup: u64,
    /// Concurrent payment flows (1–1024).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1024))]
    concurrency: u64,
    /// API generation to use.
    #[arg(long, default_value = "open", value_parser = ["open", "legacy"])]
    api: String,
}

/// Why a benchmark refused to run or failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Load goes to loopback only.
    #[error(
        "--url {0:?} is not a loopback http URL (127.0.0.0/8, localhost or [::1]); load tests stay on this machine"
    )]
    NotLoopback(String),
    /// The client could not be built.
    #[error("{0}")]
    Client(#[from] kakaopay::Error),
    /// The run saw failures.
    #[error("{0} payment flows failed; first error: {1}")]
    Failures(u64, String),
}

/// `--api-key`, or the key `kpay serve` generated into `./kpay-data/api-key`.
pub(crate) fn api_key(given: Option<String>) -> Result<String, String> {
    match given {
        Some(k) => Ok(k),
        None => std::fs::read_to_string("kpay-data/api-key")
            .map(|k| k.trim().to_owned())
            .map_err(|e| format!("no --api-key and ./kpay-data/api-key unreadable: {e}")),
    }
}

pub(crate) fn loopback(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && match u.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            }
    })
}

/// Runs a benchmark and prints its figures.
pub async fn run(bench: Bench) -> Result<(), Box<dyn std::error::Error>> {
    match bench {
        Bench::Sandbox(args) => sandbox(args).await,
        Bench::Server(args) => server(args).await,
        Bench::Renewals(args) => crate::bench_renewals::run(args).await,
        Bench::Webhooks(args) => crate::bench_webhooks::run(args).await,
    }
}

/// Counters shared by the workers of one run.
struct Run {
    measuring: AtomicBool,
    stop: AtomicBool,
    completed: AtomicU64,
    failures: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

/// What a run measured.
pub(crate) struct Measured {
    pub(crate) elapsed: f64,
    pub(crate) completed: u64,
    pub(crate) failures: u64,
    pub(crate) first_error: String,
    /// Latencies (µs) per request kind of a flow.
    pub(crate) latencies: Vec<Histogram<u64>>,
}

/// Runs `flow` in `concurrency` loops: `warmup` seconds unmeasured, then `duration` seconds
/// measured. A flow returns the latency (µs) of each of its `kinds` requests.
pub(crate) async fn drive<F, Fut>(
    concurrency: u64,
    warmup: u64,
    duration: u64,
    kinds: usize,
    flow: F,
) -> Measured
where
    F: Fn(u64, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Vec<u32>, String>> + Send,
{
    let run = Arc::new(Run {
        measuring: AtomicBool::new(warmup == 0),
        stop: AtomicBool::new(false),
        completed: AtomicU64::new(0),
        failures: AtomicU64::new(0),
        first_error: std::sync::Mutex::new(None),
    });
    let flow = Arc::new(flow);
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let run = Arc::clone(&run);
            let flow = Arc::clone(&flow);
            tokio::spawn(async move {
                let mut mine: Vec<Vec<u32>> = vec![Vec::with_capacity(1 << 15); kinds];
                let mut n = 0;
                while !run.stop.load(Ordering::Relaxed) {
                    n += 1;
                    let measuring = run.measuring.load(Ordering::Relaxed);
                    match flow(w, n).await {
                        Ok(times) if measuring => {
                            // Requests past the last kind count as the last kind.
                            for (k, t) in times.into_iter().enumerate() {
                                mine[k.min(kinds - 1)].push(t);
                            }
                            run.completed.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            run.failures.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut first) = run.first_error.lock() {
                                first.get_or_insert(e);
                            }
                        }
                    }
                }
                mine
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(warmup)).await;
    run.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(duration)).await;
    run.stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies: Vec<Histogram<u64>> = (0..kinds).map(|_| histogram()).collect();
    for w in workers {
        if let Ok(mine) = w.await {
            for (k, l) in mine.into_iter().enumerate() {
                for us in l {
                    latencies[k].saturating_record(u64::from(us));
                }
            }
        }
    }
    Measured {
        elapsed,
        completed: run.completed.load(Ordering::Relaxed),
        failures: run.failures.load(Ordering::Relaxed),
        first_error: run
            .first_error
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .unwrap_or_default(),
        latencies,
    }
}

/// Latencies in µs from 1 µs to 10 min at three significant digits (1 µs resolution below 1 ms,
/// 0.1 % above). A fixed range: `saturating_record` clamps to it instead of growing it.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3)
        .unwrap_or_else(|_| unreachable!("valid bounds and precision"))
}

/// `p` of the latencies, in ms.
fn percentile(h: &Histogram<u64>, p: f64) -> f64 {
    h.value_at_quantile(p) as f64 / 1000.0
}

pub(crate) fn latency_line(h: &Histogram<u64>) -> String {
    format!(
        "p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        percentile(h, 0.5),
        percentile(h, 0.9),
        percentile(h, 0.99),
        h.max() as f64 / 1000.0
    )
}

impl Measured {
    fn result(self) -> Result<(), Box<dyn std::error::Error>> {
        println!("  failed                  : {}", self.failures);
        if self.failures > 0 {
            return Err(BenchError::Failures(self.failures, self.first_error).into());
        }
        Ok(())
    }
}

fn micros(since: Instant) -> u32 {
    u32::try_from(since.elapsed().as_micros()).unwrap_or(u32::MAX)
}

async fn sandbox(args: SandboxBench) -> Result<(), Box<dyn std::error::Error>> {
    if !loopback(&args.url) {
        return Err(BenchError::NotLoopback(args.url).into());
    }
    let base = args.url.trim_end_matches('/').to_owned();
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(2048)
        .build()?;
    let credentials = if args.api == "legacy" {
        Credentials::admin_key("bench-admin-key")
    } else {
        Credentials::dev_secret_key("DEVBENCH00000000000000000000000000000000")
    };
    let client = Client::builder(credentials)
        .base_url(&base)
        .http_client(http.clone())
        .build()?;
    let target = Arc::new((client, http, base));
    let m = drive(
        args.concurrency,
        args.warmup,
        args.duration,
        1,
        move |w, n| {
            let target = Arc::clone(&target);
            async move { sandbox_flow(&target.0, &target.1, &target.2, w, n).await }
        },
    )
    .await;
    println!(
        "kpay bench sandbox: {} API, {} concurrent flows, {:.1} s measured",
        args.api, args.concurrency, m.elapsed
    );
    println!(
        "  payment flows completed : {} ({:.0}/s)",
        m.completed,
        m.completed as f64 / m.elapsed
    );
    println!(
        "  HTTP requests           : {} ({:.0}/s)",
        m.latencies[0].len(),
        m.latencies[0].len() as f64 / m.elapsed
    );
    println!(
        "  request latency         : {}",
        latency_line(&m.latencies[0])
    );
    m.result()
}

/// ready → authorize → approve; the three latencies go into one list (kind 0).
async fn sandbox_flow(
    client: &Client,
    http: &reqwest::Client,
    base: &str,
    worker: u64,
    n: u64,
) -> Result<Vec<u32>, String> {
    let req = ReadyRequest::builder()
        .cid("TC0ONETIME")
        .partner_order_id(format!("bench-{worker}-{n}"))
        .partner_user_id(format!("user-{worker}"))
        .item_name("벤치마크 상품")
        .quantity(1)
        .total_amount(11_000)
        .approval_url("http://127.0.0.1/approve")
        .cancel_url("http://127.0.0.1/cancel")
        .fail_url("http://127.0.0.1/fail")
        .build()
        .map_err(|e| e.to_string())?;
    let t = Instant::now();
    let ready = client.ready(&req).await.map_err(|e| e.to_string())?;
    let ready_us = micros(t);
    let t = Instant::now();
    let resp = http
        .post(format!("{base}/test/v1/payments/{}/authorize", ready.tid))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
    let authorize_us = micros(t);
    if !status.is_success() {
        return Err(format!("authorize answered {status}: {body}"));
    }
    let token = body["pg_token"]
        .as_str()
        .ok_or("authorize answered no pg_token")?;
    let pg_token = PgToken::parse(token).map_err(|e| e.to_string())?;
    let approve = ApproveRequest::new(
        req.cid.clone(),
        ready.tid,
        req.partner_order_id.clone(),
        req.partner_user_id.clone(),
        pg_token,
    );
    let t = Instant::now();
    client.approve(&approve).await.map_err(|e| e.to_string())?;
    let approve_us = micros(t);
    Ok(vec![ready_us, authorize_us, approve_us])
}

async fn server(args: ServerBench) -> Result<(), Box<dyn std::error::Error>> {
    let target = Arc::new(ServerTarget::new(
        &args.url,
        args.sandbox_url.as_deref(),
        args.api_key.clone(),
    )?);
    let m = drive(
        args.concurrency,
        args.warmup,
        args.duration,
        2,
        move |w, n| {
            let target = Arc::clone(&target);
            async move { server_flow(&target, w, n, &|_| {}).await }
        },
    )
    .await;
    println!(
        "kpay bench server: {} concurrent buyers, {:.1} s measured",
        args.concurrency, m.elapsed
    );
    println!(
        "  completed payments      : {} ({:.0}/s)",
        m.completed,
        m.completed as f64 / m.elapsed
    );
    println!(
        "  create (API + ready)    : {}",
        latency_line(&m.latencies[0])
    );
    println!(
        "  approve callback        : {}",
        latency_line(&m.latencies[1])
    );
    m.result()
}

pub(crate) struct ServerTarget {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) sandbox: String,
    pub(crate) key: String,
}

impl ServerTarget {
    /// The server at `url` (loopback only), its sandbox (default: the built-in one), its key.
    pub(crate) fn new(
        url: &str,
        sandbox_url: Option<&str>,
        api_key_given: Option<String>,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let base = url.trim_end_matches('/').to_owned();
        let sandbox = sandbox_url
            .map_or_else(|| format!("{base}/sandbox"), str::to_owned)
            .trim_end_matches('/')
            .to_owned();
        for u in [&base, &sandbox] {
            if !loopback(u) {
                return Err(BenchError::NotLoopback(u.clone()).into());
            }
        }
        let key = api_key(api_key_given)?;
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(2048)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            base,
            sandbox,
            key,
        })
    }
}

/// One payment: the latency of the create and of the approval callback (µs).
pub(crate) async fn server_flow(
    s: &ServerTarget,
    worker: u64,
    n: u64,
    paid: &(dyn Fn(&str) + Sync),
) -> Result<Vec<u32>, String> {
    let body = serde_json::json!({
        "partner_user_id": format!("bench-{worker}"),
        "partner_order_id": format!("bench-{worker}-{n}-{}", std::process::id()),
        "item_name": "벤치마크 상품",
        "quantity": 1,
        "total_amount": 11000,
    });
    let t = Instant::now();
    let resp = s
        .http
        .post(format!("{}/api/v1/payments", s.base))
        .bearer_auth(&s.key)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let created: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
    let create_us = micros(t);
    if status.as_u16() != 201 {
        return Err(format!("create answered {status}: {created}"));
    }
    let tid = created["tid"].as_str().ok_or("no tid")?;
    let id = created["id"].as_str().ok_or("no id")?;
    let resp = s
        .http
        .post(format!("{}/test/v1/payments/{tid}/authorize", s.sandbox))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let auth: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
    let callback = auth["redirect_url"]
        .as_str()
        .ok_or_else(|| format!("authorize: {auth}"))?;
    let t = Instant::now();
    let resp = s
        .http
        .get(callback)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let _ = resp.bytes().await;
    let approve_us = micros(t);
    if !(status.is_success() || status.is_redirection()) {
        return Err(format!("callback answered {status}"));
    }
    paid(id);
    Ok(vec![create_us, approve_us])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_requests_are_not_clamped() {
        let mut h = histogram();
        for us in [300, 900, 1_500, 30_000, 4_000_000] {
            h.saturating_record(us);
        }
        assert!(
            (percentile(&h, 0.5) - 1.5).abs() < 0.01,
            "{}",
            percentile(&h, 0.5)
        );
        assert!(percentile(&h, 1.0) >= 3_990.0, "{}", percentile(&h, 1.0));
        assert_eq!(h.len(), 5);
    }
}
