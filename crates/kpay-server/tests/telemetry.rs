//! Following a payment through the logs: every request has an id (the caller's `X-Request-Id`
//! when sane, else a new one), answered in the header and in error bodies, and every log line of
//! the request and of the payment's background work names the request or the payment.
#![cfg(feature = "sandbox")]

mod common;
use common::*;
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test]
async fn request_ids_and_payment_ids_follow_a_payment() {
    let logs = Logs::default();
    let writer = logs.clone();
    // This test binary is its own process: the subscriber sees the server's worker threads.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let app = TestApp::spawn(Backend::Sqlite, kakaopay::Generation::Open).await;

    // The caller's id comes back and names every line of the request.
    let resp = app
        .http
        .post(format!("{}/api/v1/payments", app.base))
        .bearer_auth(API_KEY)
        .header("x-request-id", "shop-req-42")
        .json(&json!({"partner_user_id": "u1", "item_name": "쿠키", "quantity": 1, "total_amount": 5500}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "shop-req-42");
    let payment: serde_json::Value = resp.json().await.unwrap();
    let id = payment["id"].as_str().unwrap().to_owned();
    let created: Vec<_> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains("payment created"))
        .collect();
    assert_eq!(created.len(), 1, "{created:?}");
    assert!(
        created[0].contains("shop-req-42") && created[0].contains(&id),
        "the line names the request and the payment: {}",
        created[0]
    );

    // A forged id (spaces, too long) is replaced by a new one; errors carry the id too.
    let resp = app
        .http
        .get(format!("{}/api/v1/payments/pay_nope", app.base))
        .bearer_auth(API_KEY)
        .header("x-request-id", "x".repeat(100))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let header = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(header.starts_with("req_") && header.len() <= 64, "{header}");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["request_id"], header.as_str());

    // The payment's story across the callback and the approve: one grep by its id.
    let callback = app.authorize(&payment).await;
    let (status, _, _) = app.browse(&callback).await;
    assert_eq!(status, 200);
    let story: Vec<_> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains(&id))
        .collect();
    assert!(
        story.iter().any(|l| l.contains("payment approved")),
        "{story:#?}"
    );
    app.stop().await;
}
