//! The `kpay` binary as users run it: default start, printed URLs and key, graceful stop on
//! SIGTERM, one-line errors for bad configuration, `kpay reconcile`, `kpay sandbox`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(args: &[&str], dir: &std::path::Path) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kpay"))
            .args(args)
            .current_dir(dir)
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `needle`.
    fn expect(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?}; saw {:?}", self.seen),
            }
        }
    }

    fn terminate(mut self) -> (bool, Vec<String>) {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        let rest: Vec<String> = self.lines.try_iter().collect();
        self.seen.extend(rest);
        (status.success(), self.seen)
    }
}

fn scratch() -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("kpay-cli-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap_or(0), body.to_owned())
}

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
        let out = Command::new(env!("CARGO_BIN_EXE_kpay"))
            .args(args)
            .current_dir(&dir)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
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
    let out = Command::new(env!("CARGO_BIN_EXE_kpay"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "sandbox", "reconcile", "bench"] {
        assert!(help.contains(cmd), "{help}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_kpay"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
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

fn post_json(url: &str, auth: Option<&str>, body: &str) -> serde_json::Value {
    let mut args = vec![
        "-s".to_owned(),
        "-X".into(),
        "POST".into(),
        url.into(),
        "-H".into(),
        "Content-Type: application/json".into(),
        "-d".into(),
        body.into(),
    ];
    if let Some(a) = auth {
        args.push("-H".into());
        args.push(format!("Authorization: {a}"));
    }
    let out = Command::new("curl").args(&args).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// The server is killed (SIGKILL) while an approve is in flight. After a restart the reconciler
/// finds the payment `approving`, looks it up, approves it again, and KakaoPay shows exactly one
/// payment: nothing is lost and nothing doubled.
#[test]
fn sigkill_during_approve_converges_after_restart() {
    let dir = scratch();
    let sandbox_listen = format!("127.0.0.1:{}", free_port());
    let mut sandbox = Running::start(&["sandbox", "--listen", &sandbox_listen], &dir);
    sandbox.expect("listening on");
    let kakaopay = format!("http://{sandbox_listen}");
    let listen = format!("127.0.0.1:{}", free_port());
    let key = "kpay_sk_sigkill_test_0123456789";
    let args = [
        "serve",
        "--listen",
        &listen,
        "--kakaopay-url",
        &kakaopay,
        "--api-key",
        key,
        "--unknown-grace",
        "1",
        "--reconcile-interval",
        "1",
        "--no-shop",
    ];
    let mut serve = Running::start(&args, &dir);
    serve.expect("listening on");

    let created = post_json(
        &format!("http://{listen}/api/v1/payments"),
        Some(&format!("Bearer {key}")),
        r#"{"partner_user_id":"u","item_name":"i","quantity":1,"total_amount":5000}"#,
    );
    let (id, tid) = (
        created["id"].as_str().unwrap().to_owned(),
        created["tid"].as_str().unwrap().to_owned(),
    );
    let auth = post_json(
        &format!("{kakaopay}/test/v1/payments/{tid}/authorize"),
        None,
        "{}",
    );
    let callback = auth["redirect_url"].as_str().unwrap().to_owned();
    // KakaoPay is slow: the approve is still in flight when the server dies.
    post_json(
        &format!("{kakaopay}/test/v1/faults"),
        None,
        r#"{"endpoint":"approve","action":"delay","delay_ms":3000}"#,
    );
    let mut buyer = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--max-time", "10", &callback])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    Command::new("kill")
        .arg("-KILL")
        .arg(serve.child.id().to_string())
        .status()
        .unwrap();
    let _ = serve.child.wait();
    let _ = buyer.wait();

    let mut again = Running::start(&args, &dir);
    again.expect("listening on");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let out = Command::new("curl")
            .args([
                "-s",
                &format!("http://{listen}/api/v1/payments/{id}"),
                "-H",
                &format!("Authorization: Bearer {key}"),
            ])
            .output()
            .unwrap();
        let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if p["status"] == "approved" || std::time::Instant::now() > deadline {
            break p["status"].clone();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status, "approved");
    let order = post_json(
        &format!("{kakaopay}/online/v1/payment/order"),
        Some("SECRET_KEY k"),
        &format!(r#"{{"cid":"TC0ONETIME","tid":"{tid}"}}"#),
    );
    assert_eq!(order["status"], "SUCCESS_PAYMENT");
    assert_eq!(
        order["payment_action_details"].as_array().unwrap().len(),
        1,
        "approved exactly once: {order}"
    );
    again.terminate();
    sandbox.terminate();
    let _ = std::fs::remove_dir_all(dir);
}
