//! Chaos runs of the payment stack, reproducible from a seed: `kpay chaos`.
//!
//! A run starts a `kpay sandbox` whose every endpoint misbehaves now and then (answers dropped
//! before or after applying, errors after applying, delays past the client's timeout, USER_LOCKED,
//! BANK_FIRM_UNKNOWN), several `kpay serve` instances on one PostgreSQL of its own (or one instance
//! on SQLite), and buyers and merchants that pay, quit, fail, double-click, reload, refund (partial,
//! full, "the rest") and retry with the same Idempotency-Key on every error. Meanwhile it SIGKILLs
//! and restarts random instances and restarts PostgreSQL (an immediate stop: crash recovery).
//! Then the faults stop, and it waits for the ledger to converge and checks it against the
//! sandbox's own records (see [`check`] for the invariants).
//!
//! What the seed fixes: every payment's amount, scenario and refunds, the fault mix, the kill
//! and restart schedule. What it cannot fix: the timing of real processes, so a failing seed is
//! rerun to reproduce a *class* of interleavings, not an exact one (RELIABILITY.md).
//!
//! Modules: [`cluster`] runs the processes, [`buyer`] plays one payment's buyer and merchant,
//! [`check`] judges, [`http`] is the little HTTP the others share.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod buyer;
pub mod check;
pub mod cluster;
pub mod http;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Which database the instances share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Database {
    /// A PostgreSQL cluster of the run's own (several instances, restarted during the run).
    Postgres,
    /// One SQLite file (one instance).
    Sqlite,
}

/// `kpay chaos` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct ChaosArgs {
    /// The seed (default: a random one, printed).
    #[arg(long, env = "KPAY_CHAOS_SEED")]
    pub seed: Option<u64>,
    /// Payments to make.
    #[arg(long, default_value_t = 300)]
    pub payments: usize,
    /// Buyers at once.
    #[arg(long, default_value_t = 16)]
    pub buyers: usize,
    /// `kpay serve` instances (SQLite: always 1).
    #[arg(long, default_value_t = 3)]
    pub instances: usize,
    /// The database.
    #[arg(long, value_enum, default_value = "postgres")]
    pub database: Database,
    /// Seconds between SIGKILLs of a random instance: MIN-MAX (0: no kills).
    #[arg(long, default_value = "3-6")]
    pub kill_every: String,
    /// PostgreSQL restarts during the run.
    #[arg(long, default_value_t = 1)]
    pub pg_restarts: usize,
    /// How long the ledger may take to converge once the faults stop, in seconds.
    #[arg(long, default_value_t = 120)]
    pub converge_timeout: u64,
    /// A refund of any payment is asked with this probability (0–1).
    #[arg(long, default_value_t = 0.45)]
    pub refund_rate: f64,
    /// Where logs and databases go (default: a new temporary directory, removed after a PASS).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

/// Why a run could not be made (not a verdict: a verdict is [`check::Verdict`]).
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// A flag is wrong.
    #[error("{0}")]
    Args(String),
    /// A process could not be started or did not become ready.
    #[error("{0}")]
    Process(String),
    /// Files.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// The whole run: the cluster, the buyers, the faults, convergence and the verdict. `kpay` is
/// the binary to start (`kpay sandbox`, `kpay serve`).
pub async fn run(args: ChaosArgs, kpay: PathBuf) -> Result<check::Verdict, ChaosError> {
    let seed = args.seed.unwrap_or_else(rand::random);
    let (kill_min, kill_max) = parse_range(&args.kill_every)?;
    let instances = match args.database {
        Database::Sqlite => 1,
        Database::Postgres => args.instances.max(1),
    };
    let work = match &args.work_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("kpay-chaos-{seed}-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work).map_err(|source| ChaosError::Io {
        what: format!("creating {}", work.display()),
        source,
    })?;
    println!(
        "kpay chaos: seed {seed}, {} payments, {instances} instance(s) on {:?}, {} buyers, kills every {kill_min}-{kill_max} s, {} PostgreSQL restart(s); logs in {}",
        args.payments,
        args.database,
        args.buyers,
        if args.database == Database::Postgres {
            args.pg_restarts
        } else {
            0
        },
        work.display()
    );
    let cluster = Arc::new(cluster::Cluster::start(&kpay, &work, args.database, instances).await?);
    cluster.inject_faults(seed).await?;

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicUsize::new(0));
    let chaos = tokio::spawn(cluster::chaos_monkey(
        Arc::clone(&cluster),
        seed,
        (kill_min, kill_max),
        if args.database == Database::Postgres {
            args.pg_restarts
        } else {
            0
        },
        Arc::clone(&stop),
        Arc::clone(&kills),
    ));
    let outcomes = buyer::run_all(Arc::clone(&cluster), seed, &args).await;
    let run_secs = started.elapsed().as_secs_f64();
    println!("kpay chaos: {}", buyer::timing_summary(&outcomes));
    stop.store(true, Ordering::Relaxed);
    let pg_restarts = chaos.await.unwrap_or(0);
    cluster.clear_faults().await;
    cluster.all_up().await?;
    println!(
        "kpay chaos: traffic done in {run_secs:.1} s ({} kills, {pg_restarts} PostgreSQL restarts); faults stopped, converging",
        kills.load(Ordering::Relaxed)
    );
    let verdict = check::converge_and_check(
        &cluster,
        outcomes,
        Duration::from_secs(args.converge_timeout),
        check::RunFacts {
            seed,
            payments: args.payments,
            kills: kills.load(Ordering::Relaxed),
            pg_restarts,
            run_secs,
        },
    )
    .await;
    cluster.shutdown().await;
    if verdict.pass() && args.work_dir.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(verdict)
}

fn parse_range(s: &str) -> Result<(f64, f64), ChaosError> {
    let bad = || {
        ChaosError::Args(format!(
            "--kill-every {s:?}: expected MIN-MAX seconds, e.g. 3-6, or 0"
        ))
    };
    if s.trim() == "0" {
        return Ok((0.0, 0.0));
    }
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let (a, b): (f64, f64) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if !(a > 0.0 && b >= a) {
        return Err(bad());
    }
    Ok((a, b))
}
