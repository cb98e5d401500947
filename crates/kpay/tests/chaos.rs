//! The chaos suite, short: `kpay chaos` with a fixed seed, three instances on a PostgreSQL of its
//! own (SIGKILLs every few seconds, one PostgreSQL restart), and one instance on SQLite. The full
//! 10,000-payment run and how to reproduce a failing seed: RELIABILITY.md.

use std::process::Command;

fn chaos(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kpay"))
        .arg("chaos")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the chaos run failed:\n{stdout}\n{stderr}"
    );
    stdout
}

fn verdict(out: &str) -> &str {
    out.lines()
        .find(|l| l.starts_with("chaos: "))
        .unwrap_or_else(|| panic!("no verdict line in:\n{out}"))
}

#[test]
fn three_instances_on_postgres_with_kills_and_a_restart() {
    let out = chaos(&[
        "--seed",
        "20261122",
        "--payments",
        "250",
        "--instances",
        "3",
        "--kill-every",
        "2-4",
        "--pg-restarts",
        "1",
        "--converge-timeout",
        "60",
    ]);
    let line = verdict(&out);
    assert!(line.ends_with("PASS"), "{line}");
    assert!(
        line.contains(
            ", 0 lost, 0 phantom, 0 doubled, 0 refund mismatches, 0 stuck, 0 other violations"
        ),
        "{line}"
    );
    assert!(
        line.contains("1 pg restarts"),
        "PostgreSQL was restarted during the run: {line}"
    );
    assert!(!line.contains(" 0 kills"), "instances were killed: {line}");
}

#[test]
fn one_instance_on_sqlite_with_kills() {
    let out = chaos(&[
        "--seed",
        "7",
        "--payments",
        "120",
        "--database",
        "sqlite",
        "--kill-every",
        "3-5",
        "--converge-timeout",
        "60",
    ]);
    let line = verdict(&out);
    assert!(line.ends_with("PASS"), "{line}");
    assert!(
        !line.contains(" 0 kills"),
        "the instance was killed: {line}"
    );
}
