//! `kpay bench …`: bounded load generators aimed at loopback servers only.

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

fn loopback(url: &str) -> bool {
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
    }
}

struct Shared {
    client: Client,
    http: reqwest::Client,
    base: String,
    measuring: AtomicBool,
    stop: AtomicBool,
    flows: AtomicU64,
    failures: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
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
    let shared = Arc::new(Shared {
        client,
        http,
        base,
        measuring: AtomicBool::new(args.warmup == 0),
        stop: AtomicBool::new(false),
        flows: AtomicU64::new(0),
        failures: AtomicU64::new(0),
        first_error: std::sync::Mutex::new(None),
    });
    let workers: Vec<_> = (0..args.concurrency)
        .map(|w| {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move { worker(shared, w).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    shared.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    shared.stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies: Vec<u32> = Vec::new();
    for w in workers {
        if let Ok(mut l) = w.await {
            latencies.append(&mut l);
        }
    }
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        f64::from(latencies[i]) / 1000.0
    };
    let flows = shared.flows.load(Ordering::Relaxed);
    let failures = shared.failures.load(Ordering::Relaxed);
    println!(
        "kpay bench sandbox: {} API, {} concurrent flows, {:.1} s measured",
        args.api, args.concurrency, elapsed
    );
    println!(
        "  payment flows completed : {flows} ({:.0}/s)",
        flows as f64 / elapsed
    );
    println!(
        "  HTTP requests           : {} ({:.0}/s)",
        latencies.len(),
        latencies.len() as f64 / elapsed
    );
    println!(
        "  request latency ms      : p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0)
    );
    println!("  failed flows            : {failures}");
    if failures > 0 {
        let first = shared
            .first_error
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .unwrap_or_default();
        return Err(BenchError::Failures(failures, first).into());
    }
    Ok(())
}

/// One flow after another until told to stop; returns request latencies (µs) measured.
async fn worker(shared: Arc<Shared>, worker: u64) -> Vec<u32> {
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut n: u64 = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        n += 1;
        let measuring = shared.measuring.load(Ordering::Relaxed);
        let mut times = [0u32; 3];
        match flow(&shared, worker, n, &mut times).await {
            Ok(()) if measuring => {
                latencies.extend_from_slice(&times);
                shared.flows.fetch_add(1, Ordering::Relaxed);
            }
            Ok(()) => {}
            Err(e) => {
                shared.failures.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = shared.first_error.lock() {
                    first.get_or_insert(e);
                }
            }
        }
    }
    latencies
}

fn micros(since: Instant) -> u32 {
    u32::try_from(since.elapsed().as_micros()).unwrap_or(u32::MAX)
}

async fn flow(shared: &Shared, worker: u64, n: u64, times: &mut [u32; 3]) -> Result<(), String> {
    let order = format!("bench-{worker}-{n}");
    let user = format!("user-{worker}");
    let req = ReadyRequest::builder()
        .cid("TC0ONETIME")
        .partner_order_id(order.clone())
        .partner_user_id(user.clone())
        .item_name("벤치마크 상품")
        .quantity(1)
        .total_amount(11_000)
        .approval_url("http://127.0.0.1/approve")
        .cancel_url("http://127.0.0.1/cancel")
        .fail_url("http://127.0.0.1/fail")
        .build()
        .map_err(|e| e.to_string())?;
    let t = Instant::now();
    let ready = shared.client.ready(&req).await.map_err(|e| e.to_string())?;
    times[0] = micros(t);

    let t = Instant::now();
    let resp = shared
        .http
        .post(format!(
            "{}/test/v1/payments/{}/authorize",
            shared.base, ready.tid
        ))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
    times[1] = micros(t);
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
    shared
        .client
        .approve(&approve)
        .await
        .map_err(|e| e.to_string())?;
    times[2] = micros(t);
    Ok(())
}

struct ServerShared {
    http: reqwest::Client,
    base: String,
    sandbox: String,
    key: String,
    measuring: AtomicBool,
    stop: AtomicBool,
    flows: AtomicU64,
    failures: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

async fn server(args: ServerBench) -> Result<(), Box<dyn std::error::Error>> {
    let base = args.url.trim_end_matches('/').to_owned();
    let sandbox = args
        .sandbox_url
        .clone()
        .unwrap_or_else(|| format!("{base}/sandbox"))
        .trim_end_matches('/')
        .to_owned();
    for u in [&base, &sandbox] {
        if !loopback(u) {
            return Err(BenchError::NotLoopback(u.clone()).into());
        }
    }
    let key = match args.api_key.clone() {
        Some(k) => k,
        None => std::fs::read_to_string("kpay-data/api-key")
            .map(|k| k.trim().to_owned())
            .map_err(|e| format!("no --api-key and ./kpay-data/api-key unreadable: {e}"))?,
    };
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(2048)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let shared = Arc::new(ServerShared {
        http,
        base,
        sandbox,
        key,
        measuring: AtomicBool::new(args.warmup == 0),
        stop: AtomicBool::new(false),
        flows: AtomicU64::new(0),
        failures: AtomicU64::new(0),
        first_error: std::sync::Mutex::new(None),
    });
    let workers: Vec<_> = (0..args.concurrency)
        .map(|w| {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                let mut create = Vec::with_capacity(1 << 15);
                let mut approve = Vec::with_capacity(1 << 15);
                let mut n = 0u64;
                while !shared.stop.load(Ordering::Relaxed) {
                    n += 1;
                    let measuring = shared.measuring.load(Ordering::Relaxed);
                    match server_flow(&shared, w, n).await {
                        Ok((c, a)) if measuring => {
                            create.push(c);
                            approve.push(a);
                            shared.flows.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            shared.failures.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut first) = shared.first_error.lock() {
                                first.get_or_insert(e);
                            }
                        }
                    }
                }
                (create, approve)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    shared.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    shared.stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let (mut create, mut approve) = (Vec::new(), Vec::new());
    for w in workers {
        if let Ok((mut c, mut a)) = w.await {
            create.append(&mut c);
            approve.append(&mut a);
        }
    }
    create.sort_unstable();
    approve.sort_unstable();
    let flows = shared.flows.load(Ordering::Relaxed);
    let failures = shared.failures.load(Ordering::Relaxed);
    println!(
        "kpay bench server: {} concurrent buyers, {:.1} s measured",
        args.concurrency, elapsed
    );
    println!(
        "  completed payments      : {flows} ({:.0}/s)",
        flows as f64 / elapsed
    );
    for (name, l) in [
        ("create (API + ready)", &create),
        ("approve callback", &approve),
    ] {
        println!(
            "  {name:<24}: p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
            percentile(l, 0.5),
            percentile(l, 0.9),
            percentile(l, 0.99),
            percentile(l, 1.0)
        );
    }
    println!("  failed payments         : {failures}");
    if failures > 0 {
        let first = shared
            .first_error
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .unwrap_or_default();
        return Err(BenchError::Failures(failures, first).into());
    }
    Ok(())
}

/// One payment: returns the latency of the create and of the approval callback (µs).
async fn server_flow(s: &ServerShared, worker: u64, n: u64) -> Result<(u32, u32), String> {
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
    Ok((create_us, approve_us))
}
