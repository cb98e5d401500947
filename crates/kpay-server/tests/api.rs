//! The merchant API's contract: authentication, validation that names the field, idempotency,
//! listing, events, and the operations endpoints. Bad input is refused and stores nothing.
#![cfg(feature = "sandbox")]

mod common;
use common::*;
use kakaopay::Generation;
use reqwest::Method;
use serde_json::{Value, json};

async fn count_payments(app: &TestApp) -> usize {
    let (status, body) = app.get("/api/v1/payments?limit=100").await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().len()
}

async fn unauthenticated_and_malformed_requests(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let good =
        json!({"partner_user_id": "u", "item_name": "i", "quantity": 1, "total_amount": 1000});
    for key in [None, Some("wrong-key-0000000000000")] {
        let (status, body) = app
            .send(Method::POST, "/api/v1/payments", Some(good.clone()), key)
            .await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "unauthorized");
        let (status, _) = app
            .send(Method::GET, "/api/v1/payments/pay_x", None, key)
            .await;
        assert_eq!(status, 401);
    }
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"item_name": "i", "quantity": 1, "total_amount": 1000}),
            "partner_user_id",
        ),
        (
            json!({"partner_user_id": "u", "item_name": "i", "quantity": 1, "total_amount": -5}),
            "total_amount",
        ),
        (
            json!({"partner_user_id": "u", "item_name": "i", "quantity": 1, "total_amount": 0}),
            "total_amount",
        ),
        (
            json!({"partner_user_id": "u", "item_name": "i", "quantity": 1, "total_amount": 1000.5}),
            "total_amount",
        ),
        (
            json!({"partner_user_id": "u", "item_name": "i", "quantity": 1, "total_amount": "1000"}),
            "total_amount",
        ),
        (
            json!({"partner_user_id": "u", "item_name": "i", "quantity": 0, "total_amount": 1000}),
            "quantity",
        ),
        (
            json!({"partner_user_id": "u", "item_name": "", "quantity": 1, "total_amount": 1000}),
            "item_name",
        ),
        (
            json!({"partner_user_id": "u".repeat(101), "item_name": "i", "quantity": 1, "total_amount": 1000}),
            "partner_user_id",
        ),
        (
            json!({"partner_user_id": "u", "item_name": "i", "quantity": 1, "total_amount": 1000, "tax_free_amount": 1001}),
            "tax_free_amount",
        ),
        (
            json!({"partner_user_id": "u", "item_name": "i", "quantity": 1, "total_amount": 1000, "vat_amount": 1001}),
            "vat_amount",
        ),
        (
            json!({"partner_user_id": "u", "item_name": "i", "quantity": 1, "total_amount": 1000, "channel": "tv"}),
            "channel",
        ),
        (
            json!({"partner_user_id": "u", "item_name": "i", "quantity": 1, "total_amount": 1000, "return_url": "javascript:alert(1)"}),
            "return_url",
        ),
        (
            json!({"partner_user_id": "u", "item_name": "i", "quantity": 1, "total_amount": 1000, "amount": 5}),
            "amount",
        ),
    ];
    for (body, field) in cases {
        let (status, e) = app.post("/api/v1/payments", body.clone()).await;
        assert_eq!(status, 400, "{body} → {e}");
        assert_eq!(e["error"]["code"], "invalid_request", "{e}");
        assert_eq!(e["error"]["field"], field, "{body} → {e}");
    }
    // Not JSON, empty, too large.
    let raw = |body: &'static str| {
        app.http
            .post(format!("{}/api/v1/payments", app.base))
            .bearer_auth(API_KEY)
            .body(body)
            .send()
    };
    let resp = raw("{not json").await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_json"
    );
    assert_eq!(raw("").await.unwrap().status(), 400);
    let huge = "x".repeat(100_000);
    // Its own client: the server answers 413 without reading the body and closes the
    // connection, which must not go back to the shared pool.
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/payments", app.base))
        .bearer_auth(API_KEY)
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "body_too_large"
    );
    assert_eq!(count_payments(&app).await, 0, "nothing stored");
    // Unknown payment, bad list parameters.
    let (status, e) = app.get("/api/v1/payments/pay_doesnotexist").await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, e) = app.get("/api/v1/payments?status=paid").await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("status"))
    );
    let (status, e) = app.get("/api/v1/payments?limit=1000").await;
    assert_eq!((status, e["error"]["field"].as_str()), (400, Some("limit")));
    let (status, _) = app.get("/api/v1/payments?cursor=garbage").await;
    assert_eq!(status, 400);
    let (status, e) = app
        .post(
            "/api/v1/payments/pay_doesnotexist/cancel",
            json!({"amount": 1}),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    // Refunding an unpaid payment.
    let p = app.create(1000).await;
    let (status, e) = app
        .post(
            &format!("/api/v1/payments/{}/cancel", p["id"].as_str().unwrap()),
            json!({"amount": 1000}),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("not_refundable"))
    );
    let (status, e) = app
        .post(
            &format!("/api/v1/payments/{}/cancel", p["id"].as_str().unwrap()),
            json!({"amount": 0}),
        )
        .await;
    assert_eq!(status, 409, "{e}");
    // A callback without a pg_token.
    let (status, _, _) = app
        .browse(&format!(
            "{}/pay/{}/approve",
            app.base,
            p["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 400);
    let (status, _, _) = app
        .browse(&format!(
            "{}/pay/pay_unknown/approve?pg_token=abc",
            app.base
        ))
        .await;
    assert_eq!(status, 404);
}
both_backends!(unauthenticated_and_malformed_requests);

async fn idempotent_replays(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let body = json!({"partner_user_id": "u", "item_name": "커피 원두", "quantity": 1, "total_amount": 18_000});
    let send = |key: &'static str, body: Value| {
        app.http
            .post(format!("{}/api/v1/payments", app.base))
            .bearer_auth(API_KEY)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let first = send("order-42-attempt", body.clone()).await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = send("order-42-attempt", body.clone()).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(
        again["id"], first["id"],
        "the stored answer, not a second payment"
    );
    assert_eq!(count_payments(&app).await, 1);
    let other = send("order-42-attempt", json!({"partner_user_id": "u", "item_name": "커피 원두", "quantity": 2, "total_amount": 36_000})).await.unwrap();
    assert_eq!(other.status(), 422);
    assert_eq!(
        other.json::<Value>().await.unwrap()["error"]["code"],
        "idempotency_key_reused"
    );

    // While the first request is still running: 409.
    app.fault(json!({"endpoint": "ready", "action": "delay", "delay_ms": 700}))
        .await;
    let slow = tokio::spawn(send("slow-key", body.clone()));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let busy = send("slow-key", body.clone()).await.unwrap();
    assert_eq!(busy.status(), 409);
    assert_eq!(
        busy.json::<Value>().await.unwrap()["error"]["code"],
        "idempotency_key_in_use"
    );
    assert_eq!(slow.await.unwrap().unwrap().status(), 201);

    // Refunds too: a retried refund does not refund twice.
    let p = app.paid(10_000).await;
    let refund = |key: &'static str| {
        app.http
            .post(format!(
                "{}/api/v1/payments/{}/cancel",
                app.base,
                p["id"].as_str().unwrap()
            ))
            .bearer_auth(API_KEY)
            .header("Idempotency-Key", key)
            .json(&json!({"amount": 3000}))
            .send()
    };
    assert_eq!(refund("refund-1").await.unwrap().status(), 200);
    assert_eq!(refund("refund-1").await.unwrap().status(), 200);
    let p = app.payment(p["id"].as_str().unwrap()).await;
    assert_eq!(p["canceled_amount"], 3000);
    // A failed request (5xx: KakaoPay down) frees its key for a retry.
    app.fault(
        json!({"endpoint": "ready", "action": "error", "error_code": -503, "http_status": 503}),
    )
    .await;
    let down = send("retry-after-outage", body.clone()).await.unwrap();
    assert_eq!(down.status(), 502);
    assert_eq!(
        down.json::<Value>().await.unwrap()["error"]["kakaopay_code"],
        -503
    );
    assert_eq!(
        send("retry-after-outage", body.clone())
            .await
            .unwrap()
            .status(),
        201
    );
}
both_backends!(idempotent_replays);

async fn listing_paging_and_events(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let (status, p) = app
            .post("/api/v1/payments", json!({"partner_user_id": "u", "item_name": "상품", "quantity": 1, "total_amount": 1000 + i, "partner_order_id": format!("order-{i}")}))
            .await;
        assert_eq!(status, 201);
        ids.push(p["id"].as_str().unwrap().to_owned());
    }
    let paid = app.paid(2000).await;
    let (_, page1) = app.get("/api/v1/payments?limit=4").await;
    assert_eq!(page1["data"].as_array().unwrap().len(), 4);
    assert_eq!(page1["data"][0]["id"], paid["id"], "newest first");
    let cursor = page1["next_cursor"].as_str().unwrap().to_owned();
    let (_, page2) = app
        .get(&format!("/api/v1/payments?limit=4&cursor={cursor}"))
        .await;
    assert_eq!(page2["data"].as_array().unwrap().len(), 2);
    assert!(page2["next_cursor"].is_null());
    let all: Vec<Value> = page1["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["data"].as_array().unwrap())
        .cloned()
        .collect();
    assert_eq!(all.len(), 6);
    let (_, approved) = app.get("/api/v1/payments?status=approved").await;
    assert_eq!(approved["data"].as_array().unwrap().len(), 1);
    let (_, found) = app.get("/api/v1/payments?q=order-3").await;
    assert_eq!(found["data"][0]["partner_order_id"], "order-3");
    let (_, by_tid) = app
        .get(&format!(
            "/api/v1/payments?q={}",
            paid["tid"].as_str().unwrap()
        ))
        .await;
    assert_eq!(by_tid["data"][0]["id"], paid["id"]);
    let today = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).unwrap())
        .format("%Y-%m-%d")
        .to_string();
    let (_, dated) = app
        .get(&format!(
            "/api/v1/payments?from={today}&to={today}&limit=100"
        ))
        .await;
    assert_eq!(dated["data"].as_array().unwrap().len(), 6);
    let (_, before) = app.get("/api/v1/payments?to=2020-01-01").await;
    assert!(before["data"].as_array().unwrap().is_empty());

    let events = app.events(paid["id"].as_str().unwrap()).await;
    assert_eq!(events[0]["from"], Value::Null);
    assert_eq!(events[0]["to"], "ready");
    assert_eq!(events.last().unwrap()["to"], "approved");
    assert!(
        events
            .windows(2)
            .all(|w| w[0]["id"].as_i64() < w[1]["id"].as_i64()),
        "oldest first"
    );

    let (status, synced) = app
        .post(
            &format!("/api/v1/payments/{}/sync", paid["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(synced["status"], "approved");
}
both_backends!(listing_paging_and_events);

async fn operations_endpoints(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    app.paid(1000).await;
    let (status, body) = app.send(Method::GET, "/healthz", None, None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = app.send(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["database"], "ok");
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("kpay_payments{status=\"approved\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kpay_kakaopay_request_duration_seconds_count{operation=\"approve\"} 1")
    );
    assert!(metrics.contains("kpay_http_requests_total{"));
}
both_backends!(operations_endpoints);

/// Every route of the contract is in the generated OpenAPI document and is served.
async fn openapi_matches_the_served_routes(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let (status, doc) = app.send(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let expected = [
        ("post", "/api/v1/payments"),
        ("get", "/api/v1/payments"),
        ("get", "/api/v1/payments/{id}"),
        ("post", "/api/v1/payments/{id}/cancel"),
        ("get", "/api/v1/payments/{id}/events"),
        ("post", "/api/v1/payments/{id}/sync"),
        ("post", "/api/v1/subscriptions"),
        ("get", "/api/v1/subscriptions"),
        ("get", "/api/v1/subscriptions/{id}"),
        ("get", "/api/v1/subscriptions/{id}/charges"),
        ("get", "/api/v1/subscriptions/{id}/events"),
        ("post", "/api/v1/subscriptions/{id}/charge"),
        ("post", "/api/v1/subscriptions/{id}/cancel"),
        ("post", "/api/v1/subscriptions/{id}/sync"),
        ("post", "/api/v1/webhook_endpoints"),
        ("get", "/api/v1/webhook_endpoints"),
        ("get", "/api/v1/webhook_endpoints/{id}"),
        ("delete", "/api/v1/webhook_endpoints/{id}"),
        ("post", "/api/v1/webhook_endpoints/{id}/rotate_secret"),
        ("get", "/api/v1/events"),
        ("get", "/api/v1/events/{id}"),
        ("get", "/api/v1/events/{id}/deliveries"),
        ("post", "/api/v1/events/{id}/redeliver"),
        ("get", "/api/v1/webhook_endpoints/{id}/deliveries"),
        ("post", "/api/v1/webhook_endpoints/{id}/disable"),
        ("post", "/api/v1/webhook_endpoints/{id}/enable"),
        ("get", "/api/v1/test/clock"),
        ("post", "/api/v1/test/clock/advance"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
    ];
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        expected.len(),
        "every documented operation is listed here"
    );
    for (method, path) in expected {
        assert!(
            paths[path].get(method).is_some(),
            "{method} {path} is documented"
        );
        let url = path.replace("{id}", "pay_unknown");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let body = (method == Method::POST).then(|| json!({}));
        let (status, resp) = app.send(method.clone(), &url, body, Some(API_KEY)).await;
        let unrouted = resp["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("no route"));
        assert!(
            status != 405 && !unrouted,
            "{method} {url} is served ({status} {resp})"
        );
    }
    assert!(doc["components"]["schemas"]["PaymentView"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

both_backends!(openapi_matches_the_served_routes);

/// Shutdown finishes a request in flight.
async fn graceful_shutdown_finishes_in_flight_requests(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    app.fault(json!({"endpoint": "ready", "action": "delay", "delay_ms": 500}))
        .await;
    let http = app.http.clone();
    let url = format!("{}/api/v1/payments", app.base);
    let pending = tokio::spawn(async move {
        http.post(url)
            .bearer_auth(API_KEY)
            .json(&json!({"partner_user_id": "u", "item_name": "i", "quantity": 1, "total_amount": 1000}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let scratch = app.stop().await;
    assert_eq!(pending.await.unwrap(), 201);
    // The payment it created is in the database.
    let c = config(&scratch, generation);
    let app = TestApp::start(scratch, c).await;
    assert_eq!(count_payments(&app).await, 1);
}
both_backends!(graceful_shutdown_finishes_in_flight_requests);

/// A payment whose stored row is broken is answered as what it is — a 500 naming the row and
/// the column, for an operator — never as a guess, and never as "retry later".
async fn a_broken_row_is_reported_not_guessed(backend: Backend, generation: Generation) {
    let app = TestApp::spawn(backend, generation).await;
    let p = app.create(4400).await;
    let id = p["id"].as_str().unwrap();
    app.scratch
        .execute(&format!(
            "UPDATE payments SET status = 'paid_maybe' WHERE id = '{id}'"
        ))
        .await;
    let (status, body) = app.get(&format!("/api/v1/payments/{id}")).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "ledger_corrupt");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(id) && message.contains("status"),
        "{message}"
    );
    app.stop().await;
}
both_backends!(a_broken_row_is_reported_not_guessed);
