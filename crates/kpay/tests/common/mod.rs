//! The `kpay` binary as a process: start it, read its output, talk to it with curl, kill it.
#![allow(dead_code)]

pub mod hooks;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    pub fn start(args: &[&str], dir: &std::path::Path) -> Running {
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
    pub fn expect(&mut self, needle: &str) -> String {
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

    pub fn terminate(mut self) -> (bool, Vec<String>) {
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

pub fn scratch() -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("kpay-cli-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn get(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap_or(0), body.to_owned())
}

pub fn post_json(url: &str, auth: Option<&str>, body: &str) -> serde_json::Value {
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

/// A request with curl: (HTTP status, JSON body). Status 0: no answer (connection closed).
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut args = vec![
        "-s".to_owned(),
        "--max-time".into(),
        "20".into(),
        "-X".into(),
        method.into(),
        url.into(),
        "-w".into(),
        "\n%{http_code}".into(),
    ];
    for (name, value) in headers {
        args.push("-H".into());
        args.push(format!("{name}: {value}"));
    }
    if let Some(b) = body {
        args.extend([
            "-H".into(),
            "Content-Type: application/json".into(),
            "-d".into(),
            b.into(),
        ]);
    }
    let out = Command::new("curl").args(&args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// SIGKILL, and wait for the process to be gone.
pub fn kill9(running: &mut Running) {
    Command::new("kill")
        .arg("-KILL")
        .arg(running.child.id().to_string())
        .status()
        .unwrap();
    let _ = running.child.wait();
}
