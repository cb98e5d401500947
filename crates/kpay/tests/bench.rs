//! The benchmarks as a smoke run (a handful of operations, no timings asserted): they run
//! against a real `kpay serve` and their own exactly-once checks hold.

mod common;
use common::*;
use std::process::Command;

#[test]
fn bench_renewals_charges_every_subscription_exactly_once() {
    let dir = scratch();
    let listen = format!("127.0.0.1:{}", free_port());
    let key = "kpay_sk_bench_smoke_0123456789";
    let mut serve = Running::start(&["serve", "--listen", &listen, "--api-key", key], &dir);
    serve.expect("listening on");
    let out = Command::new(env!("CARGO_BIN_EXE_kpay"))
        .args([
            "bench",
            "renewals",
            "--url",
            &format!("http://{listen}"),
            "--api-key",
            key,
            "--subscriptions",
            "40",
            "--concurrency",
            "8",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("40 subscriptions registered"), "{report}");
    assert!(
        report.contains("ledger 0 wrong, KakaoPay 0 charged twice, 0 not charged"),
        "{report}"
    );
    // The server saw them too: 40 periods paid by renewal.
    let (_, metrics) = get(&format!("http://{listen}/metrics"));
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("kpay_subscription_charges_total{outcome=\"succeeded\"} 40")),
        "{metrics}"
    );
    let (ok, _) = serve.terminate();
    assert!(ok);
    let _ = std::fs::remove_dir_all(dir);
}
