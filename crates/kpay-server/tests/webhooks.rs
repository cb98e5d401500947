//! Webhook endpoints over the merchant API (contract §6), on SQLite and PostgreSQL: created
//! with a `whsec_` secret shown once (and usable with the Standard Webhooks verifier), listed
//! and read without it, rotated with the old secret's overlap, removed; every bad field named;
//! private and plain-http destinations refused unless in local development.
#![cfg(feature = "sandbox")]

mod common;
use common::*;
use kakaopay::Generation;
use serde_json::json;

/// The feed at `path` once it holds `n` events. On PostgreSQL the feed shows a transaction
/// once every older one in the cluster has ended (so nothing can appear behind a cursor):
/// other tests' transactions may hold the newest back for a moment.
async fn feed_of(app: &TestApp, path: &str, n: usize) -> serde_json::Value {
    for _ in 0..100 {
        let (status, feed) = app.get(path).await;
        assert_eq!(status, 200, "{feed}");
        if feed["data"].as_array().unwrap().len() >= n {
            return feed;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the feed {path} never held {n} events");
}

async fn endpoints_lifecycle(backend: Backend, generation: Generation) {
    let app = TestApp::spawn_with(backend, generation, |c| c.demo_shop = false).await;
    // A sandbox KakaoPay is local development: a loopback http receiver is fine.
    let (status, e) = app
        .post(
            "/api/v1/webhook_endpoints",
            json!({"url": "http://127.0.0.1:3000/hooks", "events": ["payment.approved", "refund.succeeded"], "description": "주문 처리"}),
        )
        .await;
    assert_eq!(status, 201, "{e}");
    let id = e["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("we_"), "{e}");
    assert_eq!(e["status"], "enabled");
    assert_eq!(e["events"], json!(["payment.approved", "refund.succeeded"]));
    let secret = e["secret"].as_str().unwrap().to_owned();
    let parsed = kpay_webhooks::Secret::parse(&secret).expect("a whsec_ secret");
    assert!(
        secret.starts_with("whsec_") && secret.len() >= 6 + 32,
        "{secret}"
    );
    // What the merchant's verifier accepts with it.
    let sig = kpay_webhooks::sign(&parsed, "evt_x", 1_700_000_000, b"{}");
    assert!(
        kpay_webhooks::verify(
            &[&parsed],
            "evt_x",
            "1700000000",
            &sig,
            b"{}",
            1_700_000_000
        )
        .is_ok()
    );

    // Read and listed without the secret; the secret is not stored in the clear either.
    let (status, got) = app.get(&format!("/api/v1/webhook_endpoints/{id}")).await;
    assert_eq!(status, 200, "{got}");
    assert!(got.get("secret").is_none(), "{got}");
    assert_eq!(got["description"], "주문 처리");
    let (_, list) = app.get("/api/v1/webhook_endpoints").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    assert!(!list.to_string().contains(&secret[6..]));
    let stored = app
        .scratch
        .query_text(&format!(
            "SELECT secret_sealed FROM webhook_endpoints WHERE id = '{id}'"
        ))
        .await;
    assert!(
        stored.starts_with("v1:") && !stored.contains(&secret[6..]),
        "{stored}"
    );

    // Defaults: every event type.
    let (status, all) = app
        .post(
            "/api/v1/webhook_endpoints",
            json!({"url": "https://shop.example.com/kpay"}),
        )
        .await;
    assert_eq!(status, 201, "{all}");
    assert_eq!(all["events"], json!(["*"]));

    // Rotation: a new secret, the old one still signing for 24 hours.
    let (status, rotated) = app
        .post(
            &format!("/api/v1/webhook_endpoints/{id}/rotate_secret"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert!(
        rotated["previous_secret_expires_at"].is_string(),
        "{rotated}"
    );

    // Removed: gone, and a second delete is a 404 naming the endpoint.
    let (status, _) = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/webhook_endpoints/{id}"),
            None,
            Some(API_KEY),
        )
        .await;
    assert_eq!(status, 204);
    let (status, err) = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/webhook_endpoints/{id}"),
            None,
            Some(API_KEY),
        )
        .await;
    assert_eq!(status, 404, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("webhook endpoint"),
        "{err}"
    );
    let (status, _) = app.get("/api/v1/webhook_endpoints/we_nope").await;
    assert_eq!(status, 404);
    // Without the API key: nothing.
    let (status, _) = app
        .send(
            reqwest::Method::GET,
            "/api/v1/webhook_endpoints",
            None,
            None,
        )
        .await;
    assert_eq!(status, 401);
    app.stop().await;
}
both_backends!(endpoints_lifecycle);

async fn bad_endpoints_name_the_field(backend: Backend, generation: Generation) {
    let app = TestApp::spawn_with(backend, generation, |c| c.demo_shop = false).await;
    for (body, field) in [
        (json!({}), None),
        (json!({"url": "not a url"}), Some("url")),
        (json!({"url": "ftp://shop.example.com/h"}), Some("url")),
        (
            json!({"url": "https://u:p@shop.example.com/h"}),
            Some("url"),
        ),
        (
            json!({"url": "https://shop.example.com/h", "events": []}),
            Some("events"),
        ),
        (
            json!({"url": "https://shop.example.com/h", "events": ["payment.paid"]}),
            Some("events"),
        ),
        (
            json!({"url": "https://shop.example.com/h", "events": ["*", "payment.approved"]}),
            Some("events"),
        ),
        (
            json!({"url": "https://shop.example.com/h", "description": "x".repeat(501)}),
            Some("description"),
        ),
        (
            json!({"url": "https://shop.example.com/h", "secret": "mine"}),
            None,
        ),
    ] {
        let (status, err) = app.post("/api/v1/webhook_endpoints", body.clone()).await;
        assert_eq!(status, 400, "{body} → {err}");
        if let Some(f) = field {
            assert_eq!(err["error"]["field"], f, "{body} → {err}");
        }
    }
    let (_, list) = app.get("/api/v1/webhook_endpoints").await;
    assert_eq!(list["data"], json!([]), "nothing was created");
    app.stop().await;
}
both_backends!(bad_endpoints_name_the_field);

/// With a real KakaoPay configured (never called here), a webhook may only go to a public
/// https host: the server must not become a probe of its own network.
#[tokio::test]
async fn production_refuses_private_and_plain_http_destinations() {
    let app = TestApp::spawn_with(Backend::Sqlite, Generation::Open, |c| {
        c.demo_shop = false;
        c.kakaopay_url = Some("https://open-api.kakaopay.com".into());
        c.secret_key = Some(secrecy::SecretString::from(
            "DEV0000000000000000000000000000000000000",
        ));
    })
    .await;
    for url in [
        "http://shop.example.com/hooks",
        "https://127.0.0.1/hooks",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.5/hooks",
        "https://[::1]/hooks",
        "https://localhost/hooks",
    ] {
        let (status, err) = app
            .post("/api/v1/webhook_endpoints", json!({ "url": url }))
            .await;
        assert_eq!(status, 400, "{url} → {err}");
        assert_eq!(err["error"]["field"], "url", "{err}");
    }
    let (status, ok) = app
        .post(
            "/api/v1/webhook_endpoints",
            json!({"url": "https://shop.example.com/hooks"}),
        )
        .await;
    assert_eq!(status, 201, "{ok}");
    app.stop().await;
}

/// Every payment change the merchant hears of writes its event with it: the object exactly as
/// `GET /api/v1/payments/{id}` shows it right after, its version growing; claims (a step of
/// one approval) write none. The feed pages oldest first by cursor and filters by type.
async fn payment_changes_write_their_events(backend: Backend, generation: Generation) {
    let app = TestApp::spawn_with(backend, generation, |c| c.demo_shop = false).await;
    let paid = app.paid(5000).await;
    let quit = app.create(3000).await;
    let (_, body) = app
        .sandbox(
            &format!("/payments/{}/quit", quit["tid"].as_str().unwrap()),
            None,
        )
        .await;
    app.browse(body["redirect_url"].as_str().unwrap()).await;
    let quit = app.payment(quit["id"].as_str().unwrap()).await;
    assert_eq!(quit["status"], "quit");

    let feed = feed_of(&app, "/api/v1/events", 2).await;
    let events = feed["data"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["payment.approved", "payment.quit"], "{feed}");
    // The object is the payment as the API shows it after the change (version included).
    let approved = &events[0];
    assert!(approved["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(approved["data"]["object"], paid, "{approved}");
    assert_eq!(events[1]["data"]["object"], quit);
    assert!(paid["version"].as_i64().unwrap() > 1, "{paid}");

    // One event by id; paging by cursor; filtering by type.
    let (status, one) = app
        .get(&format!(
            "/api/v1/events/{}",
            approved["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!((status, &one), (200, approved));
    let (_, first) = app.get("/api/v1/events?limit=1").await;
    assert_eq!(first["data"].as_array().unwrap().len(), 1);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = app
        .get(&format!("/api/v1/events?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(second["data"][0]["type"], "payment.quit", "{second}");
    let cursor = second["next_cursor"].as_str().unwrap();
    let (_, rest) = app.get(&format!("/api/v1/events?cursor={cursor}")).await;
    assert_eq!(rest["data"], serde_json::json!([]), "{rest}");
    let (_, only) = app.get("/api/v1/events?type=payment.quit").await;
    assert_eq!(only["data"].as_array().unwrap().len(), 1, "{only}");
    for (q, field) in [
        ("type=payment.paid", "type"),
        ("limit=0", "limit"),
        ("cursor=zzz", "cursor"),
    ] {
        let (status, err) = app.get(&format!("/api/v1/events?{q}")).await;
        assert_eq!(status, 400, "{q}: {err}");
        assert_eq!(err["error"]["field"], field, "{err}");
    }
    let (status, _) = app.get("/api/v1/events/evt_aaaaaaaaaaaaaaaaaaaa").await;
    assert_eq!(status, 404);
    app.stop().await;
}
both_backends!(payment_changes_write_their_events);

/// Refunds tell of themselves and of the payment's new status, each event with the payment as
/// `GET` shows it then (its refunds included); a refused refund tells only of itself.
async fn refunds_write_their_events(backend: Backend, generation: Generation) {
    let app = TestApp::spawn_with(backend, generation, |c| c.demo_shop = false).await;
    let paid = app.paid(10_000).await;
    let id = paid["id"].as_str().unwrap();
    let (status, body) = app
        .post(
            &format!("/api/v1/payments/{id}/cancel"),
            json!({"amount": 4000, "reason": "부분 반품"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let after_partial = app.payment(id).await;
    let (status, body) = app
        .post(
            &format!("/api/v1/payments/{id}/cancel"),
            json!({"amount": 6000, "reason": "전액"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let after_full = app.payment(id).await;
    assert_eq!(after_full["status"], "canceled");

    let feed = feed_of(&app, "/api/v1/events", 5).await;
    let events = feed["data"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "payment.approved",
            "refund.succeeded",
            "payment.partially_canceled",
            "refund.succeeded",
            "payment.canceled"
        ],
        "{feed}"
    );
    assert_eq!(events[2]["data"]["object"], after_partial, "{}", events[2]);
    assert_eq!(events[4]["data"]["object"], after_full, "{}", events[4]);
    assert_eq!(
        events[4]["data"]["object"]["refunds"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let versions: Vec<i64> = events
        .iter()
        .map(|e| e["data"]["object"]["version"].as_i64().unwrap())
        .collect();
    assert!(versions.windows(2).all(|w| w[0] <= w[1]), "{versions:?}");
    app.stop().await;
}
both_backends!(refunds_write_their_events);

/// A subscription's life as events: activated, renewed, a refused renewal (payment_failed and
/// past_due), canceled — each with the subscription as `GET` shows it then.
async fn subscription_changes_write_their_events(backend: Backend, generation: Generation) {
    let app = TestApp::spawn_with(backend, generation, |c| {
        c.demo_shop = false;
        c.reconcile_interval = std::time::Duration::from_secs(3600);
    })
    .await;
    let (status, s) = app
        .post("/api/v1/subscriptions", json!({"partner_user_id": "hook-1", "item_name": "월간 커피 구독", "amount": 9900, "interval": "month"}))
        .await;
    assert_eq!(status, 201, "{s}");
    let id = s["id"].as_str().unwrap().to_owned();
    let p = app
        .payment(s["registration_payment_id"].as_str().unwrap())
        .await;
    let callback = app.authorize(&p).await;
    app.browse(&callback).await;
    let advance = |secs: i64| {
        let app = &app;
        async move {
            let (status, b) = app
                .post("/api/v1/test/clock/advance", json!({ "seconds": secs }))
                .await;
            assert_eq!(status, 200, "{b}");
        }
    };
    advance(32 * 86_400).await;
    let renewed = app.get(&format!("/api/v1/subscriptions/{id}")).await.1;
    app.fault(json!({"endpoint":"subscription","action":"error","error_code":-782,"count":1}))
        .await;
    advance(31 * 86_400).await;
    let (status, canceled) = app
        .post(&format!("/api/v1/subscriptions/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200, "{canceled}");
    let canceled = app.get(&format!("/api/v1/subscriptions/{id}")).await.1;

    let feed = feed_of(&app, "/api/v1/events?limit=100", 7).await;
    let subs: Vec<&serde_json::Value> = feed["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("subscription."))
        .collect();
    let types: Vec<&str> = subs.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "subscription.activated",
            "subscription.renewed",
            "subscription.payment_failed",
            "subscription.past_due",
            "subscription.canceled"
        ],
        "{feed}"
    );
    assert_eq!(subs[1]["data"]["object"], renewed, "{}", subs[1]);
    // Canceled as it was then: KakaoPay's inactivation of the SID came after, a later version.
    let at_cancel = &subs[4]["data"]["object"];
    assert_eq!(at_cancel["status"], "canceled");
    assert_eq!(at_cancel["cancel_reason"], canceled["cancel_reason"]);
    assert!(at_cancel["inactivated_at"].is_null() && canceled["inactivated_at"].is_string());
    assert!(
        at_cancel["version"].as_i64() < canceled["version"].as_i64(),
        "{at_cancel} {canceled}"
    );
    assert!(
        subs.iter()
            .all(|e| e["data"]["object"]["id"] == id.as_str())
    );
    // Renewal payments tell of themselves too (as payments).
    assert!(
        feed["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "payment.approved")
            .count()
            >= 1
    );
    app.stop().await;
}
both_backends!(subscription_changes_write_their_events);
