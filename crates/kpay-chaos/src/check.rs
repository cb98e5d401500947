//! The verdict: the ledger against KakaoPay's own records (the sandbox's), once the faults stopped
//! and the ledger converged.
//!
//! | violation | what it means |
//! |---|---|
//! | `lost` | KakaoPay took the money (a PAYMENT) and the ledger does not show it paid |
//! | `phantom` | the ledger shows a payment paid that KakaoPay never took |
//! | `doubled` | more than one PAYMENT for one TID |
//! | `refund_mismatch` | the ledger's refunded total differs from KakaoPay's |
//! | `refund_key_applied_twice` | KakaoPay made more cancels for a payment than there are refunds the keys answered with |
//! | `refund_exceeds_request` | KakaoPay refunded more than the merchant's keys asked for and were told succeeded |
//! | `idempotency` | one key answered with two different payments or refunds |
//! | `second_payment` | a merchant order has two payments, or two paid TIDs at KakaoPay |
//! | `stuck` | after convergence still `approving`, a refund still pending, or a status KakaoPay contradicts |
//! | `call_storm` | one payment caused more than [`CALL_BOUND`] KakaoPay calls |
//! | `panic` | a server log shows a panic |

use crate::buyer::Outcome;
use crate::cluster::Cluster;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// KakaoPay calls one payment may cause at most (approve, cancel and lookups together).
pub const CALL_BOUND: u64 = 60;

/// What the run did, for the report.
#[derive(Clone, Debug)]
pub struct RunFacts {
    /// The seed.
    pub seed: u64,
    /// Payments asked for.
    pub payments: usize,
    /// SIGKILLs.
    pub kills: usize,
    /// PostgreSQL restarts.
    pub pg_restarts: usize,
    /// Seconds of traffic.
    pub run_secs: f64,
}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// What the run did.
    pub facts: RunFacts,
    /// Payments the server created.
    pub created: usize,
    /// Violations by kind.
    pub violations: BTreeMap<&'static str, usize>,
    /// The first violations, described.
    pub details: Vec<String>,
    /// Seconds from the end of the faults until the ledger agreed with KakaoPay (`None`: never
    /// within the timeout).
    pub converged_secs: Option<f64>,
    /// KakaoPay calls per payment: average and maximum.
    pub calls_avg: f64,
    /// The most calls one payment caused.
    pub calls_max: u64,
}

impl Verdict {
    /// No violation and converged.
    pub fn pass(&self) -> bool {
        self.violations.values().all(|n| *n == 0) && self.converged_secs.is_some()
    }

    fn count(&self, kind: &str) -> usize {
        self.violations.get(kind).copied().unwrap_or(0)
    }

    /// The one-line verdict.
    pub fn line(&self) -> String {
        let main = ["lost", "phantom", "doubled", "refund_mismatch", "stuck"];
        let other: usize = self
            .violations
            .iter()
            .filter(|(k, _)| !main.contains(k))
            .map(|(_, n)| n)
            .sum();
        format!(
            "chaos: {} payments ({} created), {} kills, {} pg restarts, {} lost, {} phantom, {} doubled, {} refund mismatches, {} stuck, {other} other violations, {}, KakaoPay calls per payment avg {:.2} max {} — {}",
            self.facts.payments,
            self.created,
            self.facts.kills,
            self.facts.pg_restarts,
            self.count("lost"),
            self.count("phantom"),
            self.count("doubled"),
            self.count("refund_mismatch"),
            self.count("stuck"),
            self.converged_secs.map_or_else(
                || "did not converge".to_owned(),
                |s| format!("converged in {s:.2} s")
            ),
            self.calls_avg,
            self.calls_max,
            if self.pass() { "PASS" } else { "FAIL" }
        )
    }

    /// The full report: the verdict line, the violations and how to reproduce the run.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for d in &self.details {
            let _ = writeln!(out, "  violation: {d}");
        }
        for (k, n) in self.violations.iter().filter(|(_, n)| **n > 0) {
            let _ = writeln!(out, "  {k}: {n}");
        }
        let _ = writeln!(out, "{}", self.line());
        if !self.pass() {
            let _ = writeln!(
                out,
                "reproduce with: kpay chaos --seed {} --payments {} (see RELIABILITY.md)",
                self.facts.seed, self.facts.payments
            );
        }
        out
    }
}

