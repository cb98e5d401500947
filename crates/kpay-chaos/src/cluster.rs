//! The processes of a run: a PostgreSQL cluster of the run's own (so that restarting it disturbs
//! nothing else on the machine), a `kpay sandbox`, and the `kpay serve` instances, which the chaos
//! monkey kills with SIGKILL and starts again. All are children of this process and die with it.

use crate::http::{API_KEY, Http};
use crate::{ChaosError, Database};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

/// The servers' KakaoPay timeout in the run, in seconds: short, so that delays past it are cheap.
const KAKAOPAY_TIMEOUT: u64 = 2;
/// The servers' grace period: longer than the longest delay the sandbox injects (KakaoPay finishes
/// or gives up on a request within it), so "not applied" is believed only when it is true.
const UNKNOWN_GRACE: u64 = 5;
/// The injected delay past the timeout, in milliseconds.
const SLOW_MS: u64 = 3_000;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ChaosError {
    let what = what.into();
    move |source| ChaosError::Io { what, source }
}

fn free_port() -> Result<u16, ChaosError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    Ok(l.local_addr().map_err(io("finding a free port"))?.port())
}

/// Spawns `program args` with its output appended to `log`; killed when dropped.
fn spawn(program: &Path, args: &[String], log: &Path) -> Result<Child, ChaosError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io(format!("opening {}", log.display())))?;
    let err = file.try_clone().map_err(io("log file"))?;
    Command::new(program)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .map_err(io(format!("starting {}", program.display())))
}

/// Waits until `url` answers 200 (20 s at most).
async fn wait_ready(http: &Http, url: &str, what: &str) -> Result<(), ChaosError> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((200, _)) = http.get(url).await {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(ChaosError::Process(format!(
                "{what} did not become ready at {url}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A PostgreSQL cluster in the run's directory, run as the `postgres` user when this is root.
#[derive(Debug)]
pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Postgres {
    fn find_bin() -> Option<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|d| d.join("pg_ctl").exists())
            .collect();
        dirs.sort();
        dirs.pop()
    }

    fn command(&self, tool: &str, args: &[&str]) -> std::process::Command {
        let program = self.bin.join(tool);
        if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program).args(args);
            c
        } else {
            let mut c = std::process::Command::new(program);
            c.args(args);
            c
        }
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<(), ChaosError> {
        let out = self
            .command(tool, args)
            .stdin(Stdio::null())
            .output()
            .map_err(io(format!("running {tool}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(ChaosError::Process(format!(
                "{tool} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    /// Creates and starts a cluster with a `kpay` database.
    fn start_new(work: &Path) -> Result<Postgres, ChaosError> {
        let bin = Self::find_bin().ok_or_else(|| {
            ChaosError::Process(
                "PostgreSQL's server programs (pg_ctl, initdb under /usr/lib/postgresql/*/bin) are not installed; install postgresql or run with --database sqlite".into(),
            )
        })?;
        let data = work.join("pgdata");
        // PostgreSQL refuses to run as root: then it runs as the `postgres` user.
        let as_postgres = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        std::fs::create_dir_all(&data).map_err(io("creating the PostgreSQL directory"))?;
        if as_postgres {
            let ok = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(work)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return Err(ChaosError::Process(format!(
                    "chown postgres {} failed",
                    work.display()
                )));
            }
        }
        let pg = Postgres {
            bin,
            port: free_port()?,
            data,
            as_postgres,
        };
        let data = pg.data.display().to_string();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )?;
        pg.start()?;
        pg.run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
                "-U",
                "postgres",
                "kpay",
            ],
        )?;
        Ok(pg)
    }

    fn start(&self) -> Result<(), ChaosError> {
        let data = self.data.display().to_string();
        let log = self.data.join("postgres.log").display().to_string();
        let options = format!(
            "-p {} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=200",
            self.port
        );
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60", "start",
            ],
        )
    }

    /// An immediate stop: no checkpoint, every connection cut; the next start recovers from WAL,
    /// as after a crash.
    fn crash(&self) -> Result<(), ChaosError> {
        let data = self.data.display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/kpay", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.crash();
    }
}

/// One `kpay serve`.
#[derive(Debug)]
struct Instance {
    args: Vec<String>,
    log: PathBuf,
    base: String,
    child: Option<Child>,
}

/// Everything a run talks to.
#[derive(Debug)]
pub struct Cluster {
    /// The HTTP client.
    pub http: Http,
    /// The sandbox's base URL (its test helpers under `/test/v1`).
    pub sandbox: String,
    kpay: PathBuf,
    _sandbox_child: Child,
    postgres: Option<Postgres>,
    instances: Vec<Mutex<Instance>>,
    bases: Vec<String>,
    up: Vec<AtomicBool>,
    next: AtomicUsize,
}

