//! KakaoPay misbehaving (sandbox faults): lost answers, applied-but-unanswered calls, errors.
//! Whatever happens, the payment converges to KakaoPay's truth and nothing is approved or refunded
//! twice.
#![cfg(feature = "sandbox")]

mod common;
use common::*;
use kakaopay::{Generation, OrderStatus};
use serde_json::json;

/// The approve is lost before KakaoPay applies it: the payment stays `approving`, lookups see the
/// order still authenticated, and after the grace period the approve is sent again.
async fn approve_dropped_before_applying(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let p = app.create(7000).await;
    let id = p["id"].as_str().unwrap();
    let callback = app.authorize(&p).await;
    app.fault(json!({"endpoint": "approve", "action": "drop"}))
        .await;
    let (status, _, page) = app.browse(&callback).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("결제 확인 중"),
        "the buyer is told it is being confirmed"
    );
    assert_eq!(app.payment(id).await["status"], "approving");
    let p = app.wait_for(id, "approved").await;
    let order = app
        .kakaopay_order(p["tid"].as_str().unwrap(), generation)
        .await;
    assert_eq!(
        order.payment_action_details.len(),
        1,
        "approved exactly once"
    );
    let causes: Vec<_> = app.causes(id).await;
    assert!(
        causes.contains(&"approve_unclear".to_owned())
            && causes.contains(&"approve_resent".to_owned()),
        "{causes:?}"
    );
    // The buyer's page, refreshed, now shows the receipt.
    let (_, _, page) = app.browse(&format!("{}/pay/{id}", app.base)).await;
    assert!(page.contains("결제가 완료되었습니다"));
}
both_backends!(approve_dropped_before_applying, generations);

/// KakaoPay applies the approve and the answer is lost: a lookup finds it paid.
async fn approve_committed_then_dropped(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let p = app.create(8000).await;
    let id = p["id"].as_str().unwrap();
    let callback = app.authorize(&p).await;
    app.fault(json!({"endpoint": "approve", "action": "commit_then_drop"}))
        .await;
    let (status, _, _) = app.browse(&callback).await;
    assert_eq!(status, 200);
    let p = app.wait_for(id, "approved").await;
    assert!(
        p["aid"].as_str().unwrap().starts_with('A'),
        "the AID comes from the order's history: {p}"
    );
    let order = app
        .kakaopay_order(p["tid"].as_str().unwrap(), generation)
        .await;
    assert_eq!(order.status, OrderStatus::SuccessPayment);
    assert_eq!(order.payment_action_details.len(), 1);
    // The ledger can refund it like any other payment.
    let (status, p) = app
        .post(
            &format!("/api/v1/payments/{id}/cancel"),
            json!({"amount": 8000}),
        )
        .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["status"], "canceled");
}
both_backends!(approve_committed_then_dropped, generations);

/// A 5xx after applying, and -780 USER_LOCKED without applying: both unclear, both converge.
async fn approve_errors_that_may_have_applied(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let p = app.create(1000).await;
    let callback = app.authorize(&p).await;
    app.fault(json!({"endpoint": "approve", "action": "commit_then_error", "error_code": -500, "http_status": 500})).await;
    app.browse(&callback).await;
    app.wait_for(p["id"].as_str().unwrap(), "approved").await;

    let q = app.create(1000).await;
    let callback = app.authorize(&q).await;
    app.fault(json!({"endpoint": "approve", "action": "error", "error_code": -780, "method_result_code": "USER_LOCKED"})).await;
    let (_, _, page) = app.browse(&callback).await;
    assert!(page.contains("결제 확인 중"));
    let q = app.wait_for(q["id"].as_str().unwrap(), "approved").await;
    let order = app
        .kakaopay_order(q["tid"].as_str().unwrap(), generation)
        .await;
    assert_eq!(order.payment_action_details.len(), 1);
}
both_backends!(approve_errors_that_may_have_applied);

