//! `kpay bench webhooks`: payments flowing through a running `kpay serve` while a receiver in
//! this process verifies the signature of every delivery. Two phases of the same length in one
//! run — without any endpoint, then with `--endpoints` endpoints (each approval is delivered to
//! every one of them) — give payments/s with webhooks on vs off; the receiver gives
//! deliveries/s and the delay from the state change (the approval callback's answer) to the
//! delivery's arrival.

use crate::bench::{BenchError, ServerTarget, drive, histogram, latency_line};
use hdrhistogram::Histogram;
use kpay_webhooks::Secret;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Flags of `kpay bench webhooks`.
#[derive(Debug, clap::Args)]
pub struct WebhooksBench {
    /// The server's base URL; must be a loopback address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The sandbox the server uses (default: the built-in one at <url>/sandbox).
    #[arg(long)]
    sandbox_url: Option<String>,
    /// The merchant API key (default: read from ./kpay-data/api-key).
    #[arg(long, env = "KPAY_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Seconds each phase runs (1–300).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    duration: u64,
    /// Concurrent buyers (1–1024).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1024))]
    concurrency: u64,
    /// Endpoints receiving every approval (1–16).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=16))]
    endpoints: u64,
    /// The server's process id, for its CPU per payment and per delivery (Linux `/proc`).
    #[arg(long)]
    pid: Option<u32>,
}

/// What the receiver saw.
#[derive(Default)]
struct Received {
    /// Deliveries whose signature verified, and those that did not.
    verified: AtomicU64,
    refused: AtomicU64,
    /// Payment id → when each of its deliveries arrived.
    arrivals: Mutex<HashMap<String, Vec<Instant>>>,
    /// Endpoint path → secret.
    secrets: Mutex<HashMap<String, Secret>>,
}

async fn receive(
    received: Arc<Received>,
    path: String,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let at = Instant::now();
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let secret = received
        .secrets
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&path)
        .cloned();
    let now = chrono_now();
    let ok = secret.is_some_and(|s| {
        kpay_webhooks::verify(
            &[&s],
            h("webhook-id"),
            h("webhook-timestamp"),
            h("webhook-signature"),
            &body,
            now,
        )
        .is_ok()
    });
    if !ok {
        received.refused.fetch_add(1, Ordering::Relaxed);
        return axum::http::StatusCode::UNAUTHORIZED;
    }
    received.verified.fetch_add(1, Ordering::Relaxed);
    if let Ok(v) = serde_json::from_slice::<Value>(&body)
        && let Some(id) = v["data"]["object"]["id"].as_str()
    {
        received
            .arrivals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id.to_owned())
            .or_default()
            .push(at);
    }
    axum::http::StatusCode::NO_CONTENT
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// One phase: payments/s, the payments' approval times, and the server's CPU (µs) if known.
struct Phase {
    rate: f64,
    completed: u64,
    paid: HashMap<String, Instant>,
    cpu_us: Option<u64>,
    /// The server's CPU (µs) when the phase began.
    cpu_start: Option<u64>,
    window: (Instant, Instant),
}

async fn phase(
    target: &Arc<ServerTarget>,
    args: &WebhooksBench,
) -> Result<Phase, Box<dyn std::error::Error>> {
    let paid: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let cpu0 = args.pid.and_then(|p| crate::bench_renewals::cpu_now(&[p]));
    let start = Instant::now();
    // Order ids are made of the worker, its count and the process: phases use other workers.
    static PHASES: AtomicU64 = AtomicU64::new(0);
    let offset = PHASES.fetch_add(1, Ordering::Relaxed) * 100_000;
    let (t, p) = (Arc::clone(target), Arc::clone(&paid));
    let m = drive(args.concurrency, 0, args.duration, 2, move |w, n| {
        let (t, p) = (Arc::clone(&t), Arc::clone(&p));
        async move {
            let record = |id: &str| {
                p.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id.to_owned(), Instant::now());
            };
            crate::bench::server_flow(&t, w + offset, n, &record).await
        }
    })
    .await;
    let end = Instant::now();
    let cpu1 = args.pid.and_then(|p| crate::bench_renewals::cpu_now(&[p]));
    if m.failures > 0 {
        return Err(BenchError::Failures(m.failures, m.first_error).into());
    }
    let cpu_start = cpu0.and_then(|(_, p)| p.first().copied());
    let cpu_us = match (cpu_start, cpu1.and_then(|(_, p)| p.first().copied())) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let paid = std::mem::take(&mut *paid.lock().unwrap_or_else(PoisonError::into_inner));
    Ok(Phase {
        rate: m.completed as f64 / m.elapsed,
        completed: m.completed,
        paid,
        cpu_us,
        cpu_start,
        window: (start, end),
    })
}

