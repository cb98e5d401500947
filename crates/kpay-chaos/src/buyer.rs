//! One payment's story, drawn from the seed: the merchant creates it (retrying with the same
//! Idempotency-Key on every error), the buyer pays, double-clicks, reloads, quits, fails or walks
//! away, and the merchant may refund part, all, or part and then the rest, again retrying with the
//! same key. Requests go to any live instance, as through a load balancer.

use crate::ChaosArgs;
use crate::cluster::Cluster;
use crate::http::Answer;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// What the buyer does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Authenticates and comes back once.
    Pay,
    /// Comes back twice at once.
    DoubleClick,
    /// Comes back, then reloads the page.
    Reload,
    /// Quits on KakaoPay's page.
    Quit,
    /// Fails authentication.
    Fail,
    /// Authenticates and never comes back.
    AuthorizeAndLeave,
    /// Never opens KakaoPay's page.
    Abandon,
}

impl Scenario {
    fn draw(rng: &mut StdRng) -> Scenario {
        match rng.random_range(0..100) {
            0..60 => Scenario::Pay,
            60..68 => Scenario::DoubleClick,
            68..75 => Scenario::Reload,
            75..85 => Scenario::Quit,
            85..91 => Scenario::Fail,
            91..96 => Scenario::AuthorizeAndLeave,
            _ => Scenario::Abandon,
        }
    }

    fn pays(self) -> bool {
        matches!(
            self,
            Scenario::Pay | Scenario::DoubleClick | Scenario::Reload
        )
    }
}

/// One refund the merchant asked for, and every answer its key got.
#[derive(Clone, Debug)]
pub struct RefundAsk {
    /// The Idempotency-Key.
    pub key: String,
    /// The request body (`{}`: the rest).
    pub body: Value,
    /// Answers, oldest first (errors without an answer are not listed).
    pub answers: Vec<Answer>,
}

/// What happened to one payment, as the merchant and the buyer saw it.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The payment's number in the run.
    pub index: usize,
    /// The merchant's order id.
    pub order: String,
    /// The create request's Idempotency-Key and body.
    pub create_key: String,
    /// The create body.
    pub create_body: Value,
    /// Every answer the create key got.
    pub create_answers: Vec<Answer>,
    /// What the buyer did.
    pub scenario: Scenario,
    /// Refunds asked.
    pub refunds: Vec<RefundAsk>,
    /// How long the whole story took.
    pub elapsed: Duration,
}

impl Outcome {
    /// The payment the create key made, from its first 201.
    pub fn payment_id(&self) -> Option<&str> {
        self.create_answers
            .iter()
            .find(|(s, _)| *s == 201)
            .and_then(|(_, b)| b["id"].as_str())
    }
}

