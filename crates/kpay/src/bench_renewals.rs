//! `kpay bench renewals`: N subscriptions registered through the merchant API and the sandbox's
//! helpers, then one test-clock jump past their period: the scheduler charges them all before the
//! jump answers. Reports renewals/s and the time until every one is charged, then checks every
//! subscription has exactly one successful charge for period 1 and KakaoPay made exactly one.

use super::bench::{BenchError, api_key, loopback};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::Instant;

/// Flags of `kpay bench renewals`.
#[derive(Debug, clap::Args)]
pub struct RenewalsBench {
    /// Base URLs of the instances (loopback; several on one PostgreSQL share the work). The
    /// first one's sandbox is used; it must be every instance's KakaoPay.
    #[arg(long, default_value = "http://127.0.0.1:8080", num_args = 1..)]
    url: Vec<String>,
    /// The merchant API key (default: read from ./kpay-data/api-key).
    #[arg(long, env = "KPAY_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Subscriptions due at once (1–100000).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    subscriptions: u64,
    /// Concurrent registrations while setting up (1–256).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=256))]
    concurrency: u64,
    /// Process ids of the servers, for their CPU per renewal (Linux `/proc`).
    #[arg(long = "pid")]
    pids: Vec<u32>,
}

/// CPU time in µs: the whole machine's busy time from `/proc/stat`, and each of `pids` from
/// `/proc/<pid>/stat` (user + system). Both count in USER_HZ (100 a second on Linux).
pub(crate) fn cpu_now(pids: &[u32]) -> Option<(u64, Vec<u64>)> {
    const TICK_US: u64 = 10_000;
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …: busy is all but idle and iowait.
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4)?;
    let mut per = Vec::with_capacity(pids.len());
    for pid in pids {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold spaces: fields count from the closing parenthesis.
        let rest = &s[s.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        per.push(ticks * TICK_US);
    }
    Some(((total - idle) * TICK_US, per))
}

/// Sends `req` and reads its JSON answer; errors as text for the report.
async fn json_of(req: reqwest::RequestBuilder) -> Result<Value, String> {
    req.send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())
}

async fn register(http: &reqwest::Client, base: &str, key: &str, i: u64) -> Result<String, String> {
    let body = json!({"partner_user_id": format!("bench-{i}"), "item_name": "벤치 구독", "amount": 9900, "interval": "month"});
    let s: Value = json_of(
        http.post(format!("{base}/api/v1/subscriptions"))
            .bearer_auth(key)
            .json(&body),
    )
    .await?;
    let id = s["id"].as_str().ok_or(format!("create: {s}"))?.to_owned();
    let pid = s["registration_payment_id"].as_str().unwrap_or_default();
    let p: Value = json_of(
        http.get(format!("{base}/api/v1/payments/{pid}"))
            .bearer_auth(key),
    )
    .await?;
    let tid = p["tid"].as_str().ok_or(format!("payment: {p}"))?;
    let a: Value =
        json_of(http.post(format!("{base}/sandbox/test/v1/payments/{tid}/authorize"))).await?;
    let url = a["redirect_url"]
        .as_str()
        .ok_or(format!("authorize: {a}"))?;
    http.get(url).send().await.map_err(|e| e.to_string())?;
    Ok(id)
}

async fn advance(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    seconds: i64,
) -> Result<Value, String> {
    let r = http
        .post(format!("{base}/api/v1/test/clock/advance"))
        .bearer_auth(key)
        .json(&json!({ "seconds": seconds }))
        .timeout(std::time::Duration::from_secs(3600))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(v)
    } else {
        Err(format!("advance: {status} {v}"))
    }
}

