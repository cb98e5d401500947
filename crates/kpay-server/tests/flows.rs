//! End to end over HTTP against the built-in sandbox, on both databases and both KakaoPay
//! generations: approve, quit, fail, expiry, refunds, duplicate callbacks, mismatches.
#![cfg(feature = "sandbox")]

mod common;
use common::*;
use kakaopay::{Generation, OrderStatus};
use serde_json::json;

async fn create_authorize_callback_approved(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let p = app.create(11_000).await;
    assert_eq!(p["status"], "ready");
    assert_eq!(
        p["amount"],
        json!({"total": 11000, "tax_free": 0, "vat": 1000, "green_deposit": 0})
    );
    assert!(
        p["redirect_url"].as_str().unwrap().ends_with("/info"),
        "pc channel by default: {p}"
    );
    let id = p["id"].as_str().unwrap();
    let callback = app.authorize(&p).await;
    assert!(callback.starts_with(&format!("{}/pay/{id}/approve?pg_token=", app.base)));
    let (status, _, page) = app.browse(&callback).await;
    assert_eq!(status, 200);
    assert!(page.contains("결제가 완료되었습니다"), "receipt page");
    assert!(page.contains("11,000원"));
    let p = app.payment(id).await;
    assert_eq!(p["status"], "approved");
    assert!(p["aid"].as_str().unwrap().starts_with('A'));
    assert_eq!(p["cancelable_amount"], 11000);
    assert_eq!(p["payment_method_type"], "CARD");
    assert!(p["approved_at"].is_string());
    // A refresh of the callback changes nothing and shows the same receipt.
    let (status, _, page) = app.browse(&callback).await;
    assert_eq!(status, 200);
    assert!(page.contains(p["aid"].as_str().unwrap()));
    let events: Vec<String> = app.causes(id).await;
    assert_eq!(events, ["created", "approve_claimed", "approved"]);
    let order = app
        .kakaopay_order(p["tid"].as_str().unwrap(), generation)
        .await;
    assert_eq!(order.status, OrderStatus::SuccessPayment);
    assert_eq!(order.payment_action_details.len(), 1);
}
both_backends!(create_authorize_callback_approved, generations);

