//! Crash recovery with the real binary: `kpay serve` killed (SIGKILL, or a crash point that aborts
//! the process) in the middle of money operations, then started again on the same database. What
//! the crash left behind is found and finished; nothing is approved, created or refunded twice.
//! KakaoPay is a `kpay sandbox` process whose own records are the reference.

mod common;
use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const KEY: &str = "kpay_sk_crash_test_0123456789ab";

/// A sandbox and the arguments of a `kpay serve` on SQLite in a scratch directory.
struct Stack {
    dir: std::path::PathBuf,
    sandbox: Running,
    kakaopay: String,
    base: String,
    args: Vec<String>,
}

impl Stack {
    fn new() -> Stack {
        let dir = scratch();
        let sandbox_listen = format!("127.0.0.1:{}", free_port());
        let mut sandbox = Running::start(&["sandbox", "--listen", &sandbox_listen], &dir);
        sandbox.expect("listening on");
        let listen = format!("127.0.0.1:{}", free_port());
        let kakaopay = format!("http://{sandbox_listen}");
        let args = [
            "serve",
            "--listen",
            &listen,
            "--kakaopay-url",
            &kakaopay,
            "--api-key",
            KEY,
            "--unknown-grace",
            "1",
            "--reconcile-interval",
            "1",
            "--kakaopay-timeout",
            "5",
            "--no-shop",
        ]
        .map(str::to_owned)
        .to_vec();
        Stack {
            dir,
            sandbox,
            kakaopay,
            base: format!("http://{listen}"),
            args,
        }
    }

    /// Starts `kpay serve`, with `extra` arguments.
    fn serve(&self, extra: &[&str]) -> Running {
        let mut args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        let mut serve = Running::start(&args, &self.dir);
        serve.expect("listening on");
        serve
    }

    fn api(&self, method: &str, path: &str, key: Option<&str>, body: Option<&str>) -> (u16, Value) {
        let auth = format!("Bearer {KEY}");
        let mut headers = vec![("Authorization", auth.as_str())];
        if let Some(k) = key {
            headers.push(("Idempotency-Key", k));
        }
        request(method, &format!("{}{path}", self.base), &headers, body)
    }

    /// Posts to a sandbox helper.
    fn helper(&self, path: &str, body: Value) -> Value {
        post_json(
            &format!("{}/test/v1{path}", self.kakaopay),
            None,
            &body.to_string(),
        )
    }

    /// KakaoPay's own record of a payment.
    fn kakaopay_record(&self, tid: &str) -> Value {
        request(
            "GET",
            &format!("{}/test/v1/payments/{tid}", self.kakaopay),
            &[],
            None,
        )
        .1
    }

    /// A new payment of `total`: (id, tid).
    fn create(&self, total: i64) -> (String, String) {
        let body = json!({"partner_user_id":"u","item_name":"i","quantity":1,"total_amount":total});
        let (status, p) = self.api("POST", "/api/v1/payments", None, Some(&body.to_string()));
        assert_eq!(status, 201, "{p}");
        (
            p["id"].as_str().unwrap().to_owned(),
            p["tid"].as_str().unwrap().to_owned(),
        )
    }

    /// A payment of `total` that the buyer paid: (id, tid).
    fn paid(&self, total: i64) -> (String, String) {
        let (id, tid) = self.create(total);
        let auth = self.helper(&format!("/payments/{tid}/authorize"), json!({}));
        let (_, _) = request("GET", auth["redirect_url"].as_str().unwrap(), &[], None);
        assert_eq!(self.payment(&id)["status"], "approved");
        (id, tid)
    }

    fn payment(&self, id: &str) -> Value {
        self.api("GET", &format!("/api/v1/payments/{id}"), None, None)
            .1
    }