impl Cluster {
    /// Starts the database, the sandbox and `instances` servers.
    pub async fn start(
        kpay: &Path,
        work: &Path,
        database: Database,
        instances: usize,
    ) -> Result<Cluster, ChaosError> {
        let http = Http::new();
        let postgres = match database {
            Database::Postgres => Some(Postgres::start_new(work)?),
            Database::Sqlite => None,
        };
        let database_url = match &postgres {
            Some(pg) => pg.url(),
            None => format!("sqlite://{}", work.join("kpay.db").display()),
        };
        let sandbox_port = free_port()?;
        let sandbox = format!("http://127.0.0.1:{sandbox_port}");
        let sandbox_child = spawn(
            kpay,
            &[
                "sandbox".into(),
                "--listen".into(),
                format!("127.0.0.1:{sandbox_port}"),
                // Keep every payment for the checks at the end.
                "--retention".into(),
                "86400".into(),
            ],
            &work.join("sandbox.log"),
        )?;
        wait_ready(&http, &format!("{sandbox}/test/v1/faults"), "the sandbox").await?;
        let mut list = Vec::new();
        for i in 0..instances {
            let port = free_port()?;
            let args: Vec<String> = [
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--database-url",
                &database_url,
                "--database-max-connections",
                "8",
                "--data-dir",
                &work.join(format!("instance-{i}")).display().to_string(),
                "--kakaopay-url",
                &sandbox,
                "--api-key",
                API_KEY,
                "--kakaopay-timeout",
                &KAKAOPAY_TIMEOUT.to_string(),
                "--unknown-grace",
                &UNKNOWN_GRACE.to_string(),
                "--reconcile-interval",
                "1",
                "--no-shop",
            ]
            .map(str::to_owned)
            .to_vec();
            list.push(Mutex::new(Instance {
                args,
                log: work.join(format!("instance-{i}.log")),
                base: format!("http://127.0.0.1:{port}"),
                child: None,
            }));
        }
        let mut cluster = Cluster {
            http,
            sandbox,
            kpay: kpay.to_owned(),
            _sandbox_child: sandbox_child,
            postgres,
            up: (0..instances).map(|_| AtomicBool::new(false)).collect(),
            bases: Vec::new(),
            instances: list,
            next: AtomicUsize::new(0),
        };
        for inst in &cluster.instances {
            let base = inst.lock().await.base.clone();
            cluster.bases.push(base);
        }
        for i in 0..instances {
            cluster.start_instance(i).await?;
        }
        Ok(cluster)
    }

    async fn start_instance(&self, i: usize) -> Result<(), ChaosError> {
        let mut inst = self.instances[i].lock().await;
        inst.child = Some(spawn(&self.kpay, &inst.args, &inst.log)?);
        let health = format!("{}/healthz", inst.base);
        // While PostgreSQL restarts, a start can fail: try again.
        for _ in 0..5 {
            if wait_ready(&self.http, &health, "kpay serve").await.is_ok() {
                self.up[i].store(true, Ordering::Release);
                return Ok(());
            }
            if let Some(c) = inst.child.as_mut()
                && let Ok(Some(_)) = c.try_wait()
            {
                inst.child = Some(spawn(&self.kpay, &inst.args, &inst.log)?);
            }
        }
        Err(ChaosError::Process(format!(
            "kpay serve did not start; see {}",
            inst.log.display()
        )))
    }

    async fn kill_instance(&self, i: usize) {
        self.up[i].store(false, Ordering::Release);
        let mut inst = self.instances[i].lock().await;
        if let Some(mut c) = inst.child.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }

