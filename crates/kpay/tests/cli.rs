//! The `kpay` binary as users run it: default start, printed URLs and key, graceful stop on
//! SIGTERM, one-line errors for bad configuration, `kpay reconcile`, `kpay sandbox`.

mod common;
use common::*;
use std::process::Command;

#[test]
fn serve_with_nothing_configured_works_at_once() {
    let dir = scratch();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut serve = Running::start(&["serve", "--listen", &listen], &dir);
    serve.expect(&format!("listening on http://{listen}"));
    serve.expect("/sandbox");
    let key_line = serve.expect("API key");
    let key = key_line
        .split_whitespace()
        .find(|w| w.starts_with("kpay_sk_"))
        .unwrap()
        .to_owned();
    assert_eq!(
        std::fs::read_to_string(dir.join("kpay-data/api-key"))
            .unwrap()
            .trim(),
        key
    );
    assert!(
        dir.join("kpay-data/kpay.db").exists(),
        "SQLite in ./kpay-data"
    );
    let (code, _) = get(&format!("http://{listen}/healthz"));
    assert_eq!(code, 200);
    let (code, body) = get(&format!("http://{listen}/readyz"));
    assert_eq!(code, 200, "{body}");
    // A payment through the merchant API with the printed key.
    let out = Command::new("curl")
        .args([
            "-s",
            "-X",
            "POST",
            &format!("http://{listen}/api/v1/payments"),
            "-H",
            &format!("Authorization: Bearer {key}"),
            "-d",
            r#"{"partner_user_id":"u","item_name":"초코파이","quantity":1,"total_amount":2200}"#,
        ])
        .output()
        .unwrap();
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["status"], "ready", "{created}");

    // One reconciliation pass by hand, against the running server's sandbox.
    let out = Command::new(env!("CARGO_BIN_EXE_kpay"))
        .args(["reconcile", "--listen", &listen])
        .current_dir(&dir)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("payments checked"), "{report}");

    let (ok, seen) = serve.terminate();
    assert!(ok, "SIGTERM stops cleanly: {seen:?}");
    assert!(seen.iter().any(|l| l.contains("stopped")), "{seen:?}");

    // The second start keeps the key and does not print it again.
    let mut again = Running::start(&["serve", "--listen", &listen], &dir);
    again.expect("listening on");
    again.expect("/sandbox");
    let (ok, seen) = again.terminate();
    assert!(ok);
    assert!(
        !seen.iter().any(|l| l.contains("kpay_sk_")),
        "the key is printed once: {seen:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_configuration_exits_with_a_one_line_reason() {
    let dir = scratch();
    let cases: [(&[&str], &str); 5] = [
        (
            &["serve", "--database-url", "mysql://localhost/x"],
            "unsupported database URL",
        ),
        (&["serve", "--public-url", "ftp://x"], "--public-url"),
        (&["serve", "--cid", "SHORT"], "--cid"),
        (
            &["serve", "--kakaopay-url", "https://pay.example.com"],
            "KAKAOPAY_SECRET_KEY is required",
        ),
        (&["serve", "--listen", "not-an-address"], "invalid value"),
    ];
    for (args, needle) in cases {
        assert_cmd::Command::cargo_bin("kpay")
            .unwrap()
            .args(args)
            .current_dir(&dir)
            .env("RUST_LOG", "off")
            .assert()
            .failure()
            .stderr(predicates::str::contains(needle));
    }
    // A blank KakaoPay key used to mean "no key", and so the public built-in sandbox.
    for (var, value) in [
        ("KAKAOPAY_SECRET_KEY", " "),
        ("KAKAOPAY_SECRET_KEY", ""),
        ("KAKAOPAY_ADMIN_KEY", "\t"),
        ("KPAY_API_KEY", "  "),
        ("KAKAOPAY_SECRET_KEY", "DEVSECRET-with-a-newline\n"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_kpay"))
            .arg("serve")
            .current_dir(&dir)
            .env("RUST_LOG", "off")
            .env(var, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{var}={value:?} must not start");
        assert!(stderr.contains(var), "{stderr}");
        assert!(
            !stderr.contains("DEVSECRET"),
            "the value is never printed: {stderr}"
        );
    }
    // A taken port.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_kpay"))
        .args(["serve", "--listen", &addr])
        .current_dir(&dir)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sandbox_runs_standalone() {
    let dir = scratch();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut sandbox = Running::start(&["sandbox", "--listen", &listen], &dir);
    sandbox.expect(&format!("listening on http://{listen}"));
    sandbox.expect("/test/v1/");
    let out = Command::new("curl")
        .args(["-s", "-X", "POST", &format!("http://{listen}/online/v1/payment/ready"), "-H", "Authorization: SECRET_KEY k", "-H", "Content-Type: application/json", "-d",
            r#"{"cid":"TC0ONETIME","partner_order_id":"o","partner_user_id":"u","item_name":"i","quantity":1,"total_amount":1000,"tax_free_amount":0,"approval_url":"http://a/a","cancel_url":"http://a/c","fail_url":"http://a/f"}"#])
        .output()
        .unwrap();
    let ready: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(ready["tid"].as_str().unwrap().starts_with('T'));
    let (ok, seen) = sandbox.terminate();
    assert!(ok, "{seen:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn help_lists_every_command() {
    let kpay = || assert_cmd::Command::cargo_bin("kpay").unwrap();
    let out = kpay().arg("--help").assert().success();
    let help = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    for cmd in ["serve", "sandbox", "reconcile", "bench"] {
        assert!(help.contains(cmd), "{help}");
    }
    let out = kpay().args(["serve", "--help"]).assert().success();
    let help = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    for flag in [
        "--listen",
        "KPAY_LISTEN",
        "--database-url",
        "DATABASE_URL",
        "--kakaopay-url",
        "KAKAOPAY_BASE_URL",
        "--kakaopay-api",
        "KAKAOPAY_SECRET_KEY",
        "KAKAOPAY_ADMIN_KEY",
        "--cid",
        "KAKAOPAY_CID",
        "--api-key",
        "KPAY_API_KEY",
        "--public-url",
        "KPAY_PUBLIC_URL",
    ] {
        assert!(help.contains(flag), "serve --help lacks {flag}");
    }
}
