//! Webhook deliveries (contract §6) to a real receiver over HTTP, on SQLite and PostgreSQL:
//! signed per Standard Webhooks (checked with an independent implementation, the
//! `standardwebhooks` crate), the body the event the API shows, every attempt recorded; the
//! retry schedule followed through 500s, 503 with Retry-After, resets and huge answers; 410 and
//! five days of failures disabling the endpoint; redeliver; rotated secrets signing alongside.
//! (SIGKILL mid-delivery and two instances: the `kpay` crate's `webhook_crash` tests.)
#![cfg(feature = "sandbox")]

mod common;
use axum::http::HeaderMap;
use common::*;
use kakaopay::Generation;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the receiver does with one request.
#[derive(Clone, Debug)]
enum Reply {
    Status(u16),
    RetryAfter(u16, u64),
    /// 200 with this many bytes of body.
    Huge(usize),
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Got {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

/// A webhook receiver on a free port: answers from a script (then 200), records everything.
#[derive(Clone, Default)]
struct Receiver {
    script: Arc<Mutex<VecDeque<Reply>>>,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    async fn start(script: Vec<Reply>) -> (Receiver, String) {
        let r = Receiver {
            script: Arc::new(Mutex::new(script.into())),
            got: Arc::default(),
        };
        let state = r.clone();
        let app = axum::Router::new().route(
            "/hooks",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    let h = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned()
                    };
                    state.got.lock().unwrap().push(Got {
                        id: h("webhook-id"),
                        timestamp: h("webhook-timestamp"),
                        signature: h("webhook-signature"),
                        body,
                    });
                    let reply = state
                        .script
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or(Reply::Status(200));
                    use axum::response::IntoResponse;
                    match reply {
                        Reply::Status(c) => (
                            axum::http::StatusCode::from_u16(c).unwrap(),
                            format!("answer {c}"),
                        )
                            .into_response(),
                        Reply::RetryAfter(c, secs) => (
                            axum::http::StatusCode::from_u16(c).unwrap(),
                            [("retry-after", secs.to_string())],
                            "slow down",
                        )
                            .into_response(),
                        Reply::Huge(n) => "x".repeat(n).into_response(),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, url)
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// The requests for event `id`, once there are `n` (30 s at most).
    async fn wait_for(&self, id: &str, n: usize) -> Vec<Got> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got: Vec<Got> = self.got().into_iter().filter(|g| g.id == id).collect();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "event {id} reached the receiver {} times, not {n}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A server without the demo shop (which registers an endpoint of its own).
async fn spawn(
    backend: Backend,
    generation: Generation,
    adjust: impl FnOnce(&mut kpay_server::ServerConfig),
) -> TestApp {
    TestApp::spawn_with(backend, generation, |c| {
        c.demo_shop = false;
        adjust(c);
    })
    .await
}

async fn endpoint(app: &TestApp, url: &str, events: Value) -> (String, String) {
    let (status, e) = app
        .post(
            "/api/v1/webhook_endpoints",
            json!({"url": url, "events": events}),
        )
        .await;
    assert_eq!(status, 201, "{e}");
    (
        e["id"].as_str().unwrap().to_owned(),
        e["secret"].as_str().unwrap().to_owned(),
    )
}

/// The `payment.approved` event of payment `id`, from the feed.
async fn approved_event(app: &TestApp, id: &str) -> Value {
    for _ in 0..200 {
        let (_, feed) = app
            .get("/api/v1/events?type=payment.approved&limit=100")
            .await;
        if let Some(e) = feed["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["data"]["object"]["id"] == id)
        {
            return e.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no payment.approved event for {id}");
}

/// A delivery of `event` for which `done` holds (30 s at most).
async fn delivery(app: &TestApp, event: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, list) = app.get(&format!("/api/v1/events/{event}/deliveries")).await;
        assert_eq!(status, 200, "{list}");
        if let Some(d) = list["data"].as_array().unwrap().iter().find(|d| done(d)) {
            return d.clone();
        }
        assert!(Instant::now() < deadline, "delivery never done: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn verify_independently(secret: &str, g: &Got) {
    let wh = standardwebhooks::Webhook::new(secret).expect("a whsec_ secret");
    let mut headers = http::HeaderMap::new();
    headers.insert("webhook-id", g.id.parse().unwrap());
    headers.insert("webhook-timestamp", g.timestamp.parse().unwrap());
    headers.insert("webhook-signature", g.signature.parse().unwrap());
    wh.verify(g.body.as_bytes(), &headers)
        .expect("standardwebhooks accepts the delivery");
}

async fn deliveries_are_signed_events(backend: Backend, generation: Generation) {
    let app = spawn(backend, generation, |_| {}).await;
    let (receiver, url) = Receiver::start(vec![]).await;
    let (endpoint_id, secret) = endpoint(&app, &url, json!(["payment.approved"])).await;
    let p = app.paid(12_000).await;
    let id = p["id"].as_str().unwrap();
    let event = approved_event(&app, id).await;
    let event_id = event["id"].as_str().unwrap();
    let got = receiver.wait_for(event_id, 1).await;
    let g = &got[0];
    verify_independently(&secret, g);
    // Also by this project's own verifier, against the receiver's clock.
    let s = kpay_webhooks::Secret::parse(&secret).unwrap();
    kpay_webhooks::verify(
        &[&s],
        &g.id,
        &g.timestamp,
        &g.signature,
        g.body.as_bytes(),
        chrono::Utc::now().timestamp(),
    )
    .expect("verifies");
    // The body is the event as the API shows it; its object the payment as GET shows it.
    let body: Value = serde_json::from_str(&g.body).unwrap();
    assert_eq!(body, event);
    let (_, one) = app.get(&format!("/api/v1/events/{event_id}")).await;
    assert_eq!(body, one);
    assert_eq!(body["data"]["object"], app.payment(id).await);
    // Only what the endpoint asked for.
    assert!(
        receiver
            .got()
            .iter()
            .all(|g| g.body.contains("payment.approved"))
    );

    let d = delivery(&app, event_id, |d| d["status"] == "succeeded").await;
    assert_eq!(d["endpoint_id"], endpoint_id.as_str());
    assert_eq!(d["attempts"], 1);
    let attempt = &d["history"][0];
    assert_eq!(attempt["status_code"], 200, "{d}");
    assert_eq!(attempt["response"], "answer 200");
    assert!(attempt["latency_ms"].as_i64().unwrap() < 15_000);
    let (_, listed) = app
        .get(&format!(
            "/api/v1/webhook_endpoints/{endpoint_id}/deliveries"
        ))
        .await;
    assert_eq!(listed["data"][0]["event_id"], event_id, "{listed}");
    // No secret anywhere in what the API shows.
    assert!(!listed.to_string().contains(&secret[6..]));
    assert!(!d.to_string().contains(&secret[6..]));
}
both_backends!(deliveries_are_signed_events);

async fn failures_follow_the_schedule(backend: Backend, generation: Generation) {
    let app = spawn(backend, generation, |c| {
        c.webhook_retry_schedule = kpay_server::domain::RetrySchedule::parse("1,1,1").unwrap();
    })
    .await;
    // 500, then 429 asking for 2 s, then a 64 MiB answer cut at the limit: that is a 200.
    let (receiver, url) = Receiver::start(vec![
        Reply::Status(500),
        Reply::RetryAfter(429, 2),
        Reply::Huge(64 << 20),
    ])
    .await;
    endpoint(&app, &url, json!(["*"])).await;
    let p = app.paid(5_000).await;
    let event = approved_event(&app, p["id"].as_str().unwrap()).await;
    let event_id = event["id"].as_str().unwrap();
    let got = receiver.wait_for(event_id, 3).await;
    assert!(got.iter().all(|g| g.id == event_id), "the same webhook-id");
    let d = delivery(&app, event_id, |d| d["status"] == "succeeded").await;
    let h = d["history"].as_array().unwrap();
    assert_eq!(h.len(), 3, "{d}");
    assert_eq!(h[0]["status_code"], 500);
    assert_eq!(h[0]["error"], "HTTP 500 Internal Server Error");
    assert_eq!(h[1]["status_code"], 429);
    assert_eq!(h[2]["status_code"], 200);
    assert_eq!(
        h[2]["response"].as_str().unwrap().len(),
        1024,
        "first bytes only"
    );
    let sent =
        |i: usize| chrono::DateTime::parse_from_rfc3339(h[i]["sent_at"].as_str().unwrap()).unwrap();
    // Retry-After (2 s) replaced the schedule's 1 s.
    assert!((sent(2) - sent(1)).num_seconds() >= 2, "{d}");

    // A receiver that always fails: four attempts (1 + the schedule's 3), then failed.
    let (_receiver, url) = Receiver::start(vec![Reply::Status(500); 10]).await;
    let (bad, _) = endpoint(&app, &url, json!(["refund.succeeded"])).await;
    let (status, r) = app
        .post(
            &format!("/api/v1/payments/{}/cancel", p["id"].as_str().unwrap()),
            json!({"amount": 1000}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let (_, feed) = app.get("/api/v1/events?type=refund.succeeded").await;
    let refund_event = feed["data"][0]["id"].as_str().unwrap().to_owned();
    let d = delivery(&app, &refund_event, |d| {
        d["endpoint_id"] == bad.as_str() && d["status"] == "failed"
    })
    .await;
    assert_eq!(d["history"].as_array().unwrap().len(), 4, "{d}");
    assert_eq!(d["attempts"], 4);
}
both_backends!(failures_follow_the_schedule);

/// A connection reset and a refused connection are attempts without a status, retried.
async fn dead_receivers_are_retried(backend: Backend, generation: Generation) {
    let app = spawn(backend, generation, |c| {
        c.webhook_retry_schedule = kpay_server::domain::RetrySchedule::parse("1,1").unwrap();
    })
    .await;
    // Accepts, reads a little, resets (SO_LINGER 0).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                break;
            };
            let mut buf = [0u8; 64];
            let _ = s.try_read(&mut buf);
            let _ = s.set_zero_linger();
            drop(s);
        }
    });
    endpoint(&app, &url, json!(["payment.approved"])).await;
    let p = app.paid(3_000).await;
    let event = approved_event(&app, p["id"].as_str().unwrap()).await;
    let d = delivery(&app, event["id"].as_str().unwrap(), |d| {
        d["status"] == "failed"
    })
    .await;
    let h = d["history"].as_array().unwrap();
    assert_eq!(h.len(), 3, "{d}");
    for a in h {
        assert!(a["status_code"].is_null(), "{d}");
        assert!(!a["error"].as_str().unwrap().is_empty(), "{d}");
    }
}
both_backends!(dead_receivers_are_retried);

async fn gone_and_failing_endpoints_are_disabled(backend: Backend, generation: Generation) {
    let app = spawn(backend, generation, |c| {
        c.webhook_retry_schedule = kpay_server::domain::RetrySchedule::parse("1,3600").unwrap();
    })
    .await;
    let (_gone_receiver, gone_url) = Receiver::start(vec![Reply::Status(410)]).await;
    let (gone, _) = endpoint(&app, &gone_url, json!(["payment.approved"])).await;
    let (failing_receiver, failing_url) = Receiver::start(vec![Reply::Status(502); 100]).await;
    let (failing, _) = endpoint(&app, &failing_url, json!(["payment.approved"])).await;
    let p = app.paid(7_000).await;
    let event = approved_event(&app, p["id"].as_str().unwrap()).await;
    let event_id = event["id"].as_str().unwrap();
    failing_receiver.wait_for(event_id, 1).await;
    let mut e = Value::Null;
    for _ in 0..100 {
        e = app
            .get(&format!("/api/v1/webhook_endpoints/{gone}"))
            .await
            .1;
        if e["status"] == "disabled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(e["status"], "disabled", "{e}");
    assert_eq!(e["disabled_reason"], "the receiver answered 410 Gone");
    // The failing one is failing since its first attempt, and waits an hour for the next.
    let mut f = Value::Null;
    for _ in 0..100 {
        f = app
            .get(&format!("/api/v1/webhook_endpoints/{failing}"))
            .await
            .1;
        if f["failing_since"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(f["failing_since"].is_string(), "{f}");
    // Five days later its retry fails too: disabled, the delivery ended.
    let (status, c) = app
        .post("/api/v1/test/clock/advance", json!({"seconds": 5 * 86_400}))
        .await;
    assert_eq!(status, 200, "{c}");
    failing_receiver.wait_for(event_id, 2).await;
    for _ in 0..100 {
        f = app
            .get(&format!("/api/v1/webhook_endpoints/{failing}"))
            .await
            .1;
        if f["status"] == "disabled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(f["status"], "disabled", "{f}");
    assert_eq!(f["disabled_reason"], "every delivery failed for 5 days");
    // Nothing more goes to disabled endpoints.
    let before = failing_receiver.got().len();
    let q = app.paid(1_000).await;
    approved_event(&app, q["id"].as_str().unwrap()).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(failing_receiver.got().len(), before);
    // Enabled again by the merchant: new events flow.
    let (status, f) = app
        .post(
            &format!("/api/v1/webhook_endpoints/{failing}/enable"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{f}");
    assert_eq!(f["status"], "enabled");
    assert!(
        f.get("failing_since").is_none() && f.get("disabled_reason").is_none(),
        "{f}"
    );
    let r = app.paid(2_000).await;
    let later = approved_event(&app, r["id"].as_str().unwrap()).await;
    failing_receiver
        .wait_for(later["id"].as_str().unwrap(), 1)
        .await;
}
both_backends!(gone_and_failing_endpoints_are_disabled);

async fn redeliver_and_rotation(backend: Backend, generation: Generation) {
    let app = spawn(backend, generation, |_| {}).await;
    let (receiver, url) = Receiver::start(vec![]).await;
    let (endpoint_id, old) = endpoint(&app, &url, json!(["*"])).await;
    let p = app.paid(4_000).await;
    let event = approved_event(&app, p["id"].as_str().unwrap()).await;
    let event_id = event["id"].as_str().unwrap();
    receiver.wait_for(event_id, 1).await;
    delivery(&app, event_id, |d| d["status"] == "succeeded").await;

    // Rotated: deliveries carry two signatures, each verifying with its secret.
    let (status, rotated) = app
        .post(
            &format!("/api/v1/webhook_endpoints/{endpoint_id}/rotate_secret"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    let (status, again) = app
        .post(&format!("/api/v1/events/{event_id}/redeliver"), json!({}))
        .await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["endpoints"], json!([endpoint_id]));
    let got = receiver.wait_for(event_id, 2).await;
    let g = &got[1];
    assert_eq!(g.id, event_id, "the same webhook-id");
    assert_eq!(g.signature.split(' ').count(), 2, "{}", g.signature);
    verify_independently(&new, g);
    verify_independently(&old, g);
    let d = delivery(&app, event_id, |d| {
        d["status"] == "succeeded" && d["history"].as_array().unwrap().len() == 2
    })
    .await;
    assert_eq!(d["attempts"], 1, "a new round: {d}");

    // Disabled by hand: nothing is sent; unknown events and endpoints are 404.
    let (status, off) = app
        .post(
            &format!("/api/v1/webhook_endpoints/{endpoint_id}/disable"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{off}");
    assert_eq!(off["disabled_reason"], "disabled by the merchant");
    let (_, none) = app
        .post(&format!("/api/v1/events/{event_id}/redeliver"), json!({}))
        .await;
    assert_eq!(none["endpoints"], json!([]));
    for path in [
        "/api/v1/events/evt_nope/redeliver",
        "/api/v1/webhook_endpoints/we_nope/disable",
    ] {
        let (status, e) = app.post(path, json!({})).await;
        assert_eq!(status, 404, "{path}: {e}");
    }
    let (status, e) = app.get("/api/v1/events/evt_nope/deliveries").await;
    assert_eq!(status, 404, "{e}");
    let (status, e) = app
        .get(&format!(
            "/api/v1/webhook_endpoints/{endpoint_id}/deliveries?limit=0"
        ))
        .await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["error"]["field"], "limit", "{e}");
}
both_backends!(redeliver_and_rotation);

/// The feed's long poll: an empty feed answers when an event comes, not after the wait.
async fn the_feed_long_polls(backend: Backend, generation: Generation) {
    let app = spawn(backend, generation, |_| {}).await;
    let (_, feed) = app.get("/api/v1/events?limit=100").await;
    let cursor = feed["next_cursor"].as_str().map(str::to_owned);
    let started = Instant::now();
    let path = match &cursor {
        Some(c) => format!("/api/v1/events?after={c}&wait=20"),
        None => "/api/v1/events?wait=20".to_owned(),
    };
    let waiting = {
        let http = app.http.clone();
        let url = format!("{}{path}", app.base);
        tokio::spawn(async move {
            http.get(url)
                .bearer_auth(API_KEY)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.paid(1_500).await;
    let page = waiting.await.unwrap();
    assert!(!page["data"].as_array().unwrap().is_empty(), "{page}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "answered when the event came"
    );
    let (status, e) = app.get("/api/v1/events?wait=61").await;
    assert_eq!(status, 400);
    assert_eq!(e["error"]["field"], "wait");
}
both_backends!(the_feed_long_polls);

/// A receiver that accepts and never answers: the attempt ends at the 15 s timeout, recorded
/// as such, and the schedule goes on.
async fn hanging_receivers_time_out(backend: Backend, generation: Generation) {
    let app = spawn(backend, generation, |c| {
        c.webhook_retry_schedule = kpay_server::domain::RetrySchedule::parse("3600").unwrap();
    })
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    endpoint(&app, &url, json!(["payment.approved"])).await;
    let p = app.paid(3_000).await;
    let event = approved_event(&app, p["id"].as_str().unwrap()).await;
    let d = delivery(&app, event["id"].as_str().unwrap(), |d| d["attempts"] == 1).await;
    assert_eq!(d["status"], "pending", "retried later: {d}");
    let a = &d["history"][0];
    assert!(
        a["error"]
            .as_str()
            .unwrap()
            .starts_with("timed out after 15 s"),
        "{d}"
    );
    assert!(a["latency_ms"].as_i64().unwrap() >= 15_000, "{d}");
    assert!(a["status_code"].is_null());
}
both_backends!(hanging_receivers_time_out);

/// An endpoint row that cannot be read (damaged by hand, or written by another version) is
/// left out: the others keep receiving, the API keeps answering.
async fn a_broken_endpoint_stops_no_other(backend: Backend, generation: Generation) {
    let app = spawn(backend, generation, |_| {}).await;
    let (good, url) = Receiver::start(vec![]).await;
    endpoint(&app, &url, json!(["payment.approved"])).await;
    let (_bad_receiver, bad_url) = Receiver::start(vec![]).await;
    let (bad, _) = endpoint(&app, &bad_url, json!(["payment.approved"])).await;
    app.scratch
        .execute(&format!(
            "UPDATE webhook_endpoints SET url = 'not a url' WHERE id = '{bad}'"
        ))
        .await;
    for _ in 0..3 {
        let p = app.paid(2_000).await;
        let e = approved_event(&app, p["id"].as_str().unwrap()).await;
        good.wait_for(e["id"].as_str().unwrap(), 1).await;
    }
    let (status, list) = app.get("/api/v1/webhook_endpoints").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    // Percent-encoding makes this URL longer than the limit: refused at once, naming the field.
    let long = format!("http://127.0.0.1:9/{}", "é".repeat(700));
    let (status, e) = app
        .post("/api/v1/webhook_endpoints", json!({"url": long}))
        .await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["error"]["field"], "url");
}
both_backends!(a_broken_endpoint_stops_no_other);
