//! The test clock: "20 minutes later" in one call — the server's and the sandbox's clocks move
//! together and what became due has run by the answer. It exists only while KakaoPay is a sandbox.
#![cfg(feature = "sandbox")]

mod common;
use common::*;
use kakaopay::Generation;
use secrecy::SecretString;
use serde_json::json;

async fn an_unpaid_payment_expires_when_the_clock_passes_its_15_minutes(
    backend: Backend,
    generation: Generation,
) {
    let app = TestApp::spawn_with(backend, generation, |c| {
        // The automatic reconciler stays out of the way: the advance itself must settle it.
        c.reconcile_interval = std::time::Duration::from_secs(3600);
    })
    .await;
    let p = app.create(8800).await;
    let id = p["id"].as_str().unwrap();
    let (status, before) = app.get("/api/v1/test/clock").await;
    assert_eq!(status, 200, "{before}");
    let (status, after) = app
        .post("/api/v1/test/clock/advance", json!({"seconds": 14 * 60}))
        .await;
    assert_eq!(status, 200, "{after}");
    assert!(after["now"].as_str().unwrap() > before["now"].as_str().unwrap());
    assert_eq!(
        app.payment(id).await["status"],
        "ready",
        "still payable at 14 minutes"
    );
    let (status, settled) = app
        .post("/api/v1/test/clock/advance", json!({"seconds": 2 * 60}))
        .await;
    assert_eq!(status, 200, "{settled}");
    assert_eq!(settled["still_due"], 0, "everything due has run: {settled}");
    let p = app.payment(id).await;
    assert_eq!(p["status"], "expired", "{p}");
    assert!(app.causes(id).await.contains(&"expired".to_owned()));
    // Bad input names the field; 0 only brings the server level with the sandbox.
    let (status, err) = app
        .post(
            "/api/v1/test/clock/advance",
            json!({"seconds": 400_000_000}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (400, Some("seconds"))
    );
    let (status, level) = app
        .post("/api/v1/test/clock/advance", json!({"seconds": 0}))
        .await;
    assert_eq!(status, 200, "{level}");
    assert!(level["now"].as_str().unwrap() >= settled["now"].as_str().unwrap());
    app.stop().await;
}
both_backends!(an_unpaid_payment_expires_when_the_clock_passes_its_15_minutes);

#[tokio::test]
async fn with_a_real_kakaopay_there_is_no_test_clock() {
    let app = TestApp::spawn_with(Backend::Sqlite, Generation::Open, |c| {
        c.kakaopay_url = Some("https://open-api.kakaopay.com".into());
        c.secret_key = Some(SecretString::from("DEVSECRETKEY-not-used-here"));
    })
    .await;
    let (status, body) = app.get("/api/v1/test/clock").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = app
        .post("/api/v1/test/clock/advance", json!({"seconds": 60}))
        .await;
    assert_eq!(status, 404);
    app.stop().await;
}

/// The sandbox's clock is the reference: a server whose clock fell behind it (a move whose answer
/// was lost, a restart) is brought level by the next advance, even one of 0 seconds.
#[tokio::test]
async fn the_server_catches_up_with_the_sandbox() {
    let app = TestApp::spawn(Backend::Sqlite, Generation::Open).await;
    let (_, before) = app.get("/api/v1/test/clock").await;
    // Only the sandbox moves (as when the server's part of a move was lost).
    let (status, _) = app
        .sandbox("/clock/advance", Some(json!({"seconds": 3 * 86_400})))
        .await;
    assert_eq!(status, 200);
    let (status, level) = app
        .post("/api/v1/test/clock/advance", json!({"seconds": 0}))
        .await;
    assert_eq!(status, 200, "{level}");
    let day = |v: &serde_json::Value| v["now"].as_str().unwrap()[..10].to_owned();
    let moved = chrono::DateTime::parse_from_rfc3339(level["now"].as_str().unwrap()).unwrap()
        - chrono::DateTime::parse_from_rfc3339(before["now"].as_str().unwrap()).unwrap();
    assert!(
        moved.num_seconds() >= 3 * 86_400 - 2,
        "{} → {}",
        day(&before),
        day(&level)
    );
    app.stop().await;
}