async fn buyer_quits_or_fails(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let p = app.create(5000).await;
    let (_, body) = app
        .sandbox(
            &format!("/payments/{}/quit", p["tid"].as_str().unwrap()),
            None,
        )
        .await;
    let (status, _, page) = app.browse(body["redirect_url"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert!(page.contains("결제를 취소했습니다"));
    assert_eq!(
        app.payment(p["id"].as_str().unwrap()).await["status"],
        "quit"
    );

    let p = app.create(5000).await;
    let (_, body) = app
        .sandbox(
            &format!("/payments/{}/fail", p["tid"].as_str().unwrap()),
            None,
        )
        .await;
    let (_, _, page) = app.browse(body["redirect_url"].as_str().unwrap()).await;
    assert!(page.contains("결제에 실패했습니다"));
    let p = app.payment(p["id"].as_str().unwrap()).await;
    assert_eq!(p["status"], "failed");
    assert_eq!(p["failure"]["code"], "FAIL_AUTH_PASSWORD");

    // A forged cancel callback (the buyer never quit) changes nothing.
    let p = app.create(5000).await;
    let id = p["id"].as_str().unwrap();
    let (status, _, _) = app.browse(&format!("{}/pay/{id}/cancel", app.base)).await;
    assert_eq!(status, 200);
    assert_eq!(app.payment(id).await["status"], "ready");
}
both_backends!(buyer_quits_or_fails, generations);

/// The sandbox clock runs past 15 minutes: a late approve gets -723 and the payment expires; a
/// buyer sent to fail_url by the expired page finds the payment waiting for the server's clock.
async fn expiry_via_the_sandbox_clock(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let p = app.create(3000).await;
    let id = p["id"].as_str().unwrap();
    let callback = app.authorize(&p).await;
    let (status, _) = app
        .sandbox("/clock/advance", Some(json!({"seconds": 16 * 60})))
        .await;
    assert_eq!(status, 200);
    // A late approval callback: KakaoPay refuses with -723, the payment expires.
    let (status, _, page) = app.browse(&callback).await;
    assert_eq!(status, 200);
    assert!(page.contains("만료"), "{page}");
    let p = app.payment(id).await;
    assert_eq!(p["status"], "expired");
    let causes: Vec<_> = app.causes(id).await;
    assert!(causes.contains(&"expired".to_owned()), "{causes:?}");

    // A buyer still on the page: it says expired and leads to fail_url. The order is still
    // pending at KakaoPay, and a fail callback can be forged: the payment stays `ready` until the
    // server's own 15 minutes are over (the reconciler then expires it).
    let q = app.create(3000).await;
    app.sandbox("/clock/advance", Some(json!({"seconds": 16 * 60})))
        .await;
    let (_, _, page) = app.browse(q["redirect_url"].as_str().unwrap()).await;
    assert!(page.contains("만료"));
    let fail_url = format!("{}/pay/{}/fail", app.base, q["id"].as_str().unwrap());
    assert!(
        page.contains(&fail_url),
        "the expired page links to fail_url"
    );
    let (_, _, page) = app.browse(&fail_url).await;
    assert!(page.contains("결제가 아직 완료되지 않았습니다"), "{page}");
    assert_eq!(
        app.payment(q["id"].as_str().unwrap()).await["status"],
        "ready"
    );
}
both_backends!(expiry_via_the_sandbox_clock, generations);

/// The buyer never comes back: the reconciler expires the payment once its time is over.
async fn reconciler_expires_abandoned_payments(backend: Backend, generation: Generation) {
    let app = TestApp::spawn_with(backend, generation, |c| {
        c.payment_ttl = std::time::Duration::from_millis(500)
    })
    .await;
    let p = app.create(1000).await;
    let p = app.wait_for(p["id"].as_str().unwrap(), "expired").await;
    assert_eq!(p["failure"]["message"], "not paid within 15 minutes");
}
both_backends!(reconciler_expires_abandoned_payments);

async fn partial_and_full_refunds(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let p = app.paid(33_000).await;
    let id = p["id"].as_str().unwrap();
    let (status, p) = app
        .post(
            &format!("/api/v1/payments/{id}/cancel"),
            json!({"amount": 11_000, "reason": "부분 반품"}),
        )
        .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["status"], "partially_canceled");
    assert_eq!(p["canceled_amount"], 11_000);
    assert_eq!(p["cancelable_amount"], 22_000);
    assert_eq!(p["canceled"]["vat"], 1000);
    let refund = &p["refunds"][0];
    assert_eq!(refund["status"], "succeeded");
    assert!(refund["aid"].as_str().unwrap().starts_with('A'));
    assert_eq!(refund["reason"], "부분 반품");

    // More than what is left: refused, nothing changes.
    let (status, e) = app
        .post(
            &format!("/api/v1/payments/{id}/cancel"),
            json!({"amount": 22_001}),
        )
        .await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["error"]["field"], "amount");

    let (status, p) = app
        .post(
            &format!("/api/v1/payments/{id}/cancel"),
            json!({"amount": 22_000}),
        )
        .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["status"], "canceled");
    assert_eq!(
        p["canceled"],
        json!({"total": 33000, "tax_free": 0, "vat": 3000, "green_deposit": 0})
    );
    assert_eq!(p["cancelable_amount"], 0);
    assert_eq!(p["refunds"].as_array().unwrap().len(), 2);

    let (status, e) = app
        .post(
            &format!("/api/v1/payments/{id}/cancel"),
            json!({"amount": 1}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(e["error"]["code"], "not_refundable");

    // KakaoPay agrees, to the won.
    let order = app
        .kakaopay_order(p["tid"].as_str().unwrap(), generation)
        .await;
    assert_eq!(order.status, OrderStatus::CancelPayment);
    assert_eq!(order.canceled_amount.unwrap().total.won(), 33_000);
    assert_eq!(order.canceled_amount.unwrap().vat.won(), 3000);
    let causes: Vec<_> = app.causes(id).await;
    assert_eq!(
        causes,
        [
            "created",
            "approve_claimed",
            "approved",
            "refund_requested",
            "refunded_part",
            "refund_requested",
            "refunded_full"
        ]
    );
}
both_backends!(partial_and_full_refunds, generations);

/// Refunds of a tax-free split order, with explicit parts.
async fn tax_free_split_refunds(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let (status, p) = app
        .post("/api/v1/payments", json!({"partner_user_id": "u", "item_name": "도서와 문구", "quantity": 2, "total_amount": 22_000, "tax_free_amount": 11_000}))
        .await;
    assert_eq!(status, 201);
    assert_eq!(p["amount"]["vat"], 1000);
    let callback = app.authorize(&p).await;
    app.browse(&callback).await;
    let id = p["id"].as_str().unwrap();
    let (status, p) = app
        .post(
            &format!("/api/v1/payments/{id}/cancel"),
            json!({"amount": 11_000, "tax_free_amount": 11_000, "vat_amount": 0}),
        )
        .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["canceled"]["tax_free"], 11_000);
    // The rest must be the taxable part: a refund claiming tax-free is refused.
    let (status, e) = app
        .post(
            &format!("/api/v1/payments/{id}/cancel"),
            json!({"amount": 5000, "tax_free_amount": 1}),
        )
        .await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["error"]["field"], "tax_free_amount");
    let (status, p) = app
        .post(
            &format!("/api/v1/payments/{id}/cancel"),
            json!({"amount": 11_000}),
        )
        .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(
        p["canceled"],
        json!({"total": 22000, "tax_free": 11000, "vat": 1000, "green_deposit": 0})
    );
}
both_backends!(tax_free_split_refunds);