/// Runs the benchmark and prints its figures.
pub async fn run(args: WebhooksBench) -> Result<(), Box<dyn std::error::Error>> {
    let target = Arc::new(ServerTarget::new(
        &args.url,
        args.sandbox_url.as_deref(),
        args.api_key.clone(),
    )?);
    let (http, base, key) = (target.http.clone(), target.base.clone(), target.key.clone());

    // The receiver.
    let received = Arc::new(Received::default());
    let r = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/hooks/{n}",
        axum::routing::post(
            move |axum::extract::Path(n): axum::extract::Path<String>, headers, body| {
                receive(Arc::clone(&r), n, headers, body)
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // Warm-up (connections, caches), then webhooks off.
    let warm = WebhooksBench {
        duration: 2,
        ..clone_args(&args)
    };
    phase(&target, &warm).await?;
    let off = phase(&target, &args).await?;

    let mut endpoints = Vec::new();
    for n in 0..args.endpoints {
        let e: Value = http
            .post(format!("{base}/api/v1/webhook_endpoints"))
            .bearer_auth(&key)
            .json(&json!({"url": format!("{receiver}/hooks/{n}"), "events": ["payment.approved"], "description": "kpay bench webhooks"}))
            .send()
            .await?
            .json()
            .await?;
        let (Some(id), Some(secret)) = (e["id"].as_str(), e["secret"].as_str()) else {
            return Err(format!("could not create an endpoint: {e}").into());
        };
        received
            .secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(n.to_string(), Secret::parse(secret)?);
        endpoints.push(id.to_owned());
    }
    let on = phase(&target, &args).await?;
    let expected = on.paid.len() as u64 * args.endpoints;
    // Drain: every approval of the phase delivered to every endpoint (a minute at most).
    let drain_deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: u64 = {
            let a = received
                .arrivals
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            on.paid
                .keys()
                .map(|id| a.get(id).map_or(0, |v| v.len() as u64))
                .sum()
        };
        if got >= expected {
            break;
        }
        if Instant::now() > drain_deadline {
            return Err(format!(
                "only {got} of {expected} deliveries arrived within a minute after the phase"
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu_after_drain = args.pid.and_then(|p| crate::bench_renewals::cpu_now(&[p]));
    for id in &endpoints {
        let _ = http
            .delete(format!("{base}/api/v1/webhook_endpoints/{id}"))
            .bearer_auth(&key)
            .send()
            .await;
    }
    server.abort();

    let arrivals = received
        .arrivals
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let mut delay: Histogram<u64> = histogram();
    let mut in_window = 0u64;
    let mut last = on.window.0;
    for (id, at) in &on.paid {
        for a in arrivals.get(id).into_iter().flatten() {
            delay.saturating_record(
                u64::try_from(a.saturating_duration_since(*at).as_micros()).unwrap_or(u64::MAX),
            );
            if *a <= on.window.1 {
                in_window += 1;
            }
            last = last.max(*a);
        }
    }
    let phase_s = on.window.1.duration_since(on.window.0).as_secs_f64();
    let total_s = last.duration_since(on.window.0).as_secs_f64();
    println!(
        "kpay bench webhooks: {} concurrent buyers, {} endpoints, {} s per phase",
        args.concurrency, args.endpoints, args.duration
    );
    println!(
        "  payments/s, webhooks off : {:.0} ({} payments)",
        off.rate, off.completed
    );
    println!(
        "  payments/s, webhooks on  : {:.0} ({} payments) = {:.2} of off",
        on.rate,
        on.completed,
        on.rate / off.rate
    );
    println!(
        "  deliveries               : {} verified, {} refused; {expected} expected",
        received.verified.load(Ordering::Relaxed),
        received.refused.load(Ordering::Relaxed)
    );
    println!(
        "  deliveries/s             : {:.0} during the phase, {:.0} until the last arrived ({:.1} s after the start)",
        in_window as f64 / phase_s,
        expected as f64 / total_s.max(f64::EPSILON),
        total_s
    );
    println!("  state change → delivery  : {}", latency_line(&delay));
    if let (Some(off_cpu), Some(on_cpu)) = (off.cpu_us, on.cpu_us) {
        let per = |us: u64, n: u64| us as f64 / n.max(1) as f64;
        println!(
            "  server CPU / payment     : {:.0} µs off, {:.0} µs on (phase)",
            per(off_cpu, off.completed),
            per(on_cpu, on.completed)
        );
        // Until the last delivery, beyond what the same payments cost without webhooks.
        if let (Some(start), Some((_, end))) = (on.cpu_start, cpu_after_drain) {
            let extra = end.first().copied().unwrap_or(start).saturating_sub(start) as f64
                - per(off_cpu, off.completed) * on.completed as f64;
            println!(
                "  server CPU / delivery    : {:.0} µs (phase and drain, beyond the payments' own)",
                extra.max(0.0) / expected.max(1) as f64
            );
        }
    }
    if received.refused.load(Ordering::Relaxed) > 0 {
        return Err("some deliveries did not verify".into());
    }
    Ok(())
}

fn clone_args(a: &WebhooksBench) -> WebhooksBench {
    WebhooksBench {
        url: a.url.clone(),
        sandbox_url: a.sandbox_url.clone(),
        api_key: a.api_key.clone(),
        duration: a.duration,
        concurrency: a.concurrency,
        endpoints: a.endpoints,
        pid: a.pid,
    }
}