/// Runs the benchmark.
pub async fn run(args: RenewalsBench) -> Result<(), Box<dyn std::error::Error>> {
    let urls: Vec<String> = args
        .url
        .iter()
        .map(|u| u.trim_end_matches('/').to_owned())
        .collect();
    for u in &urls {
        if !loopback(u) {
            return Err(BenchError::NotLoopback(u.clone()).into());
        }
    }
    let key = api_key(args.api_key.clone())?;
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let base = &urls[0];
    // Level every instance with the sandbox first.
    for u in &urls {
        advance(&http, u, &key, 0).await?;
    }
    let setup = Instant::now();
    let ids: Vec<Result<String, String>> = futures_util::stream::iter(0..args.subscriptions)
        .map(|i| {
            let http = &http;
            let key = &key;
            async move { register(http, base, key, i).await }
        })
        .buffer_unordered(args.concurrency as usize)
        .collect()
        .await;
    let ids: Vec<String> = ids.into_iter().collect::<Result<_, _>>()?;
    println!(
        "kpay bench renewals: {} subscriptions registered in {:.1} s; {} instance(s)",
        ids.len(),
        setup.elapsed().as_secs_f64(),
        urls.len()
    );
    // The jump: the first instance moves the clocks; the others level with it at once. Each
    // answers once everything due by its clock has run.
    let cpu_before = cpu_now(&args.pids);
    let t = Instant::now();
    let jumps = futures_util::future::join_all(urls.iter().enumerate().map(|(k, u)| {
        let http = &http;
        let key = &key;
        async move {
            if k > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            advance(http, u, key, if k == 0 { 32 * 86_400 } else { 0 }).await
        }
    }))
    .await;
    for j in jumps {
        j?;
    }
    // Whatever is still due (another instance's leases) is finished by levelling again.
    for u in &urls {
        advance(&http, u, &key, 0).await?;
    }
    let took = t.elapsed().as_secs_f64();
    let cpu_after = cpu_now(&args.pids);
    println!(
        "  all renewals charged in  : {took:.2} s ({:.0} renewals/s)",
        ids.len() as f64 / took
    );
    if let (Some((m0, p0)), Some((m1, p1))) = (cpu_before, cpu_after) {
        let n = ids.len() as f64;
        let servers: u64 = p1.iter().zip(&p0).map(|(a, b)| a.saturating_sub(*b)).sum();
        print!(
            "  CPU per renewal          : {:.0} µs on the machine (everything: servers, sandbox, database)",
            m1.saturating_sub(m0) as f64 / n
        );
        if args.pids.is_empty() {
            println!();
        } else {
            println!("; {:.0} µs in the server process(es)", servers as f64 / n);
        }
    }
    // Exactly once, by the ledger and by KakaoPay.
    let checks: Vec<Result<usize, String>> = futures_util::stream::iter(ids.iter())
        .map(|id| {
            let http = &http;
            let key = &key;
            async move {
                let c: Value = json_of(
                    http.get(format!("{base}/api/v1/subscriptions/{id}/charges"))
                        .bearer_auth(key),
                )
                .await?;
                Ok(c["data"]
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .filter(|c| c["period"] == 1 && c["status"] == "succeeded")
                            .count()
                    })
                    .unwrap_or(0))
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let mut wrong = 0usize;
    for c in checks {
        if c? != 1 {
            wrong += 1;
        }
    }
    let ledger: Value = http
        .get(format!("{base}/sandbox/test/v1/payments"))
        .send()
        .await?
        .json()
        .await?;
    let mut at_kakaopay = std::collections::HashMap::<String, usize>::new();
    for p in ledger["data"].as_array().into_iter().flatten() {
        if let Some(o) = p["partner_order_id"].as_str().filter(|o| o.ends_with("-1")) {
            *at_kakaopay.entry(o.to_owned()).or_default() += 1;
        }
    }
    let twice = at_kakaopay.values().filter(|n| **n > 1).count();
    let missing = ids
        .iter()
        .filter(|id| !at_kakaopay.contains_key(&format!("{id}-1")))
        .count();
    println!(
        "  exactly once             : ledger {} wrong, KakaoPay {} charged twice, {} not charged",
        wrong, twice, missing
    );
    if wrong + twice + missing > 0 {
        return Err(BenchError::Failures(
            (wrong + twice + missing) as u64,
            "a period was not charged exactly once".into(),
        )
        .into());
    }
    Ok(())
}
