//! `kpay serve` and `kpay reconcile`: the payment server and its reconciler by hand.

use kakaopay::{Cid, Generation};
use kpay_server::config::defaults;
use kpay_server::domain::{DunningFinal, DunningSchedule, RetrySchedule};
use kpay_server::{Application, ServerConfig};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Configuration shared by `serve` and `reconcile`; every flag can come from its environment variable.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "KPAY_LISTEN", default_value = defaults::LISTEN)]
    listen: SocketAddr,
    /// Database: sqlite://PATH or postgres://USER@HOST/DB. Default: SQLite in the data directory.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// PostgreSQL connections of this instance.
    #[arg(long, env = "KPAY_DATABASE_MAX_CONNECTIONS", default_value_t = defaults::PG_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..=500))]
    database_max_connections: u32,
    /// Directory for the SQLite database and the generated API key.
    #[arg(long, env = "KPAY_DATA_DIR", default_value = defaults::DATA_DIR)]
    data_dir: PathBuf,
    /// KakaoPay base URL (the real hosts or an external sandbox). Default: the real host when a key
    /// is set, else the built-in sandbox at /sandbox.
    #[arg(long, env = "KAKAOPAY_BASE_URL", value_parser = http_url)]
    kakaopay_url: Option<String>,
    /// KakaoPay API generation: open (open-api.kakaopay.com, SECRET_KEY) or legacy (kapi.kakao.com, KakaoAK).
    #[arg(long, env = "KAKAOPAY_API", value_enum, default_value_t = Api::Open)]
    kakaopay_api: Api,
    /// Secret key of the current API (never printed).
    #[arg(
        long = "kakaopay-secret-key",
        env = "KAKAOPAY_SECRET_KEY",
        hide_env_values = true
    )]
    secret_key: Option<String>,
    /// Admin key of the legacy API (never printed).
    #[arg(
        long = "kakaopay-admin-key",
        env = "KAKAOPAY_ADMIN_KEY",
        hide_env_values = true
    )]
    admin_key: Option<String>,
    /// Merchant code (CID).
    #[arg(long, env = "KAKAOPAY_CID", default_value = defaults::CID, value_parser = cid)]
    cid: Cid,
    /// Merchant code for subscriptions (정기 결제).
    #[arg(long, env = "KAKAOPAY_SUBSCRIPTION_CID", default_value = defaults::SUBSCRIPTION_CID, value_parser = cid)]
    subscription_cid: Cid,
    /// When a refused renewal is retried, after its first refusal: d, h, m or s, strictly growing.
    #[arg(long, env = "KPAY_DUNNING_SCHEDULE", default_value = defaults::DUNNING_SCHEDULE, value_parser = dunning)]
    dunning_schedule: DunningSchedule,
    /// What a subscription becomes when retries are spent: unpaid (kept, not renewed) or canceled (SID inactivated).
    #[arg(long, env = "KPAY_DUNNING_FINAL", default_value = "unpaid", value_parser = dunning_final)]
    dunning_final: DunningFinal,
    /// Subscription charges one instance has out at once.
    #[arg(long, env = "KPAY_RENEWAL_CONCURRENCY", default_value_t = defaults::RENEWAL_CONCURRENCY, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    renewal_concurrency: usize,
    /// Let webhook endpoints be plain http and private or loopback addresses with a real KakaoPay too (with a sandbox they always may).
    #[arg(long, env = "KPAY_WEBHOOK_ALLOW_PRIVATE")]
    webhook_allow_private: bool,
    /// When failed webhook deliveries are tried again: seconds after the attempt before, comma separated (each with ±10 % jitter).
    #[arg(long, env = "KPAY_WEBHOOK_RETRY_SCHEDULE", default_value = defaults::WEBHOOK_RETRY_SCHEDULE, value_parser = retry_schedule)]
    webhook_retry_schedule: RetrySchedule,
    /// Write events but send no webhook deliveries from this instance (other instances on the same database send them).
    #[arg(long, env = "KPAY_NO_WEBHOOK_DELIVERY")]
    no_webhook_delivery: bool,
    /// Key sealing SIDs at rest: 64 hex digits (`openssl rand -hex 32`). Default: generated once into <data-dir>/encryption.key (mode 0600). Instances sharing a database must share it.
    #[arg(
        long = "encryption-key",
        env = "KPAY_ENCRYPTION_KEY",
        hide_env_values = true
    )]
    encryption_key: Option<String>,
    /// The merchant API key (Authorization: Bearer). Default: generated on first start, kept in the data directory.
    #[arg(long, env = "KPAY_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Base URL browsers reach, used for KakaoPay's approval/cancel/fail URLs. Default: http://<listen>.
    #[arg(long, env = "KPAY_PUBLIC_URL", value_parser = http_url)]
    public_url: Option<String>,
    /// Seconds between reconciler passes.
    #[arg(long, env = "KPAY_RECONCILE_INTERVAL", default_value_t = defaults::RECONCILE_INTERVAL_SECS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    reconcile_interval: u64,
    /// Seconds after an unclear approve or refund before a lookup showing "not applied" is believed.
    #[arg(long, env = "KPAY_UNKNOWN_GRACE", default_value_t = defaults::UNKNOWN_GRACE_SECS, value_parser = clap::value_parser!(u64).range(1..=600))]
    unknown_grace: u64,
    /// Seconds one KakaoPay call may take (default above KakaoPay's own 11 s).
    #[arg(long, env = "KAKAOPAY_TIMEOUT", default_value_t = defaults::KAKAOPAY_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..=120))]
    kakaopay_timeout: u64,
    /// Password of the admin dashboard (default: the API key logs in).
    #[arg(long, env = "KPAY_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// Do not serve the demo shop at /.
    #[arg(long, env = "KPAY_NO_SHOP")]
    no_shop: bool,
    /// Tests of crash recovery: die at this crash point (sandbox only).
    #[arg(long, env = "KPAY_TEST_CRASH_AT", hide = true)]
    test_crash_at: Option<String>,
}