/// 50 concurrent duplicate callbacks: exactly one approve reaches KakaoPay.
async fn concurrent_duplicate_callbacks_approve_once(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let p = app.create(20_000).await;
    let callback = app.authorize(&p).await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let http = app.http.clone();
            let url = callback.clone();
            tokio::spawn(async move { http.get(url).send().await.unwrap().status().as_u16() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let id = p["id"].as_str().unwrap();
    let p = app.wait_for(id, "approved").await;
    let order = app
        .kakaopay_order(p["tid"].as_str().unwrap(), generation)
        .await;
    assert_eq!(
        order.payment_action_details.len(),
        1,
        "one approve at KakaoPay"
    );
    let claims = app
        .events(id)
        .await
        .iter()
        .filter(|e| e["cause"] == "approve_claimed")
        .count();
    assert_eq!(claims, 1);
}
both_backends!(concurrent_duplicate_callbacks_approve_once);

/// KakaoPay approved an amount other than the order's: cancelled at once, and why is recorded.
async fn amount_mismatch_is_canceled(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let p = app.create(10_000).await;
    let id = p["id"].as_str().unwrap();
    // The ledger now says 9,000 (a bug or tampering between ready and approve).
    tamper(&app, id, 9000).await;
    let callback = app.authorize(&p).await;
    let (status, _, page) = app.browse(&callback).await;
    assert_eq!(status, 200);
    assert!(page.contains("취소"), "{page}");
    let p = app.payment(id).await;
    assert_eq!(p["status"], "canceled");
    assert_eq!(p["failure"]["code"], "amount_mismatch");
    assert!(
        p["failure"]["message"].as_str().unwrap().contains("10000"),
        "{p}"
    );
    let order = app
        .kakaopay_order(p["tid"].as_str().unwrap(), generation)
        .await;
    assert_eq!(order.status, OrderStatus::CancelPayment);
    let causes: Vec<_> = app.causes(id).await;
    assert!(
        causes.contains(&"amount_mismatch".to_owned())
            && causes.contains(&"amount_mismatch_canceled".to_owned()),
        "{causes:?}"
    );
}
both_backends!(amount_mismatch_is_canceled);

async fn tamper(app: &TestApp, id: &str, total: i64) {
    let sql = "UPDATE payments SET amount_total = $1, amount_vat = $2 WHERE id = $3";
    let vat = (2 * total + 11) / 22;
    if app.scratch.url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(&app.scratch.url).await.unwrap();
        sqlx::query(sql)
            .bind(total)
            .bind(vat)
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
    } else {
        let pool = sqlx::PgPool::connect(&app.scratch.url).await.unwrap();
        sqlx::query(sql)
            .bind(total)
            .bind(vat)
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
    }
}

/// The return_url gets the buyer back with the payment id and status.
async fn return_url_redirects(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let (status, p) = app
        .post("/api/v1/payments", json!({"partner_user_id": "u", "item_name": "머그컵", "quantity": 1, "total_amount": 9000, "channel": "mobile", "return_url": "https://shop.example/orders/77?from=pay"}))
        .await;
    assert_eq!(status, 201);
    assert!(p["redirect_url"].as_str().unwrap().ends_with("/mInfo"));
    let callback = app.authorize(&p).await;
    let (status, location, _) = app.browse(&callback).await;
    assert_eq!(status, 303);
    assert_eq!(
        location.unwrap(),
        format!(
            "https://shop.example/orders/77?from=pay&payment_id={}&status=approved",
            p["id"].as_str().unwrap()
        )
    );
}
both_backends!(return_url_redirects);

/// Concurrent refunds never exceed the paid amount: one runs at a time, the others are told to
/// retry, and every won refunded is accounted for at KakaoPay too.
async fn concurrent_refunds_never_exceed_the_payment(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let p = app.paid(10_000).await;
    let id = p["id"].as_str().unwrap().to_owned();
    let mut refunded = 0;
    for _round in 0..6 {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let http = app.http.clone();
                let url = format!("{}/api/v1/payments/{id}/cancel", app.base);
                tokio::spawn(async move {
                    let resp = http
                        .post(url)
                        .bearer_auth(API_KEY)
                        .json(&json!({"amount": 1500}))
                        .send()
                        .await
                        .unwrap();
                    let status = resp.status().as_u16();
                    (status, resp.json::<serde_json::Value>().await.unwrap())
                })
            })
            .collect();
        for t in tasks {
            let (status, body) = t.await.unwrap();
            match status {
                200 => refunded += 1500,
                409 => assert!(
                    ["refund_in_progress", "not_refundable"]
                        .contains(&body["error"]["code"].as_str().unwrap()),
                    "{body}"
                ),
                400 => assert_eq!(body["error"]["field"], "amount", "{body}"),
                other => panic!("unexpected {other}: {body}"),
            }
        }
    }
    let p = app.payment(&id).await;
    assert_eq!(p["canceled_amount"], refunded);
    assert!(refunded <= 10_000);
    assert_eq!(
        refunded, 9000,
        "six refunds of 1,500 fit, a seventh does not"
    );
    let order = app
        .kakaopay_order(p["tid"].as_str().unwrap(), generation)
        .await;
    assert_eq!(order.canceled_amount.unwrap().total.won(), refunded);
}
both_backends!(concurrent_refunds_never_exceed_the_payment);
