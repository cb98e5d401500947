//! Webhooks with the real binary: `kpay serve` SIGKILLed while a delivery is in flight sends it
//! again with the same `webhook-id` within 30 s of running again (contract §6); two instances
//! on one PostgreSQL share the deliveries, each event delivered once, and the survivor goes on
//! alone when the other is killed.

mod common;
use common::hooks::Hooks;
use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const KEY: &str = "kpay_sk_webhook_crash_0123456789";

fn api(base: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let auth = format!("Bearer {KEY}");
    let body = body.map(|b| b.to_string());
    request(
        method,
        &format!("{base}{path}"),
        &[("Authorization", auth.as_str())],
        body.as_deref(),
    )
}

/// A payment of `total` paid by the buyer at `kakaopay` (a sandbox's base URL), created at
/// `base`; answers its id.
fn paid(base: &str, kakaopay: &str, total: i64) -> String {
    let (status, p) = api(
        base,
        "POST",
        "/api/v1/payments",
        Some(json!({"partner_user_id":"u","item_name":"i","quantity":1,"total_amount":total})),
    );
    assert_eq!(status, 201, "{p}");
    let auth = post_json(
        &format!(
            "{kakaopay}/test/v1/payments/{}/authorize",
            p["tid"].as_str().unwrap()
        ),
        None,
        "{}",
    );
    let _ = request("GET", auth["redirect_url"].as_str().unwrap(), &[], None);
    p["id"].as_str().unwrap().to_owned()
}

/// The ids of the `payment.approved` events at `base`, once there are `n` (60 s at most).
fn approved_events(base: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut ids = Vec::new();
        let mut cursor = String::new();
        loop {
            let (_, page) = api(
                base,
                "GET",
                &format!("/api/v1/events?type=payment.approved&limit=100&cursor={cursor}"),
                None,
            );
            let data = page["data"].as_array().cloned().unwrap_or_default();
            ids.extend(data.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
            match page["next_cursor"].as_str() {
                Some(c) if data.len() == 100 => cursor = c.to_owned(),
                _ => break,
            }
        }
        if ids.len() >= n {
            return ids;
        }
        assert!(Instant::now() < deadline, "{} of {n} events", ids.len());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_delivery_cut_by_sigkill_is_sent_again_with_the_same_id() {
    let dir = scratch();
    let listen = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{listen}");
    let args = [
        "serve",
        "--listen",
        &listen,
        "--api-key",
        KEY,
        "--no-shop",
        "--data-dir",
        "data",
    ];
    let mut serve = Running::start(&args, &dir);
    serve.expect("listening on");
    let (hooks, url) = Hooks::start(1);
    let (status, e) = api(
        &base,
        "POST",
        "/api/v1/webhook_endpoints",
        Some(json!({"url": url, "events": ["payment.approved"]})),
    );
    assert_eq!(status, 201, "{e}");
    paid(&base, &format!("{base}/sandbox"), 8_000);
    let event = approved_events(&base, 1).remove(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while hooks.count(&event) == 0 {
        assert!(Instant::now() < deadline, "the delivery never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The receiver holds the request: the delivery is in flight. Killed now.
    kill9(&mut serve);
    let mut serve = Running::start(&args, &dir);
    serve.expect("listening on");
    let restarted = Instant::now();
    while hooks.count(&event) < 2 {
        assert!(
            restarted.elapsed() < Duration::from_secs(30),
            "not sent again within 30 s of the restart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "sent again {} ms after the restart",
        restarted.elapsed().as_millis()
    );
    // Recorded as delivered; the attempt the crash cut short left no record, nothing else.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, list) = api(
            &base,
            "GET",
            &format!("/api/v1/events/{event}/deliveries"),
            None,
        );
        if list["data"][0]["status"] == "succeeded" {
            assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
            break;
        }
        assert!(Instant::now() < deadline, "{list}");
        std::thread::sleep(Duration::from_millis(100));
    }
    kill9(&mut serve);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh database on the machine's PostgreSQL.
fn fresh_database() -> String {
    let name = format!("kpay_hooks_{}", rand_suffix());
    let status = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-qc",
            &format!("CREATE DATABASE {name}"),
        ])
        .status()
        .unwrap();
    assert!(status.success(), "PostgreSQL at 127.0.0.1:5432 is needed");
    format!("postgres://postgres@127.0.0.1:5432/{name}")
}

#[test]
fn two_instances_on_postgres_deliver_each_event_once() {
    let dir = scratch();
    let database = fresh_database();
    let sandbox_listen = format!("127.0.0.1:{}", free_port());
    let mut sandbox = Running::start(&["sandbox", "--listen", &sandbox_listen], &dir);
    sandbox.expect("listening on");
    let kakaopay = format!("http://{sandbox_listen}");
    let start = |port: u16| {
        let listen = format!("127.0.0.1:{port}");
        let mut r = Running::start(
            &[
                "serve",
                "--listen",
                &listen,
                "--database-url",
                &database,
                "--kakaopay-url",
                &kakaopay,
                "--api-key",
                KEY,
                "--encryption-key",
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                "--no-shop",
                "--data-dir",
                &format!("data-{port}"),
            ],
            &dir,
        );
        r.expect("listening on");
        (r, format!("http://{listen}"))
    };
    let (mut a, base_a) = start(free_port());
    let (mut b, base_b) = start(free_port());
    let (hooks, url) = Hooks::start(0);
    let (status, e) = api(
        &base_a,
        "POST",
        "/api/v1/webhook_endpoints",
        Some(json!({"url": url, "events": ["payment.approved"]})),
    );
    assert_eq!(status, 201, "{e}");
    for i in 0..30 {
        let base = if i % 2 == 0 { &base_a } else { &base_b };
        paid(base, &kakaopay, 1_000 + i);
    }
    let events = approved_events(&base_b, 30);
    let wait_all = |events: &[String]| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while events.iter().any(|e| hooks.count(e) == 0) {
            assert!(Instant::now() < deadline, "not every event was delivered");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_all(&events);
    // Settle, then count: one delivery each, whichever instance sent it.
    std::thread::sleep(Duration::from_millis(500));
    for e in &events {
        assert_eq!(hooks.count(e), 1, "{e} delivered {} times", hooks.count(e));
    }
    // A dies; B fans out and delivers alone (the cursor's lock went with A's connection).
    kill9(&mut a);
    for i in 0..10 {
        paid(&base_b, &kakaopay, 5_000 + i);
    }
    let events = approved_events(&base_b, 40);
    wait_all(&events);
    kill9(&mut b);
    kill9(&mut sandbox);
    let _ = std::fs::remove_dir_all(&dir);
}