/// Which KakaoPay API generation to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Api {
    /// open-api.kakaopay.com: JSON, `SECRET_KEY`.
    Open,
    /// kapi.kakao.com: form bodies, `KakaoAK`.
    Legacy,
}

impl From<Api> for Generation {
    fn from(a: Api) -> Self {
        match a {
            Api::Open => Generation::Open,
            Api::Legacy => Generation::Legacy,
        }
    }
}

/// A webhook retry schedule.
fn retry_schedule(s: &str) -> Result<RetrySchedule, String> {
    RetrySchedule::parse(s).map_err(|e| e.to_string())
}

/// A dunning schedule.
fn dunning(s: &str) -> Result<DunningSchedule, String> {
    DunningSchedule::parse(s).map_err(|e| e.to_string())
}

/// `unpaid` or `canceled`.
fn dunning_final(s: &str) -> Result<DunningFinal, String> {
    s.parse::<DunningFinal>()
        .map_err(|_| "must be unpaid or canceled".to_owned())
}

/// A merchant code.
fn cid(s: &str) -> Result<Cid, String> {
    Cid::parse(s).map_err(|e| e.to_string())
}

/// An absolute http(s) URL without a query, its trailing `/` removed (an empty value: unset).
fn http_url(s: &str) -> Result<String, String> {
    let u = url::Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err("must be an http:// or https:// URL with a host".into());
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    Ok(s.trim_end_matches('/').to_owned())
}

/// A secret as configured: unset is `None`; set but blank, or with spaces around it (a paste
/// gone wrong), is an error naming `name` — a blank KakaoPay key once meant "no key" and so the
/// public built-in sandbox, whose helpers let anyone "pay".
fn secret(name: &str, s: Option<String>) -> Result<Option<SecretString>, String> {
    match s {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Err(format!(
            "{name} is set but blank: set it or unset it (the value is never printed)"
        )),
        Some(s) if s.trim() != s => Err(format!(
            "{name} has spaces or a line break at its start or end: remove them (the value is never printed)"
        )),
        Some(s) => Ok(Some(SecretString::from(s))),
    }
}

