//! `kpay`: one binary for the KakaoPay stack. `kpay serve` runs the payment server (with the
//! built-in sandbox when no KakaoPay key is configured), `kpay sandbox` the local KakaoPay alone,
//! `kpay reconcile` one reconciliation pass, `kpay listen` / `kpay trigger` webhooks in local
//! development, `kpay bench …` the load generators, `kpay chaos` a
//! seeded fault run of the whole stack.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod bench;
mod bench_renewals;
mod bench_webhooks;
mod listen;
mod sandbox;
mod serve;
mod telemetry;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

// glibc's malloc took about a fifth of the server's CPU in profiles of the renewal and
// payment benchmarks (small allocations freed across threads); mimalloc is made for that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The KakaoPay payment stack: payment server, local KakaoPay sandbox, reconciler and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "kpay", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "KPAY_LOG_FORMAT", value_enum, default_value_t = telemetry::LogFormat::Text)]
    log_format: telemetry::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the payment server (merchant API, callbacks, reconciler, shop, admin).
    Serve(serve::ServeArgs),
    /// Run one reconciliation pass against KakaoPay and print what changed and every mismatch.
    Reconcile(serve::ReconcileArgs),
    /// Run the KakaoPay sandbox alone, at the real KakaoPay paths from the root.
    Sandbox(sandbox::Args),
    /// Forward a server's events to a local webhook handler, signed with a local secret (development).
    Listen(listen::ListenArgs),
    /// Make an event happen with the sandbox: a payment paid (and refunded, for refund events).
    Trigger(listen::TriggerArgs),
    /// Load tests (bounded, loopback only).
    #[command(subcommand)]
    Bench(bench::Bench),
    /// A seeded fault run: several servers, a faulty sandbox, SIGKILLs, a PostgreSQL restart;
    /// checks the ledger against KakaoPay's records (loopback only; see RELIABILITY.md).
    Chaos(kpay_chaos::ChaosArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kpay: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::serve(args).await,
            Command::Reconcile(args) => serve::reconcile(args).await,
            Command::Sandbox(args) => sandbox::run(args).await,
            Command::Listen(args) => listen::listen(args).await.map_err(Into::into),
            Command::Trigger(args) => listen::trigger(args).await.map_err(Into::into),
            Command::Bench(b) => bench::run(b).await,
            Command::Chaos(args) => chaos(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kpay: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `kpay chaos`: the run, its report, and a failure exit when any invariant broke.
async fn chaos(args: kpay_chaos::ChaosArgs) -> Result<(), Box<dyn std::error::Error>> {
    let kpay = std::env::current_exe()?;
    let verdict = kpay_chaos::run(args, kpay).await?;
    print!("{}", verdict.report());
    if verdict.pass() {
        Ok(())
    } else {
        Err("the chaos run found violations".into())
    }
}