/// A definite refusal fails the payment; nothing was taken.
async fn approve_declined(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let (_, p) = app
        .post("/api/v1/payments", json!({"partner_user_id": "sandbox_declined-7", "item_name": "노트북", "quantity": 1, "total_amount": 1_500_000}))
        .await;
    let callback = app.authorize(&p).await;
    let (status, _, page) = app.browse(&callback).await;
    assert_eq!(status, 200);
    assert!(page.contains("결제에 실패했습니다"));
    let p = app.payment(p["id"].as_str().unwrap()).await;
    assert_eq!(p["status"], "failed");
    assert_eq!(p["failure"]["code"], "-780");
    assert!(
        p["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("LIMIT_EXCEEDED")
    );
    let events = app.events(p["id"].as_str().unwrap()).await;
    assert_eq!(events.last().unwrap()["kakaopay_code"], -780);
}
both_backends!(approve_declined);

/// The refund is lost before KakaoPay applies it: 202, pending, then failed after the grace
/// period; the money can be refunded again.
async fn refund_dropped_before_applying(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let p = app.paid(10_000).await;
    let id = p["id"].as_str().unwrap();
    app.fault(json!({"endpoint": "cancel", "action": "drop"}))
        .await;
    let (status, p) = app
        .post(
            &format!("/api/v1/payments/{id}/cancel"),
            json!({"amount": 4000}),
        )
        .await;
    assert_eq!(status, 202, "{p}");
    assert_eq!(p["refund_in_progress"], true);
    assert_eq!(p["refunds"][0]["status"], "pending");
    // A second refund meanwhile is refused, not queued behind an unknown one.
    let (status, e) = app
        .post(
            &format!("/api/v1/payments/{id}/cancel"),
            json!({"amount": 1000}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(e["error"]["code"], "refund_in_progress");
    let p = wait_refund(&app, id).await;
    assert_eq!(p["refunds"][0]["status"], "failed");
    assert_eq!(p["status"], "approved");
    assert_eq!(p["cancelable_amount"], 10_000);
    let (status, p) = app
        .post(
            &format!("/api/v1/payments/{id}/cancel"),
            json!({"amount": 4000}),
        )
        .await;
    assert_eq!(status, 200, "{p}");
    let order = app
        .kakaopay_order(p["tid"].as_str().unwrap(), generation)
        .await;
    assert_eq!(
        order.canceled_amount.unwrap().total.won(),
        4000,
        "refunded once"
    );
}
both_backends!(refund_dropped_before_applying, generations);

/// KakaoPay applies the refund and the answer is lost: the lookup confirms it, with its AID.
async fn refund_committed_then_dropped(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let p = app.paid(10_000).await;
    let id = p["id"].as_str().unwrap();
    app.fault(json!({"endpoint": "cancel", "action": "commit_then_drop"}))
        .await;
    let (status, _) = app
        .post(
            &format!("/api/v1/payments/{id}/cancel"),
            json!({"amount": 10_000}),
        )
        .await;
    assert_eq!(status, 202);
    let p = wait_refund(&app, id).await;
    assert_eq!(p["status"], "canceled");
    assert_eq!(p["refunds"][0]["status"], "succeeded");
    assert!(p["refunds"][0]["aid"].as_str().unwrap().starts_with('A'));
    let order = app
        .kakaopay_order(p["tid"].as_str().unwrap(), generation)
        .await;
    assert_eq!(order.status, OrderStatus::CancelPayment);
}
both_backends!(refund_committed_then_dropped, generations);

/// A refund made at KakaoPay behind the ledger's back is found by `sync` and recorded.
async fn sync_learns_unknown_refunds(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let p = app.paid(5000).await;
    let id = p["id"].as_str().unwrap();
    let credentials = match generation {
        Generation::Open => kakaopay::Credentials::secret_key("x"),
        Generation::Legacy => kakaopay::Credentials::admin_key("x"),
    };
    let kakao = kakaopay::Client::builder(credentials)
        .base_url(format!("{}/sandbox", app.base))
        .build()
        .unwrap();
    kakao
        .cancel(&kakaopay::CancelRequest::new(
            "TC0ONETIME".parse().unwrap(),
            p["tid"].as_str().unwrap().parse().unwrap(),
            kakaopay::Amount::new(2000).unwrap(),
            kakaopay::Amount::ZERO,
        ))
        .await
        .unwrap();
    let (status, p) = app
        .post(&format!("/api/v1/payments/{id}/sync"), json!({}))
        .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["status"], "partially_canceled");
    assert_eq!(p["canceled_amount"], 2000);
    assert_eq!(
        p["refunds"][0]["reason"],
        "found at KakaoPay by reconciliation"
    );
}
both_backends!(sync_learns_unknown_refunds);

async fn wait_refund(app: &TestApp, id: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let p = app.payment(id).await;
        if p["refund_in_progress"] == false {
            return p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "refund never settled: {p}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Two instances on one PostgreSQL and one KakaoPay: duplicate callbacks spread over both approve
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_approve_once() {
    let sandbox = kakaopay_sandbox::spawn(kakaopay_sandbox::SandboxConfig::default())
        .await
        .unwrap();
    let scratch = Scratch::new(Backend::Postgres).await;
    let mut ca = config(&scratch, Generation::Open);
    ca.kakaopay_url = Some(sandbox.base_url());
    let mut cb = ca.clone();
    cb.listen = "127.0.0.1:0".parse().unwrap();
    let second = Scratch::new(Backend::Sqlite).await;
    let a = TestApp::start(scratch, ca).await;
    let b = TestApp::start(second, {
        cb.database_url = Some(a.scratch.url.clone());
        cb
    })
    .await;
    let p = a.create(30_000).await;
    let id = p["id"].as_str().unwrap().to_owned();
    let token = sandbox.authorize(p["tid"].as_str().unwrap()).unwrap();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let base = if i % 2 == 0 {
                a.base.clone()
            } else {
                b.base.clone()
            };
            let url = format!("{base}/pay/{id}/approve?pg_token={token}");
            let http = a.http.clone();
            tokio::spawn(async move { http.get(url).send().await.unwrap().status().as_u16() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let p = b.wait_for(&id, "approved").await;
    let client = kakaopay::Client::builder(kakaopay::Credentials::secret_key("x"))
        .base_url(sandbox.base_url())
        .build()
        .unwrap();
    let order = client
        .order(&kakaopay::OrderRequest::new(
            "TC0ONETIME".parse().unwrap(),
            p["tid"].as_str().unwrap().parse().unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(order.payment_action_details.len(), 1);
    assert_eq!(
        a.events(&id)
            .await
            .iter()
            .filter(|e| e["cause"] == "approve_claimed")
            .count(),
        1
    );
}

/// KakaoPay no longer knows the TID (here: the sandbox evicted it): the unpaid payment expires
/// instead of being looked up forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tid_kakaopay_forgot_expires() {
    let sandbox = kakaopay_sandbox::spawn(kakaopay_sandbox::SandboxConfig {
        payment_ttl: chrono::Duration::milliseconds(300),
        retention: std::time::Duration::from_millis(200),
        ..Default::default()
    })
    .await
    .unwrap();
    let app = TestApp::spawn_with(Backend::Sqlite, Generation::Open, |c| {
        c.kakaopay_url = Some(sandbox.base_url());
        c.payment_ttl = std::time::Duration::from_millis(300);
    })
    .await;
    let p = app.create(1000).await;
    let p = app.wait_for(p["id"].as_str().unwrap(), "expired").await;
    assert_eq!(p["failure"]["code"], "-721", "{p}");
}