/// Runs every payment, `args.buyers` at a time.
pub async fn run_all(cluster: Arc<Cluster>, seed: u64, args: &ChaosArgs) -> Vec<Outcome> {
    let gate = Arc::new(Semaphore::new(args.buyers.max(1)));
    let mut tasks = Vec::with_capacity(args.payments);
    let progress_every = (args.payments / 10).max(1);
    for index in 0..args.payments {
        let Ok(permit) = Arc::clone(&gate).acquire_owned().await else {
            break;
        };
        if index > 0 && index % progress_every == 0 {
            println!("kpay chaos: {index} payments started");
        }
        let cluster = Arc::clone(&cluster);
        let refund_rate = args.refund_rate;
        tasks.push(tokio::spawn(async move {
            let outcome = one(&cluster, seed, index, refund_rate).await;
            drop(permit);
            outcome
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Ok(o) = t.await {
            out.push(o);
        }
    }
    out
}

/// Whether the merchant, seeing this answer to a keyed POST, tries again with the same key.
fn retry_worthy((status, body): &Answer) -> bool {
    let code = body["error"]["code"].as_str().unwrap_or("");
    *status >= 500
        || (*status == 409 && matches!(code, "idempotency_key_in_use" | "refund_in_progress"))
}

/// POSTs with a key to any live instance until a final answer (or `patience` runs out).
async fn keyed_post(
    cluster: &Cluster,
    path: &str,
    key: &str,
    body: &Value,
    patience: Duration,
    answers: &mut Vec<Answer>,
) {
    let deadline = Instant::now() + patience;
    let mut wait = Duration::from_millis(100);
    while Instant::now() < deadline {
        if let Some(base) = cluster.base() {
            let url = format!("{base}{path}");
            if let Ok(answer) = cluster
                .http
                .send(reqwest::Method::POST, &url, true, Some(key), Some(body))
                .await
            {
                let again = retry_worthy(&answer);
                answers.push(answer);
                if !again {
                    return;
                }
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

/// The buyer's browser opens `url` (reloading on errors) through the balancer.
async fn browse(cluster: &Cluster, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(u) = cluster.through_balancer(url)
            && let Ok(status) = cluster.http.browse(&u).await
            && status < 500
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A sandbox helper for the buyer's part on KakaoPay's pages; the redirect URL it answers.
async fn at_kakaopay(cluster: &Cluster, tid: &str, step: &str) -> Option<String> {
    let url = format!("{}/test/v1/payments/{tid}/{step}", cluster.sandbox);
    match cluster.http.post_plain(&url, &json!({})).await {
        Ok((200, body)) => body["redirect_url"].as_str().map(str::to_owned),
        _ => None,
    }
}

async fn one(cluster: &Cluster, seed: u64, index: usize, refund_rate: f64) -> Outcome {
    let mut rng = StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let total = rng.random_range(1..=300i64) * 100;
    let order = format!("ord-{seed}-{index}");
    let create_body = json!({
        "partner_user_id": format!("buyer-{index}"),
        "item_name": "카오스 테스트 상품",
        "quantity": 1,
        "total_amount": total,
        "partner_order_id": order,
    });
    let create_key = format!("c-{seed}-{index}");
    let scenario = Scenario::draw(&mut rng);
    let mut outcome = Outcome {
        index,
        order,
        create_key: create_key.clone(),
        create_body: create_body.clone(),
        create_answers: Vec::new(),
        scenario,
        refunds: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let started = Instant::now();
    story(cluster, &mut rng, seed, index, refund_rate, &mut outcome).await;
    outcome.elapsed = started.elapsed();
    outcome
}

async fn story(
    cluster: &Cluster,
    rng: &mut StdRng,
    seed: u64,
    index: usize,
    refund_rate: f64,
    outcome: &mut Outcome,
) {
    let total = outcome.create_body["total_amount"].as_i64().unwrap_or(100);
    let scenario = outcome.scenario;
    let (create_key, create_body) = (outcome.create_key.clone(), outcome.create_body.clone());
    keyed_post(
        cluster,
        "/api/v1/payments",
        &create_key,
        &create_body,
        Duration::from_secs(60),
        &mut outcome.create_answers,
    )
    .await;
    let Some((_, created)) = outcome
        .create_answers
        .iter()
        .find(|(s, _)| *s == 201)
        .cloned()
    else {
        return;
    };
    let (Some(id), Some(tid)) = (created["id"].as_str(), created["tid"].as_str()) else {
        return;
    };
    match scenario {
        Scenario::Abandon => {}
        Scenario::Pay | Scenario::DoubleClick | Scenario::Reload | Scenario::AuthorizeAndLeave => {
            let Some(callback) = at_kakaopay(cluster, tid, "authorize").await else {
                return;
            };
            match scenario {
                Scenario::Pay => browse(cluster, &callback).await,
                Scenario::DoubleClick => {
                    tokio::join!(browse(cluster, &callback), browse(cluster, &callback));
                }
                Scenario::Reload => {
                    browse(cluster, &callback).await;
                    browse(cluster, &callback).await;
                }
                _ => {}
            }
        }
        Scenario::Quit | Scenario::Fail => {
            let step = if scenario == Scenario::Quit {
                "quit"
            } else {
                "fail"
            };
            if let Some(back) = at_kakaopay(cluster, tid, step).await {
                browse(cluster, &back).await;
            }
        }
    }
    if scenario.pays() && rng.random_bool(refund_rate.clamp(0.0, 1.0)) {
        refund(cluster, rng, seed, index, id, total, outcome).await;
    }
}

/// The merchant refunds part, all, or part and then the rest, once the payment is approved.
async fn refund(
    cluster: &Cluster,
    rng: &mut StdRng,
    seed: u64,
    index: usize,
    id: &str,
    total: i64,
    outcome: &mut Outcome,
) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Some(base) = cluster.base()
            && let Ok((200, p)) = cluster
                .http
                .get(&format!("{base}/api/v1/payments/{id}"))
                .await
        {
            match p["status"].as_str() {
                Some("approved") => break,
                Some("ready" | "approving") => {}
                _ => return,
            }
        }
        if Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let plan: Vec<Value> = match rng.random_range(0..10) {
        0..4 => vec![json!({"amount": rng.random_range(1..total.max(2)), "reason": "부분 환불"})],
        4..7 => vec![json!({"reason": "전액 환불"})],
        // A third, then the rest.
        _ => vec![json!({"amount": (total / 3).max(1)}), json!({})],
    };
    let path = format!("/api/v1/payments/{id}/cancel");
    for (n, body) in plan.into_iter().enumerate() {
        let mut ask = RefundAsk {
            key: format!("r-{seed}-{index}-{n}"),
            body,
            answers: Vec::new(),
        };
        keyed_post(
            cluster,
            &path,
            &ask.key,
            &ask.body,
            Duration::from_secs(60),
            &mut ask.answers,
        )
        .await;
        outcome.refunds.push(ask);
    }
}

/// How long the stories took, by scenario: `name n p50/p90/max s`.
pub fn timing_summary(outcomes: &[Outcome]) -> String {
    let mut lines = Vec::new();
    for scenario in [
        Scenario::Pay,
        Scenario::DoubleClick,
        Scenario::Reload,
        Scenario::Quit,
        Scenario::Fail,
        Scenario::AuthorizeAndLeave,
        Scenario::Abandon,
    ] {
        let mut t: Vec<f64> = outcomes
            .iter()
            .filter(|o| o.scenario == scenario)
            .map(|o| o.elapsed.as_secs_f64())
            .collect();
        if t.is_empty() {
            continue;
        }
        t.sort_by(f64::total_cmp);
        let at = |q: f64| t[((t.len() - 1) as f64 * q).round() as usize];
        lines.push(format!(
            "{scenario:?} {} {:.2}/{:.2}/{:.2} s",
            t.len(),
            at(0.5),
            at(0.9),
            at(1.0)
        ));
    }
    let mut slow: Vec<&Outcome> = outcomes.iter().collect();
    slow.sort_by_key(|o| std::cmp::Reverse(o.elapsed));
    let slowest: Vec<String> = slow
        .iter()
        .take(3)
        .map(|o| {
            let codes = |answers: &[Answer]| {
                answers
                    .iter()
                    .map(|(s, b)| match b["error"]["code"].as_str() {
                        Some(c) => format!("{s} {c}"),
                        None => s.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let refunds: Vec<String> = o.refunds.iter().map(|r| codes(&r.answers)).collect();
            format!(
                "#{} {:?} {:.1} s (create: {}; refunds: {})",
                o.index,
                o.scenario,
                o.elapsed.as_secs_f64(),
                codes(&o.create_answers),
                refunds.join(" | ")
            )
        })
        .collect();
    format!(
        "story durations (p50/p90/max): {}\nkpay chaos: slowest: {}",
        lines.join(", "),
        slowest.join("; ")
    )
}