    /// Polls the payment until `done` holds (30 s at most).
    fn wait(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let p = self.payment(id);
            if done(&p) {
                return p;
            }
            assert!(Instant::now() < deadline, "payment {id} never {what}: {p}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Sends the same request again while the key is held by the dead request (409), as a
    /// merchant's retry loop would; returns the first other answer (90 s at most).
    fn retry(&self, path: &str, key: &str, body: &str) -> (u16, Value, Duration) {
        let started = Instant::now();
        loop {
            let (status, answer) = self.api("POST", path, Some(key), Some(body));
            if status != 409 && status != 0 && status < 500 {
                return (status, answer, started.elapsed());
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "still {status} after 90 s: {answer}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        kill9(&mut self.sandbox);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Checks a refund of `amount` made under one key after a crash: the retry answers with that
/// refund, KakaoPay refunded exactly once, the ledger agrees, and the key keeps answering the same.
fn assert_refunded_once(stack: &Stack, id: &str, tid: &str, key: &str, body: &str, amount: i64) {
    let path = format!("/api/v1/payments/{id}/cancel");
    let (status, answer, waited) = stack.retry(&path, key, body);
    assert!(matches!(status, 200 | 202), "{status} {answer}");
    assert_eq!(answer["refund"]["amount"], amount, "{answer}");
    eprintln!(
        "the retry was answered {} ms after the restart",
        waited.as_millis()
    );
    let p = stack.wait(id, "settled its refund", |p| {
        p["refund_in_progress"] == false
    });
    assert_eq!(p["canceled_amount"], amount, "{p}");
    let record = stack.kakaopay_record(tid);
    let cancels: Vec<_> = record["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "CANCEL")
        .collect();
    assert_eq!(cancels.len(), 1, "KakaoPay refunded exactly once: {record}");
    assert_eq!(record["canceled"]["total"], amount, "{record}");
    // The key keeps naming that one refund.
    let (status, again) = stack.api("POST", &path, Some(key), Some(body));
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["refund"]["id"], answer["refund"]["id"]);
    assert_eq!(again["refund"]["status"], "succeeded");
    let (_, p) = stack.api("GET", &format!("/api/v1/payments/{id}"), None, None);
    assert_eq!(p["refunds"].as_array().unwrap().len(), 1, "{p}");
}

/// The refund reaches KakaoPay, which is slow to answer; the server is SIGKILLed meanwhile and
/// KakaoPay applies the refund anyway. The merchant retries with the same Idempotency-Key: the
/// retry answers with that refund and never sends a second cancel.
#[test]
fn refund_killed_in_flight_is_never_sent_twice() {
    let stack = Stack::new();
    let mut serve = stack.serve(&[]);
    let (id, tid) = stack.paid(10_000);
    stack.helper(
        "/faults",
        json!({"endpoint":"cancel","action":"delay","delay_ms":2500}),
    );
    let body = r#"{"amount":3000,"reason":"one item returned"}"#;
    let path = format!("{}/api/v1/payments/{id}/cancel", stack.base);
    let mut merchant = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "10",
            "-X",
            "POST",
            &path,
        ])
        .args([
            "-H",
            &format!("Authorization: Bearer {KEY}"),
            "-H",
            "Idempotency-Key: refund-once-1",
        ])
        .args(["-H", "Content-Type: application/json", "-d", body])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    kill9(&mut serve);
    let _ = merchant.wait();
    // KakaoPay finishes the refund after the server died.
    std::thread::sleep(Duration::from_millis(2500));
    let mut serve = stack.serve(&[]);
    assert_refunded_once(&stack, &id, &tid, "refund-once-1", body, 3000);
    kill9(&mut serve);
}

/// The server dies right after KakaoPay refunded and before it recorded anything (a crash
/// point). The retry with the same key finds the pending refund, learns its outcome from
/// KakaoPay and answers with it.
#[test]
fn refund_crash_after_kakaopay_is_never_sent_twice() {
    let stack = Stack::new();
    let mut serve = stack.serve(&["--test-crash-at", "refund.after_kakaopay"]);
    let (id, tid) = stack.paid(8_000);
    let body = r#"{"amount":8000}"#;
    let (status, _) = stack.api(
        "POST",
        &format!("/api/v1/payments/{id}/cancel"),
        Some("refund-once-2"),
        Some(body),
    );
    assert_eq!(status, 0, "the server died without answering");
    let _ = serve.child.wait();
    let mut serve = stack.serve(&[]);
    assert_refunded_once(&stack, &id, &tid, "refund-once-2", body, 8000);
    assert_eq!(stack.payment(&id)["status"], "canceled");
    kill9(&mut serve);
}

/// The server dies after storing a payment and before storing the create request's answer. The
/// retry with the same key answers with that payment; no second payment, no second ready. Another
/// create for the same merchant order is refused.
#[test]
fn create_crash_after_storing_answers_with_the_same_payment() {
    let stack = Stack::new();
    let mut serve = stack.serve(&["--test-crash-at", "create.after_insert"]);
    let body = json!({"partner_user_id":"u","item_name":"i","quantity":1,"total_amount":4500,"partner_order_id":"order-crash-1"}).to_string();
    let (status, _) = stack.api(
        "POST",
        "/api/v1/payments",
        Some("create-once-1"),
        Some(&body),
    );
    assert_eq!(status, 0, "the server died without answering");
    let _ = serve.child.wait();
    let mut serve = stack.serve(&[]);
    let (status, p, _) = stack.retry("/api/v1/payments", "create-once-1", &body);
    assert_eq!(status, 201, "{p}");
    assert_eq!(p["partner_order_id"], "order-crash-1");
    let (_, list) = stack.api("GET", "/api/v1/payments?q=order-crash-1", None, None);
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        1,
        "one payment: {list}"
    );
    assert_eq!(list["data"][0]["id"], p["id"]);
    let ledger = request(
        "GET",
        &format!("{}/test/v1/payments", stack.kakaopay),
        &[],
        None,
    )
    .1;
    let readies = ledger["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["partner_order_id"] == "order-crash-1")
        .count();
    assert_eq!(readies, 1, "one ready at KakaoPay: {ledger}");
    // The same again: the stored answer.
    let (status, again) = stack.api(
        "POST",
        "/api/v1/payments",
        Some("create-once-1"),
        Some(&body),
    );
    assert_eq!((status, &again["id"]), (201, &p["id"]));
    // Another key, same order: refused while that payment can still be paid.
    let (status, other) = stack.api(
        "POST",
        "/api/v1/payments",
        Some("create-once-2"),
        Some(&body),
    );
    assert_eq!(status, 409, "{other}");
    assert_eq!(other["error"]["code"], "duplicate_order");
    kill9(&mut serve);
}

/// The server is killed (SIGKILL) while an approve is in flight. After a restart the reconciler
/// finds the payment `approving`, looks it up, approves it again, and KakaoPay shows exactly one
/// payment: nothing is lost and nothing doubled.
#[test]
fn sigkill_during_approve_converges_after_restart() {
    let stack = Stack::new();
    let mut serve = stack.serve(&[]);
    let (id, tid) = stack.create(5000);
    let auth = stack.helper(&format!("/payments/{tid}/authorize"), json!({}));
    let callback = auth["redirect_url"].as_str().unwrap().to_owned();
    // KakaoPay is slow: the approve is still in flight when the server dies.
    stack.helper(
        "/faults",
        json!({"endpoint":"approve","action":"delay","delay_ms":3000}),
    );
    let mut buyer = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--max-time", "10", &callback])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    kill9(&mut serve);
    let _ = buyer.wait();
    let mut serve = stack.serve(&[]);
    stack.wait(&id, "became approved", |p| p["status"] == "approved");
    let record = stack.kakaopay_record(&tid);
    assert_eq!(record["status"], "SUCCESS_PAYMENT");
    assert_eq!(
        record["actions"].as_array().unwrap().len(),
        1,
        "approved exactly once: {record}"
    );
    kill9(&mut serve);
}

/// The server dies right after KakaoPay approved (a crash point): the approval is not lost.
#[test]
fn approve_crash_after_kakaopay_is_not_lost() {
    let stack = Stack::new();
    let mut serve = stack.serve(&["--test-crash-at", "approve.after_kakaopay"]);
    let (id, tid) = stack.create(6000);
    let auth = stack.helper(&format!("/payments/{tid}/authorize"), json!({}));
    let (status, _) = request("GET", auth["redirect_url"].as_str().unwrap(), &[], None);
    assert_eq!(status, 0, "the server died without answering");
    let _ = serve.child.wait();
    let mut serve = stack.serve(&[]);
    let p = stack.wait(&id, "became approved", |p| p["status"] == "approved");
    assert!(p["aid"].as_str().is_some_and(|a| a.starts_with('A')), "{p}");
    let record = stack.kakaopay_record(&tid);
    assert_eq!(record["actions"].as_array().unwrap().len(), 1, "{record}");
    kill9(&mut serve);
}

/// An instance dies while its reconciler holds a payment's lease (its lookup hangs at a slow
/// KakaoPay). Another instance picks the payment up within seconds, not after a minute.
#[test]
fn a_dead_instances_lease_is_picked_up_within_seconds() {
    let stack = Stack::new();
    let mut serve = stack.serve(&[]);
    let (id, tid) = stack.create(7000);
    let auth = stack.helper(&format!("/payments/{tid}/authorize"), json!({}));
    // The approve is applied and its answer lost; every lookup hangs.
    stack.helper(
        "/faults",
        json!({"endpoint":"approve","action":"commit_then_drop","count":1}),
    );
    stack.helper(
        "/faults",
        json!({"endpoint":"order","action":"delay","delay_ms":20000,"count":1000}),
    );
    let (_, _) = request("GET", auth["redirect_url"].as_str().unwrap(), &[], None);
    assert_eq!(stack.payment(&id)["status"], "approving");
    // Let the reconciler lease it and hang in the lookup, then kill the instance.
    std::thread::sleep(Duration::from_millis(3000));
    kill9(&mut serve);
    request(
        "DELETE",
        &format!("{}/test/v1/faults", stack.kakaopay),
        &[],
        None,
    );
    let restarted = Instant::now();
    let mut serve = stack.serve(&[]);
    stack.wait(&id, "became approved", |p| p["status"] == "approved");
    eprintln!(
        "approved {} ms after the restart",
        restarted.elapsed().as_millis()
    );
    kill9(&mut serve);
}

impl Stack {
    /// A registered monthly subscription: its id.
    fn subscription(&self, user: &str) -> String {
        let body = json!({"partner_user_id": user, "item_name": "월간 구독", "amount": 9900, "interval": "month"});
        let (status, s) = self.api(
            "POST",
            "/api/v1/subscriptions",
            None,
            Some(&body.to_string()),
        );
        assert_eq!(status, 201, "{s}");
        let pay = self.payment(s["registration_payment_id"].as_str().unwrap());
        let auth = self.helper(
            &format!("/payments/{}/authorize", pay["tid"].as_str().unwrap()),
            json!({}),
        );
        let (_, _) = request("GET", auth["redirect_url"].as_str().unwrap(), &[], None);
        let id = s["id"].as_str().unwrap().to_owned();
        let (_, s) = self.api("GET", &format!("/api/v1/subscriptions/{id}"), None, None);
        assert_eq!(s["status"], "active", "{s}");
        id
    }

    fn advance(&self, seconds: i64) -> (u16, Value) {
        self.api(
            "POST",
            "/api/v1/test/clock/advance",
            None,
            Some(&json!({ "seconds": seconds }).to_string()),
        )
    }

    fn charges(&self, id: &str) -> Vec<Value> {
        let (_, c) = self.api(
            "GET",
            &format!("/api/v1/subscriptions/{id}/charges"),
            None,
            None,
        );
        c["data"].as_array().cloned().unwrap_or_default()
    }

    /// How many charges KakaoPay itself made under `order`.
    fn kakaopay_charges(&self, order: &str) -> usize {
        let (_, all) = request(
            "GET",
            &format!("{}/test/v1/payments", self.kakaopay),
            &[],
            None,
        );
        all["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["partner_order_id"] == order)
            .count()
    }
}

/// The server dies in the middle of a renewal run, at `point`; restarted on the same database,
/// the attempt it left is judged by KakaoPay's subscription status: the period is charged exactly
/// once, and recorded.
fn renewal_crash(point: &str, charged_before_crash: bool) {
    let stack = Stack::new();
    let mut serve = stack.serve(&["--test-crash-at", point]);
    let id = stack.subscription("crash-member");
    let (status, _) = stack.advance(32 * 86_400);
    assert_eq!(status, 0, "the server died during the renewal run");
    let _ = serve.child.wait();
    let order = format!("{id}-1");
    assert_eq!(
        stack.kakaopay_charges(&order),
        usize::from(charged_before_crash)
    );
    let mut serve = stack.serve(&[]);
    // Level with the sandbox's clock, then past the lease and the grace.
    assert_eq!(stack.advance(0).0, 200);
    assert_eq!(stack.advance(60).0, 200);
    let list = stack.charges(&id);
    let paid: Vec<&Value> = list
        .iter()
        .filter(|c| c["period"] == 1 && c["status"] == "succeeded")
        .collect();
    assert_eq!(paid.len(), 1, "{list:?}");
    assert_eq!(
        stack.kakaopay_charges(&order),
        1,
        "KakaoPay charged period 1 once"
    );
    if !charged_before_crash {
        assert!(paid[0]["payment_id"].is_string(), "{list:?}");
    }
    kill9(&mut serve);
}

#[test]
fn renewal_crash_after_kakaopay_charged_is_found_not_repeated() {
    renewal_crash("renewal.after_kakaopay", true);
}

#[test]
fn renewal_crash_after_the_claim_is_charged_once_after_restart() {
    renewal_crash("renewal.after_claim", false);
}