impl ServerArgs {
    /// The server configuration, or a one-line reason it is wrong.
    pub fn config(self) -> Result<ServerConfig, String> {
        let mut c = ServerConfig::new(self.listen);
        c.database_url = self.database_url.filter(|s| !s.is_empty());
        c.data_dir = self.data_dir;
        c.database_max_connections = self.database_max_connections;
        c.kakaopay_url = self.kakaopay_url;
        c.kakaopay_api = self.kakaopay_api.into();
        c.secret_key = secret(
            "KAKAOPAY_SECRET_KEY (--kakaopay-secret-key)",
            self.secret_key,
        )?;
        c.admin_key = secret("KAKAOPAY_ADMIN_KEY (--kakaopay-admin-key)", self.admin_key)?;
        c.cid = self.cid;
        c.subscription_cid = self.subscription_cid;
        c.dunning_schedule = self.dunning_schedule;
        c.dunning_final = self.dunning_final;
        c.renewal_concurrency = self.renewal_concurrency;
        c.webhook_allow_private = self.webhook_allow_private;
        c.webhook_retry_schedule = self.webhook_retry_schedule;
        c.webhook_delivery = !self.no_webhook_delivery;
        c.encryption_key = secret(
            "KPAY_ENCRYPTION_KEY (--encryption-key)",
            self.encryption_key,
        )?;
        c.api_key = secret("KPAY_API_KEY (--api-key)", self.api_key)?;
        c.public_url = self.public_url;
        c.reconcile_interval = Duration::from_secs(self.reconcile_interval);
        c.unknown_grace = Duration::from_secs(self.unknown_grace);
        c.kakaopay_timeout = Duration::from_secs(self.kakaopay_timeout);
        c.admin_password = secret(
            "KPAY_ADMIN_PASSWORD (--admin-password)",
            self.admin_password,
        )?;
        c.demo_shop = !self.no_shop;
        c.crash_at = self.test_crash_at.filter(|s| !s.is_empty());
        Ok(c)
    }
}

/// Flags of `kpay serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    server: ServerArgs,
}

/// Flags of `kpay reconcile`.
#[derive(Debug, clap::Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Also compare every payment changed in the last this many hours with KakaoPay.
    #[arg(long, default_value_t = 24)]
    since_hours: u64,
}

/// Runs the payment server until SIGINT/SIGTERM.
pub async fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let config = args.server.config()?;
    tracing::info!(config = ?config, "starting kpay serve");
    let demo_shop = config.demo_shop;
    let app = Application::build(config).await?;
    let base = app.public_url().to_owned();
    println!("kpay serve listening on http://{}", app.addr());
    if demo_shop {
        println!("  shop          : {base}/");
    }
    println!("  admin         : {base}/admin");
    println!("  merchant API  : {base}/api/v1/payments   (OpenAPI: {base}/openapi.json)");
    println!("  health        : {base}/healthz  {base}/readyz  {base}/metrics");
    if app.builtin_sandbox() {
        println!(
            "  KakaoPay      : built-in sandbox at {base}/sandbox (no KakaoPay key configured)"
        );
    }
    if app.api_key_generated() {
        println!(
            "  API key       : {}   (generated now and kept in the data directory; shown only once)",
            app.api_key()
        );
    }
    app.run_until_stopped(crate::sandbox::shutdown_signal())
        .await?;
    println!("kpay serve stopped");
    Ok(())
}

/// Runs one reconciler pass and prints what changed and every mismatch.
pub async fn reconcile(args: ReconcileArgs) -> Result<(), Box<dyn std::error::Error>> {
    let config = args.server.config()?;
    let report =
        kpay_server::reconcile_once(config, Duration::from_secs(args.since_hours * 3600)).await?;
    println!(
        "kpay reconcile: {} payments checked, {} changed, {} mismatches",
        report.checked,
        report.changed(),
        report.mismatches()
    );
    for l in &report.lines {
        if let Some(c) = &l.change {
            println!("  changed   {} (tid {}): {c}", l.id, l.tid);
        }
        if let Some(m) = &l.mismatch {
            println!("  MISMATCH  {} (tid {}): {m}", l.id, l.tid);
        }
        if let Some(e) = &l.error {
            println!("  error     {} (tid {}): {e}", l.id, l.tid);
        }
    }
    if report.mismatches() > 0 {
        return Err(format!("{} payments disagree with KakaoPay", report.mismatches()).into());
    }
    Ok(())
}