    /// A live instance's base URL (round robin), as a load balancer in front of them would pick.
    pub fn base(&self) -> Option<String> {
        let n = self.up.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.up[i].load(Ordering::Acquire))
            .map(|i| self.bases[i].clone())
    }

    /// `url` (a callback URL built from one instance's address) sent to a live instance instead.
    pub fn through_balancer(&self, url: &str) -> Option<String> {
        let base = url::Url::parse(&self.base()?).ok()?;
        let mut u = url::Url::parse(url).ok()?;
        u.set_port(base.port()).ok()?;
        Some(u.to_string())
    }

    /// Every instance's log file.
    pub async fn logs(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for inst in &self.instances {
            out.push(inst.lock().await.log.clone());
        }
        out
    }

    /// The sandbox misbehaves on every endpoint, at rates drawn from the seed.
    pub async fn inject_faults(&self, seed: u64) -> Result<(), ChaosError> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0xFA17);
        let mut jitter = |p: f64| p * rng.random_range(0.7..1.3);
        let mut faults: Vec<Value> = Vec::new();
        for endpoint in ["approve", "cancel", "order", "ready"] {
            faults
                .push(json!({"endpoint": endpoint, "action": "drop", "probability": jitter(0.05)}));
            faults.push(json!({"endpoint": endpoint, "action": "delay", "delay_ms": SLOW_MS, "probability": jitter(0.02)}));
            faults.push(json!({"endpoint": endpoint, "action": "error", "error_code": -500, "http_status": 500, "probability": jitter(0.02)}));
            if endpoint != "order" {
                faults.push(json!({"endpoint": endpoint, "action": "commit_then_drop", "probability": jitter(0.05)}));
                faults.push(json!({"endpoint": endpoint, "action": "commit_then_error", "error_code": -500, "http_status": 500, "probability": jitter(0.03)}));
            }
        }
        faults.push(json!({"endpoint": "approve", "action": "error", "method_result_code": "USER_LOCKED", "probability": jitter(0.01)}));
        faults.push(json!({"endpoint": "approve", "action": "commit_then_error", "method_result_code": "BANK_FIRM_UNKNOWN", "probability": jitter(0.01)}));
        faults.push(json!({"endpoint": "cancel", "action": "commit_then_error", "error_code": -781, "method_result_code": "BANK_FIRM_UNKNOWN", "probability": jitter(0.01)}));
        for f in faults {
            match self
                .http
                .post_plain(&format!("{}/test/v1/faults", self.sandbox), &f)
                .await
            {
                Ok((200, _)) => {}
                other => {
                    return Err(ChaosError::Process(format!(
                        "the sandbox refused fault {f}: {other:?}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Every fault off.
    pub async fn clear_faults(&self) {
        let _ = self
            .http
            .send(
                reqwest::Method::DELETE,
                &format!("{}/test/v1/faults", self.sandbox),
                false,
                None,
                None,
            )
            .await;
    }

    /// Starts every instance that is down.
    pub async fn all_up(&self) -> Result<(), ChaosError> {
        if let Some(pg) = &self.postgres {
            // A restart may have been cut short: make sure it runs.
            let _ = pg.start();
        }
        for i in 0..self.instances.len() {
            if !self.up[i].load(Ordering::Acquire) {
                self.start_instance(i).await?;
            }
        }
        Ok(())
    }

    /// Stops everything (SIGKILL: nothing of interest is left to flush).
    pub async fn shutdown(&self) {
        for i in 0..self.instances.len() {
            self.kill_instance(i).await;
        }
    }
}

/// Kills a random instance every `every` seconds (drawn in the range) and starts it again after
/// a moment; restarts PostgreSQL `pg_restarts` times at moments drawn from the seed. Runs until
/// `stop`; returns how many PostgreSQL restarts it made.
pub async fn chaos_monkey(
    cluster: Arc<Cluster>,
    seed: u64,
    every: (f64, f64),
    pg_restarts: usize,
    stop: Arc<AtomicBool>,
    kills: Arc<AtomicUsize>,
) -> usize {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x6B11);
    let started = Instant::now();
    // PostgreSQL restarts after about 10 s, then every 30 s.
    let mut pg_due: Vec<Duration> = (0..pg_restarts)
        .map(|k| {
            Duration::from_secs(8 + 30 * k as u64)
                + Duration::from_millis(rng.random_range(0..4000))
        })
        .collect();
    pg_due.reverse();
    let mut restarted = 0;
    let mut next_kill = if every.0 > 0.0 {
        Some(started + Duration::from_secs_f64(rng.random_range(every.0..=every.1)))
    } else {
        None
    };
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = Instant::now();
        if let (Some(due), Some(pg)) = (pg_due.last(), &cluster.postgres)
            && now - started >= *due
        {
            pg_due.pop();
            if pg.crash().is_ok() {
                tokio::time::sleep(Duration::from_millis(rng.random_range(1000..3000))).await;
                match pg.start() {
                    Ok(()) => restarted += 1,
                    Err(e) => eprintln!("kpay chaos: PostgreSQL did not start again: {e}"),
                }
            }
        }
        if let Some(at) = next_kill
            && now >= at
        {
            let i = rng.random_range(0..cluster.instances.len());
            if cluster.up[i].load(Ordering::Acquire) {
                cluster.kill_instance(i).await;
                kills.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
                if let Err(e) = cluster.start_instance(i).await {
                    eprintln!("kpay chaos: {e}");
                }
            }
            next_kill =
                Some(Instant::now() + Duration::from_secs_f64(rng.random_range(every.0..=every.1)));
        }
    }
    restarted
}
