//! `kpay listen` and `kpay trigger` with the real binary: a triggered payment's events reach a
//! local handler through `listen`, signed with the secret it printed, one line per event.

mod common;
use common::hooks::Hooks;
use common::*;
use std::time::{Duration, Instant};

const KEY: &str = "kpay_sk_listen_test_0123456789ab";

#[test]
fn listen_forwards_what_trigger_makes_happen() {
    let dir = scratch();
    let listen = format!("127.0.0.1:{}", free_port());
    let server = format!("http://{listen}");
    let mut serve = Running::start(
        &[
            "serve",
            "--listen",
            &listen,
            "--api-key",
            KEY,
            "--no-shop",
            "--data-dir",
            "data",
        ],
        &dir,
    );
    serve.expect("listening on");
    let (hooks, url) = Hooks::start(0);
    let mut listener = Running::start(
        &[
            "listen",
            "--server",
            &server,
            "--api-key",
            KEY,
            "--forward-to",
            &url,
        ],
        &dir,
    );
    let ready = listener.expect("signing secret");
    let secret = ready
        .split_whitespace()
        .find(|w| w.starts_with("whsec_"))
        .expect("the secret is printed")
        .to_owned();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kpay"))
        .args([
            "trigger",
            "refund.succeeded",
            "--server",
            &server,
            "--api-key",
            KEY,
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        printed.contains("approved") && printed.contains("partially_canceled"),
        "{printed}"
    );
    // payment.approved, refund.succeeded and payment.partially_canceled, each on its own line.
    for kind in [
        "payment.approved",
        "refund.succeeded",
        "payment.partially_canceled",
    ] {
        let line = listener.expect(kind);
        assert!(line.contains("evt_") && line.ends_with("[200]"), "{line}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while hooks.got.lock().unwrap().len() < 3 {
        assert!(
            Instant::now() < deadline,
            "the handler got {:?}",
            hooks.got.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = kpay_webhooks::Secret::parse(&secret).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for (id, ts, sig, body) in hooks.got.lock().unwrap().iter() {
        kpay_webhooks::verify(&[&s], id, ts, sig, body.as_bytes(), now)
            .expect("signed with the printed secret");
        let event: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(event["id"], id.as_str());
    }
    // A wrong key is a clear error, not a silent loop.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kpay"))
        .args([
            "listen",
            "--server",
            &server,
            "--api-key",
            "kpay_sk_wrong_wrong_wrong_0000",
            "--forward-to",
            &url,
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kpay"))
        .args([
            "trigger",
            "subscription.renewed",
            "--server",
            &server,
            "--api-key",
            KEY,
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot trigger"));
    kill9(&mut listener);
    kill9(&mut serve);
    let _ = std::fs::remove_dir_all(&dir);
}
