//! Money exactly once and calls toward KakaoPay bounded, whatever the callbacks, retries and
//! unclear answers: idempotency keys bound to their effect, one payment per order, forged callbacks
//! that cannot harm, back-off instead of retry storms. (Crashes with the real binary: the `kpay`
//! crate's `crash` tests; thousands of payments under faults: `kpay-chaos`.)
#![cfg(feature = "sandbox")]

mod common;
use common::*;
use kakaopay::Generation;
use serde_json::{Value, json};
use std::time::Duration;

async fn created_for(app: &TestApp, user: &str, total: i64) -> Value {
    let (status, p) = app
        .post(
            "/api/v1/payments",
            json!({"partner_user_id": user, "item_name": "정기 배송", "quantity": 1, "total_amount": total}),
        )
        .await;
    assert_eq!(status, 201, "{p}");
    p
}

/// A buyer whose approve keeps answering -780 USER_LOCKED (the outcome is unknown every time):
/// approves are re-sent with growing waits, lookups back off, one resolver runs; nothing storms.
async fn unclear_approves_are_retried_with_back_off(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let p = created_for(&app, "sandbox_user_locked_7", 9900).await;
    let id = p["id"].as_str().unwrap();
    let callback = app.authorize(&p).await;
    let (status, _, page) = app.browse(&callback).await;
    assert_eq!(status, 200);
    assert!(page.contains("결제 확인 중"));
    // Grace 0.8 s: re-sends at about 0.8, 2.4 and 5.6 s (each waits twice as long).
    tokio::time::sleep(Duration::from_secs(8)).await;
    let record = app.kakaopay_record(p["tid"].as_str().unwrap()).await;
    let calls = &record["calls"];
    let approves = calls["approve"].as_u64().unwrap();
    let lookups = calls["order"].as_u64().unwrap();
    assert!(
        (2..=5).contains(&approves),
        "re-sent, a few times only: {calls}"
    );
    assert!(lookups <= 30, "lookups back off: {calls}");
    let events = app.events(id).await;
    assert!(events.len() <= 20, "no event per attempt: {events:?}");
    assert_eq!(app.payment(id).await["status"], "approving");
}
both_backends!(unclear_approves_are_retried_with_back_off);

/// Forged approve callbacks (random pg_tokens) on a payment waiting for its buyer: a handful of
/// KakaoPay calls per minute at most, whatever their number; the payment stays payable.
async fn forged_callbacks_cost_a_bounded_number_of_calls(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let p = app.create(5000).await;
    let id = p["id"].as_str().unwrap();
    for i in 0..20 {
        let token = format!("{i:020x}");
        app.browse(&format!("{}/pay/{id}/approve?pg_token={token}", app.base))
            .await;
        app.browse(&format!("{}/pay/{id}/cancel", app.base)).await;
    }
    let record = app.kakaopay_record(p["tid"].as_str().unwrap()).await;
    let calls = &record["calls"];
    assert!(calls["approve"].as_u64().unwrap() <= 5, "{calls}");
    assert!(calls["order"].as_u64().unwrap() <= 5, "{calls}");
    assert!(app.events(id).await.len() <= 1 + 2 * 5);
    assert_eq!(app.payment(id).await["status"], "ready");
}
both_backends!(forged_callbacks_cost_a_bounded_number_of_calls);

/// Forged fail callbacks while the buyer is paying (authenticated at KakaoPay): the payment stays
/// payable and the buyer's real approval goes through.
async fn a_forged_fail_callback_does_not_kill_a_live_payment(
    backend: Backend,
    generation: Generation,
) {
    let app = TestApp::spawn(backend, generation).await;
    let p = app.create(12_000).await;
    let id = p["id"].as_str().unwrap();
    let callback = app.authorize(&p).await;
    // More forged callbacks than their lookup budget: they cannot spend the buyer's approve.
    for _ in 0..8 {
        let (status, _, _) = app.browse(&format!("{}/pay/{id}/fail", app.base)).await;
        assert_eq!(status, 200);
    }
    assert_eq!(app.payment(id).await["status"], "ready");
    let (status, _, page) = app.browse(&callback).await;
    assert_eq!(status, 200);
    assert!(page.contains("결제가 완료되었습니다"), "{page}");
    assert_eq!(app.payment(id).await["status"], "approved");
}
both_backends!(
    a_forged_fail_callback_does_not_kill_a_live_payment,
    generations
);