/// The server's and KakaoPay's view at one moment.
struct Snapshot {
    /// Server payments by id (list items: no refunds).
    payments: HashMap<String, Value>,
    /// KakaoPay's payments by TID.
    kakaopay: HashMap<String, Value>,
}

async fn snapshot(cluster: &Cluster) -> Result<Snapshot, String> {
    let mut payments = HashMap::new();
    let mut cursor = String::new();
    loop {
        let base = cluster.base().ok_or("no instance is up")?;
        let url = format!("{base}/api/v1/payments?limit=100&cursor={cursor}");
        let (status, page) = cluster.http.get(&url).await?;
        if status != 200 {
            return Err(format!("listing payments: {status} {page}"));
        }
        for p in page["data"].as_array().into_iter().flatten() {
            if let Some(id) = p["id"].as_str() {
                payments.insert(id.to_owned(), p.clone());
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    let (_, ledger) = cluster
        .http
        .get(&format!("{}/test/v1/payments", cluster.sandbox))
        .await?;
    let kakaopay = ledger["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| Some((r["tid"].as_str()?.to_owned(), r.clone())))
        .collect();
    Ok(Snapshot { payments, kakaopay })
}

fn actions(record: &Value, kind: &str) -> usize {
    record["actions"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|x| x["kind"] == kind).count())
}

/// Collects violations.
#[derive(Default)]
struct Findings {
    counts: BTreeMap<&'static str, usize>,
    details: Vec<String>,
}

impl Findings {
    fn add(&mut self, kind: &'static str, detail: String) {
        *self.counts.entry(kind).or_default() += 1;
        if self.details.len() < 30 {
            self.details.push(format!("{kind}: {detail}"));
        }
    }
    fn none(&self) -> bool {
        self.counts.values().all(|n| *n == 0)
    }
}

/// The ledger against KakaoPay, payment by payment.
fn judge_states(s: &Snapshot, f: &mut Findings) {
    let by_tid: HashMap<&str, &Value> = s
        .payments
        .values()
        .filter_map(|p| Some((p["tid"].as_str()?, p)))
        .collect();
    for (tid, record) in &s.kakaopay {
        let paid = actions(record, "PAYMENT");
        if paid > 1 {
            f.add("doubled", format!("tid {tid}: {paid} PAYMENTs"));
        }
        let Some(p) = by_tid.get(tid.as_str()) else {
            if paid > 0 {
                f.add(
                    "lost",
                    format!("tid {tid} paid at KakaoPay, unknown to the ledger"),
                );
            }
            continue;
        };
        let status = p["status"].as_str().unwrap_or("");
        let ledger_paid = matches!(status, "approved" | "partially_canceled" | "canceled");
        if paid > 0 && !ledger_paid {
            f.add(
                "lost",
                format!(
                    "{} (tid {tid}) is {status} but KakaoPay took the money",
                    p["id"]
                ),
            );
        }
        if paid == 0 && ledger_paid {
            f.add(
                "phantom",
                format!(
                    "{} (tid {tid}) is {status} but KakaoPay never took money",
                    p["id"]
                ),
            );
        }
        if ledger_paid && p["canceled_amount"] != record["canceled"]["total"] {
            f.add(
                "refund_mismatch",
                format!(
                    "{} (tid {tid}): ledger refunded {} won, KakaoPay {}",
                    p["id"], p["canceled_amount"], record["canceled"]["total"]
                ),
            );
        }
        let remote = record["status"].as_str().unwrap_or("");
        let pending = matches!(remote, "READY" | "OPEN_PAYMENT" | "AUTH_PASSWORD");
        let consistent = match status {
            "ready" | "expired" => pending,
            "quit" => remote == "QUIT_PAYMENT",
            "failed" => remote.starts_with("FAIL") || pending,
            "approving" => false,
            _ => true,
        };
        if !consistent || p["refund_in_progress"] == true {
            f.add(
                "stuck",
                format!(
                    "{} (tid {tid}) is {status} (refund in progress: {}), KakaoPay says {remote}",
                    p["id"], p["refund_in_progress"]
                ),
            );
        }
    }
    for p in s.payments.values() {
        let tid = p["tid"].as_str().unwrap_or("");
        if !s.kakaopay.contains_key(tid) {
            f.add(
                "phantom",
                format!("{} has tid {tid}, unknown to KakaoPay", p["id"]),
            );
        }
    }
}

/// Waits until the ledger agrees with KakaoPay (or `timeout`), replays every key, and judges.
pub async fn converge_and_check(
    cluster: &Cluster,
    mut outcomes: Vec<Outcome>,
    timeout: Duration,
    facts: RunFacts,
) -> Verdict {
    let start = Instant::now();
    let mut converged_secs = None;
    loop {
        if let Ok(s) = snapshot(cluster).await {
            let mut f = Findings::default();
            judge_states(&s, &mut f);
            if f.none() {
                converged_secs = Some(start.elapsed().as_secs_f64());
                break;
            }
            if start.elapsed() > timeout {
                break;
            }
        } else if start.elapsed() > timeout {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    replay_keys(cluster, &mut outcomes).await;
    let mut f = Findings::default();
    let snap = match snapshot(cluster).await {
        Ok(s) => s,
        Err(e) => {
            f.add("stuck", format!("no final snapshot: {e}"));
            return verdict(facts, 0, f, converged_secs, (0.0, 0));
        }
    };
    judge_states(&snap, &mut f);
    judge_keys(&snap, &outcomes, &mut f);
    let calls = judge_calls(&snap, &mut f);
    for log in cluster.logs().await {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let panics = text.matches("panicked at").count();
        if panics > 0 {
            f.add("panic", format!("{panics} in {}", log.display()));
        }
    }
    verdict(facts, snap.payments.len(), f, converged_secs, calls)
}

fn verdict(
    facts: RunFacts,
    created: usize,
    f: Findings,
    converged_secs: Option<f64>,
    (calls_avg, calls_max): (f64, u64),
) -> Verdict {
    Verdict {
        facts,
        created,
        violations: f.counts,
        details: f.details,
        converged_secs,
        calls_avg,
        calls_max,
    }
}

/// Every key once more, now that everything settled: a create key must name its payment again, a
/// refund key its refund, with its final outcome.
async fn replay_keys(cluster: &Cluster, outcomes: &mut [Outcome]) {
    for o in outcomes.iter_mut() {
        if o.payment_id().is_some() {
            if let Some(answer) =
                post_until_final(cluster, "/api/v1/payments", &o.create_key, &o.create_body).await
            {
                o.create_answers.push(answer);
            }
            let Some(id) = o.payment_id().map(str::to_owned) else {
                continue;
            };
            let path = format!("/api/v1/payments/{id}/cancel");
            for ask in &mut o.refunds {
                if let Some(answer) = post_until_final(cluster, &path, &ask.key, &ask.body).await {
                    ask.answers.push(answer);
                }
            }
        }
    }
}

async fn post_until_final(
    cluster: &Cluster,
    path: &str,
    key: &str,
    body: &Value,
) -> Option<(u16, Value)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(base) = cluster.base()
            && let Ok(answer) = cluster
                .http
                .send(
                    reqwest::Method::POST,
                    &format!("{base}{path}"),
                    true,
                    Some(key),
                    Some(body),
                )
                .await
        {
            let pending = answer.0 == 202 || answer.0 >= 500 || answer.0 == 409;
            last = Some(answer);
            if !pending {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    last
}

fn judge_keys(s: &Snapshot, outcomes: &[Outcome], f: &mut Findings) {
    let mut per_order: HashMap<&str, usize> = HashMap::new();
    for p in s.payments.values() {
        if let Some(o) = p["partner_order_id"].as_str() {
            *per_order.entry(o).or_default() += 1;
        }
    }
    let mut paid_per_order: HashMap<&str, usize> = HashMap::new();
    for r in s.kakaopay.values() {
        if actions(r, "PAYMENT") > 0
            && let Some(o) = r["partner_order_id"].as_str()
        {
            *paid_per_order.entry(o).or_default() += 1;
        }
    }
    for o in outcomes {
        if per_order.get(o.order.as_str()).copied().unwrap_or(0) > 1
            || paid_per_order.get(o.order.as_str()).copied().unwrap_or(0) > 1
        {
            f.add(
                "second_payment",
                format!(
                    "order {}: {:?} payments, {:?} paid TIDs",
                    o.order,
                    per_order.get(o.order.as_str()),
                    paid_per_order.get(o.order.as_str())
                ),
            );
        }
        let ids: Vec<&str> = o
            .create_answers
            .iter()
            .filter(|(s, _)| *s == 201)
            .filter_map(|(_, b)| b["id"].as_str())
            .collect();
        if ids.windows(2).any(|w| w[0] != w[1]) {
            f.add(
                "idempotency",
                format!("create key {} answered payments {ids:?}", o.create_key),
            );
        }
        let Some(id) = o.payment_id() else { continue };
        let Some(p) = s.payments.get(id) else {
            f.add(
                "idempotency",
                format!(
                    "create key {} answered {id}, which the ledger lacks",
                    o.create_key
                ),
            );
            continue;
        };
        let record = p["tid"].as_str().and_then(|t| s.kakaopay.get(t));
        let mut succeeded_total = 0;
        let mut succeeded_refunds = 0;
        for ask in &o.refunds {
            let refund_ids: Vec<&str> = ask
                .answers
                .iter()
                .filter(|(s, _)| *s < 300)
                .filter_map(|(_, b)| b["refund"]["id"].as_str())
                .collect();
            if refund_ids.windows(2).any(|w| w[0] != w[1]) {
                f.add(
                    "idempotency",
                    format!("refund key {} answered refunds {refund_ids:?}", ask.key),
                );
            }
            let Some((status, last)) = ask.answers.last() else {
                continue;
            };
            if *status == 200 && last["refund"]["status"] == "succeeded" {
                let amount = last["refund"]["amount"].as_i64().unwrap_or(0);
                if let Some(asked) = ask.body["amount"].as_i64()
                    && asked != amount
                {
                    f.add(
                        "refund_exceeds_request",
                        format!("key {} asked {asked} won, refunded {amount}", ask.key),
                    );
                }
                succeeded_total += amount;
                succeeded_refunds += 1;
            } else if *status == 202 {
                f.add(
                    "stuck",
                    format!("refund key {} still pending after convergence", ask.key),
                );
            }
        }
        if let Some(r) = record {
            let cancels = actions(r, "CANCEL");
            if cancels > succeeded_refunds {
                f.add("refund_key_applied_twice", format!("{id}: {cancels} cancels at KakaoPay for {succeeded_refunds} refunds the keys answered with"));
            }
            let refunded = r["canceled"]["total"].as_i64().unwrap_or(0);
            if refunded > succeeded_total {
                f.add("refund_exceeds_request", format!("{id}: KakaoPay refunded {refunded} won, the keys were told {succeeded_total}"));
            }
        }
    }
}

/// KakaoPay calls per payment (approve, cancel, lookups): average and maximum; a storm is a
/// violation.
fn judge_calls(s: &Snapshot, f: &mut Findings) -> (f64, u64) {
    let per_tid: Vec<(&str, u64)> = s
        .kakaopay
        .iter()
        .map(|(tid, r)| {
            let c = &r["calls"];
            let n = ["approve", "cancel", "order"]
                .iter()
                .map(|k| c[k].as_u64().unwrap_or(0))
                .sum::<u64>()
                // ready is a call too
                + 1;
            (tid.as_str(), n)
        })
        .collect();
    for (tid, n) in &per_tid {
        if *n > CALL_BOUND {
            f.add("call_storm", format!("tid {tid}: {n} KakaoPay calls"));
        }
    }
    let total: u64 = per_tid.iter().map(|(_, n)| n).sum();
    let max = per_tid.iter().map(|(_, n)| *n).max().unwrap_or(0);
    // Per payment of the ledger: TIDs it never stored (a ready whose answer was lost) count too.
    let avg = if s.payments.is_empty() {
        0.0
    } else {
        total as f64 / s.payments.len() as f64
    };
    (avg, max)
}
