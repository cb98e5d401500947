//! Faults, magic inputs and the worst real case: KakaoPay applies an approve or cancel but the
//! merchant never sees the answer.

mod common;
use common::*;
use kakaopay::*;
use serde_json::json;
use std::time::{Duration, Instant};

async fn authorized(env: &Env, client: &Client, user: &str) -> (Tid, ApproveRequest) {
    let ready = client
        .ready(
            &ready_req("TC0ONETIME", "order-1", user, 1000)
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let token = env.authorize(&ready.tid, "CARD").await;
    let req = ApproveRequest::new(
        cid(),
        ready.tid.clone(),
        "order-1".parse().unwrap(),
        user.parse().unwrap(),
        token,
    );
    (ready.tid, req)
}

#[tokio::test]
async fn error_fault_answers_and_applies_nothing() {
    let env = env().await;
    for generation in GENERATIONS {
        let client = env.client(generation);
        let (tid, req) = authorized(&env, &client, "user-1").await;
        env.fault(json!({"endpoint":"approve","action":"error","error_code":-780,"http_status":400,"method_result_code":"USER_LOCKED"})).await;
        let e = client.approve(&req).await.unwrap_err();
        assert_eq!(code(&e), -780);
        assert_eq!(
            e.api().unwrap().method_result_code.as_deref(),
            Some("USER_LOCKED")
        );
        assert!(e.may_have_applied());
        assert_eq!(order(&client, &tid).await.status, OrderStatus::AuthPassword);
        // count defaults to 1: the next approve goes through.
        client.approve(&req).await.unwrap();
    }
}

#[tokio::test]
async fn drop_fault_closes_the_connection_without_applying() {
    let env = env().await;
    for generation in GENERATIONS {
        let client = env.client(generation);
        let (tid, req) = authorized(&env, &client, "user-1").await;
        env.fault(json!({"endpoint":"approve","action":"drop"}))
            .await;
        let e = client.approve(&req).await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::Transport {
                    kind: TransportKind::Reset,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.may_have_applied());
        assert_eq!(order(&client, &tid).await.status, OrderStatus::AuthPassword);
    }
}

#[tokio::test]
async fn commit_then_drop_applies_the_approve_and_loses_the_answer() {
    let env = env().await;
    for generation in GENERATIONS {
        let client = env.client(generation);
        let (tid, req) = authorized(&env, &client, "user-1").await;
        env.fault(json!({"endpoint":"approve","action":"commit_then_drop"}))
            .await;
        let e = client.approve(&req).await.unwrap_err();
        assert!(e.may_have_applied(), "{e}");
        // The lookup tells the truth: paid.
        let o = order(&client, &tid).await;
        assert_eq!(o.status, OrderStatus::SuccessPayment);
        assert_eq!(o.payment_action_details.len(), 1);

        env.fault(json!({"endpoint":"cancel","action":"commit_then_error","http_status":500,"error_code":-500})).await;
        let e = client.cancel(&cancel_req(&tid, 400, 0)).await.unwrap_err();
        assert_eq!(code(&e), -500);
        assert!(e.may_have_applied());
        let o = order(&client, &tid).await;
        assert_eq!(o.status, OrderStatus::PartCancelPayment);
        assert_eq!(o.canceled_amount.unwrap().total, won(400));

        env.fault(json!({"endpoint":"cancel","action":"commit_then_drop"}))
            .await;
        assert!(
            client
                .cancel(&cancel_req(&tid, 600, 0))
                .await
                .unwrap_err()
                .may_have_applied()
        );
        assert_eq!(
            order(&client, &tid).await.status,
            OrderStatus::CancelPayment
        );
    }
}

#[tokio::test]
async fn delayed_approve_makes_a_concurrent_duplicate_get_785() {
    let env = env().await;
    let client = env.client(Generation::Open);
    let (tid, req) = authorized(&env, &client, "user-1").await;
    env.fault(json!({"endpoint":"approve","action":"delay","delay_ms":400}))
        .await;
    let slow = {
        let client = client.clone();
        let req = req.clone();
        tokio::spawn(async move { client.approve(&req).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let e = client.approve(&req).await.unwrap_err();
    assert_eq!(code(&e), -785);
    assert!(e.may_have_applied());
    let started = Instant::now();
    slow.await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        order(&client, &tid).await.status,
        OrderStatus::SuccessPayment
    );
}

#[tokio::test]
async fn faults_on_other_endpoints_counts_probability_and_clearing() {
    let env = env().await;
    let client = env.client(Generation::Legacy);
    env.fault(json!({"endpoint":"ready","action":"error","count":2}))
        .await;
    for _ in 0..2 {
        let e = client
            .ready(&ready_req("TC0ONETIME", "o", "u", 1000).build().unwrap())
            .await
            .unwrap_err();
        assert_eq!(code(&e), -500);
        assert_eq!(e.api().unwrap().status, 500);
        assert!(e.is_retryable());
    }
    client
        .ready(&ready_req("TC0ONETIME", "o", "u", 1000).build().unwrap())
        .await
        .unwrap();

    // probability 1 without count: every call until cleared.
    env.fault(json!({"endpoint":"*","action":"error","error_code":-503,"http_status":503,"probability":1.0})).await;
    for _ in 0..3 {
        let e = client
            .ready(&ready_req("TC0ONETIME", "o", "u", 1000).build().unwrap())
            .await
            .unwrap_err();
        assert_eq!(code(&e), -503);
    }
    let resp = env
        .http
        .delete(format!("{}/test/v1/faults", env.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["cleared"], 1);
    client
        .ready(&ready_req("TC0ONETIME", "o", "u", 1000).build().unwrap())
        .await
        .unwrap();

    // probability 0 never hits.
    env.fault(json!({"endpoint":"order","action":"drop","probability":0.0}))
        .await;
    let (tid, _) = paid(&env, &client, 1000, "CARD").await;
    order(&client, &tid).await;

    // Bad fault specs are refused with 400.
    for bad in [
        json!({"endpoint":"nope","action":"error"}),
        json!({"endpoint":"ready","action":"error","probability":2.0}),
        json!({"endpoint":"ready"}),
    ] {
        let (status, body) = env.helper("/test/v1/faults", Some(bad)).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error"]["message"].is_string());
    }
}

#[tokio::test]
async fn lookups_recover_from_a_dropped_connection_by_retrying() {
    let env = env().await;
    let client = Client::builder(Credentials::secret_key("key"))
        .base_url(env.base())
        .retry_policy(RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(10),
        })
        .build()
        .unwrap();
    let (tid, _) = paid(&env, &client, 1000, "CARD").await;
    env.fault(json!({"endpoint":"order","action":"drop","count":1}))
        .await;
    assert_eq!(
        order(&client, &tid).await.status,
        OrderStatus::SuccessPayment
    );
}

#[tokio::test]
async fn magic_partner_user_ids() {
    let env = env().await;
    for generation in GENERATIONS {
        let client = env.client(generation);
        // USER_LOCKED: refused, nothing applied.
        let (tid, req) = authorized(&env, &client, "sandbox_user_locked-1").await;
        let e = client.approve(&req).await.unwrap_err();
        assert_eq!(code(&e), -780);
        assert_eq!(
            e.api().unwrap().method_result_code.as_deref(),
            Some("USER_LOCKED")
        );
        assert!(e.may_have_applied());
        assert_eq!(order(&client, &tid).await.status, OrderStatus::AuthPassword);

        // BANK_FIRM_UNKNOWN: applied, answered as unknown.
        let (tid, req) = authorized(&env, &client, "sandbox_bank_unknown-1").await;
        let e = client.approve(&req).await.unwrap_err();
        assert_eq!(
            e.api().unwrap().method_result_code.as_deref(),
            Some("BANK_FIRM_UNKNOWN")
        );
        assert!(e.may_have_applied());
        assert_eq!(
            order(&client, &tid).await.status,
            OrderStatus::SuccessPayment
        );

        // Declined: a definite failure.
        let (tid, req) = authorized(&env, &client, "sandbox_declined-1").await;
        let e = client.approve(&req).await.unwrap_err();
        assert_eq!(code(&e), -780);
        assert!(!e.may_have_applied());
        assert_eq!(order(&client, &tid).await.status, OrderStatus::FailPayment);
    }
}

#[tokio::test]
async fn settled_payments_are_evicted_after_the_retention() {
    let env = env_with(kakaopay_sandbox::SandboxConfig {
        retention: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let client = env.client(Generation::Open);
    let (paid_tid, _) = paid(&env, &client, 1000, "CARD").await;
    let pending = client
        .ready(&ready_req("TC0ONETIME", "o", "u", 1000).build().unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let e = client
        .order(&OrderRequest::new(cid(), paid_tid))
        .await
        .unwrap_err();
    assert_eq!(code(&e), -721);
    // A pending payment is kept until it expires.
    assert_eq!(
        order(&client, &pending.tid).await.status,
        OrderStatus::Ready
    );
    assert_eq!(env.sandbox.sandbox().store().payments.len(), 1);
}

/// A hostile advance used to overflow the clock, after which every request panicked: now it is
/// refused and the sandbox keeps answering.
#[tokio::test]
async fn hostile_clock_advances_are_refused_and_the_sandbox_keeps_working() {
    let env = env().await;
    for seconds in [json!(9_000_000_000_000_000_u64), json!(u64::MAX)] {
        let (status, body) = env
            .helper(
                "/test/v1/clock/advance",
                Some(json!({ "seconds": seconds })),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(body.to_string().contains("seconds"), "{body}");
    }
    // Ten-year moves add up to the hundred-year bound, then are refused too.
    let mut refused = false;
    for _ in 0..11 {
        let (status, _) = env
            .helper(
                "/test/v1/clock/advance",
                Some(json!({"seconds": 10 * 366 * 86_400})),
            )
            .await;
        refused |= status == 400;
    }
    assert!(refused, "the clock's total offset is bounded");
    for generation in GENERATIONS {
        let client = env.client(generation);
        let (tid, _) = paid(&env, &client, 1000, "CARD").await;
        assert_eq!(
            order(&client, &tid).await.status,
            OrderStatus::SuccessPayment
        );
    }
}

#[tokio::test]
async fn the_fault_registry_and_its_fields_are_bounded() {
    let env = env().await;
    let (status, body) = env
        .helper(
            "/test/v1/faults",
            Some(json!({"endpoint":"approve","action":"error","method_result_code":"X".repeat(40_000)})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("method_result_code"), "{body}");
    for _ in 0..kakaopay_sandbox::faults::MAX_FAULTS {
        env.fault(json!({"endpoint":"order","action":"delay","delay_ms":0,"count":1000}))
            .await;
    }
    let (status, body) = env
        .helper(
            "/test/v1/faults",
            Some(json!({"endpoint":"order","action":"delay"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("DELETE"), "{body}");
    let cleared = env
        .http
        .delete(format!("{}/test/v1/faults", env.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    env.fault(json!({"endpoint":"order","action":"delay"}))
        .await;
}