/// An approve lost before KakaoPay applied it is re-sent and succeeds: the reconciliation after the
/// re-send reports no disagreement (the lookup before it is stale), and nothing is logged as
/// `approving` once the payment is approved.
async fn a_successful_resend_reports_no_mismatch(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let p = app.create(7000).await;
    let id = p["id"].as_str().unwrap();
    let callback = app.authorize(&p).await;
    app.fault(json!({"endpoint": "approve", "action": "drop", "count": 1}))
        .await;
    app.browse(&callback).await;
    app.wait_for(id, "approved").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let events = app.events(id).await;
    let approved_at = events.iter().position(|e| e["to"] == "approved").unwrap();
    assert!(
        events[approved_at..].iter().all(|e| e["to"] != "approving"),
        "{events:?}"
    );
    let store = kpay_server::store::Store::connect(&app.scratch.url)
        .await
        .unwrap();
    let mismatches = store.reconciler_mismatches().await.unwrap();
    assert_eq!(mismatches, 0, "no false 'ledger and KakaoPay disagree'");
    let record = app.kakaopay_record(p["tid"].as_str().unwrap()).await;
    assert_eq!(record["actions"].as_array().unwrap().len(), 1);
}
both_backends!(a_successful_resend_reports_no_mismatch);

/// A refund whose answer was lost answers 202 (pending). The same request again, once KakaoPay's
/// outcome is known, answers with that refund as it is now: succeeded, the same id, and no second
/// cancel at KakaoPay.
async fn a_pending_refund_answer_is_refreshed_not_repeated(
    backend: Backend,
    generation: Generation,
) {
    let app = TestApp::spawn(backend, generation).await;
    let p = app.paid(20_000).await;
    let id = p["id"].as_str().unwrap();
    app.fault(json!({"endpoint": "cancel", "action": "commit_then_drop", "count": 1}))
        .await;
    let path = format!("/api/v1/payments/{id}/cancel");
    let (status, first) = app
        .post_keyed(&path, "rfd-k-1", json!({"amount": 5000}))
        .await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(first["refund"]["status"], "pending");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let again = loop {
        let (status, again) = app
            .post_keyed(&path, "rfd-k-1", json!({"amount": 5000}))
            .await;
        if status == 200 {
            break again;
        }
        assert_eq!(status, 202, "{again}");
        assert!(std::time::Instant::now() < deadline, "{again}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(again["refund"]["id"], first["refund"]["id"]);
    assert_eq!(again["refund"]["status"], "succeeded");
    assert_eq!(again["canceled_amount"], 5000);
    let record = app.kakaopay_record(p["tid"].as_str().unwrap()).await;
    assert_eq!(record["calls"]["cancel"], 1, "{record}");
    assert_eq!(record["canceled"]["total"], 5000);
    // Without an amount: the rest, under a new key.
    let (status, rest) = app.post_keyed(&path, "rfd-k-2", json!({})).await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(rest["refund"]["amount"], 15_000);
    assert_eq!(rest["status"], "canceled");
}
both_backends!(a_pending_refund_answer_is_refreshed_not_repeated);

/// One payment per merchant order while it can still be, or has been, paid; a new payment once
/// the previous one ended unpaid.
async fn one_payment_per_order(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let body = json!({"partner_user_id": "u", "item_name": "i", "quantity": 1, "total_amount": 3000, "partner_order_id": "ORD-77"});
    let (status, first) = app.post("/api/v1/payments", body.clone()).await;
    assert_eq!(status, 201, "{first}");
    let (status, dup) = app.post("/api/v1/payments", body.clone()).await;
    assert_eq!(status, 409, "{dup}");
    assert_eq!(dup["error"]["code"], "duplicate_order");
    assert!(
        dup["error"]["message"]
            .as_str()
            .unwrap()
            .contains(first["id"].as_str().unwrap())
    );
    // The buyer quits: the order may be paid with a new payment.
    let tid = first["tid"].as_str().unwrap();
    app.sandbox(&format!("/payments/{tid}/quit"), None).await;
    app.browse(&format!(
        "{}/pay/{}/cancel",
        app.base,
        first["id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(
        app.payment(first["id"].as_str().unwrap()).await["status"],
        "quit"
    );
    let (status, second) = app.post("/api/v1/payments", body.clone()).await;
    assert_eq!(status, 201, "{second}");
    assert_ne!(second["id"], first["id"]);
    // Concurrent creates for one new order: exactly one wins.
    let body = json!({"partner_user_id": "u", "item_name": "i", "quantity": 1, "total_amount": 3000, "partner_order_id": "ORD-78"});
    let results = futures_join(&app, &body, 6).await;
    assert_eq!(
        results.iter().filter(|s| **s == 201).count(),
        1,
        "{results:?}"
    );
    assert!(
        results.iter().all(|s| *s == 201 || *s == 409),
        "{results:?}"
    );
}
both_backends!(one_payment_per_order);

async fn futures_join(app: &TestApp, body: &Value, n: usize) -> Vec<u16> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let http = app.http.clone();
        let url = format!("{}/api/v1/payments", app.base);
        let body = body.clone();
        set.spawn(async move {
            http.post(url)
                .bearer_auth(API_KEY)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap());
    }
    out
}

/// A refund asked while another is in flight gets 409 `refund_in_progress`; that refusal is not
/// stored under its key: the same request again, once the first refund finished, is performed.
async fn a_conflict_is_not_stored_under_the_key(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let p = app.paid(9000).await;
    let id = p["id"].as_str().unwrap().to_owned();
    app.fault(json!({"endpoint": "cancel", "action": "delay", "delay_ms": 1500}))
        .await;
    let path = format!("/api/v1/payments/{id}/cancel");
    let first = {
        let http = app.http.clone();
        let url = format!("{}{path}", app.base);
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(API_KEY)
                .header("Idempotency-Key", "conflict-a")
                .json(&json!({"amount": 4000}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, busy) = app.post_keyed(&path, "conflict-b", json!({})).await;
    assert_eq!(status, 409, "{busy}");
    assert_eq!(busy["error"]["code"], "refund_in_progress");
    assert_eq!(first.await.unwrap(), 200);
    let after = app.payment(&id).await;
    assert_eq!(after["canceled_amount"], 4000, "{after}");
    let (status, rest) = app.post_keyed(&path, "conflict-b", json!({})).await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(rest["refund"]["amount"], 5000);
    assert_eq!(rest["status"], "canceled");
}
both_backends!(a_conflict_is_not_stored_under_the_key);

/// KakaoPay's order lookup is down while an approve's outcome is unknown: lookups stay few (the
/// reconciler probes, it does not call for every payment on every pass), and the payment is settled
/// within seconds once KakaoPay answers again.
async fn an_outage_costs_few_calls_and_is_caught_up_quickly(
    backend: Backend,
    generation: Generation,
) {
    let app = TestApp::spawn(backend, generation).await;
    let p = app.create(6600).await;
    let id = p["id"].as_str().unwrap();
    let callback = app.authorize(&p).await;
    app.fault(json!({"endpoint": "approve", "action": "commit_then_drop"}))
        .await;
    app.fault(json!({"endpoint": "order", "action": "error", "error_code": -500, "http_status": 503, "count": 100000}))
        .await;
    app.browse(&callback).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let during = app.kakaopay_record(p["tid"].as_str().unwrap()).await["calls"]["order"]
        .as_u64()
        .unwrap();
    // The reconciler runs every 0.3 s here; it probes the payment about every 2.5–5 s (a storm
    // would be hundreds).
    assert!(during <= 40, "{during} lookups in 20 s of outage");
    let p = app.payment(id).await;
    assert_eq!(p["status"], "approving", "{p}");
    app.send(
        reqwest::Method::DELETE,
        "/sandbox/test/v1/faults",
        None,
        None,
    )
    .await;
    let ended = std::time::Instant::now();
    app.wait_for(id, "approved").await;
    assert!(
        ended.elapsed() < Duration::from_secs(8),
        "caught up {:?} after the outage",
        ended.elapsed()
    );
}
both_backends!(an_outage_costs_few_calls_and_is_caught_up_quickly);

/// Concurrent creates for one merchant order (a double-clicked checkout): one payment, and every
/// other request is told `duplicate_order` (409) naming it — never a 5xx, which would free the
/// Idempotency-Key and look like an outage. On SQLite the losers are answered only once the
/// winner's row is committed, so their lookup of the order finds it.
async fn concurrent_creates_for_one_order(backend: Backend, generation: Generation) {
    let app = std::sync::Arc::new(TestApp::spawn(backend, generation).await);
    let body = json!({"partner_user_id": "u", "item_name": "i", "quantity": 1, "total_amount": 3000, "partner_order_id": "ORD-RACE"});
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let app = std::sync::Arc::clone(&app);
            let body = body.clone();
            tokio::spawn(async move { app.post("/api/v1/payments", body).await })
        })
        .collect();
    let mut created = Vec::new();
    let mut duplicates = 0;
    for t in tasks {
        let (status, answer) = t.await.unwrap();
        match status {
            201 => created.push(answer["id"].as_str().unwrap().to_owned()),
            409 => {
                assert_eq!(answer["error"]["code"], "duplicate_order", "{answer}");
                duplicates += 1;
            }
            other => panic!("{other}: {answer}"),
        }
    }
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(duplicates, 11);
}
both_backends!(concurrent_creates_for_one_order);
