//! Configuration, read once at start (flags and environment, parsed by the `kpay` binary) and
//! printed redacted.

use crate::domain::{DunningFinal, DunningSchedule};
use kakaopay::{Cid, Generation};
use secrecy::SecretString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The defaults of `kpay serve`, defined once: [`ServerConfig::new`] and the `kpay` flags both
/// use these.
pub mod defaults {
    /// `--listen`.
    pub const LISTEN: &str = "127.0.0.1:8080";
    /// `--data-dir`.
    pub const DATA_DIR: &str = "kpay-data";
    /// `--cid`: KakaoPay's test merchant code for single payments.
    pub const CID: &str = "TC0ONETIME";
    /// `--subscription-cid`: KakaoPay's test merchant code for subscriptions.
    pub const SUBSCRIPTION_CID: &str = "TCSUBSCRIP";
    /// `--dunning-schedule`: retries after a renewal's first refusal.
    pub const DUNNING_SCHEDULE: &str = "1d,3d,5d,7d";
    /// `--renewal-concurrency`: subscription charges one instance has out at once.
    pub const RENEWAL_CONCURRENCY: usize = 32;
    /// `--webhook-retry-schedule` (contract §6).
    pub const WEBHOOK_RETRY_SCHEDULE: &str = "5,300,1800,7200,18000,36000,50400,72000,86400";
    /// `--reconcile-interval`, seconds.
    pub const RECONCILE_INTERVAL_SECS: u64 = 5;
    /// `--unknown-grace`, seconds.
    pub const UNKNOWN_GRACE_SECS: u64 = 20;
    /// `--kakaopay-timeout`, seconds: above KakaoPay's own 11 s.
    pub const KAKAOPAY_TIMEOUT_SECS: u64 = 15;
    /// `--database-max-connections`.
    pub const PG_CONNECTIONS: u32 = crate::store::DEFAULT_PG_CONNECTIONS;
}

/// Everything `kpay serve` needs.
#[derive(Clone)]
pub struct ServerConfig {
    /// Address to listen on (`127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// `sqlite://…` or `postgres://…`; `None`: SQLite in the data directory.
    pub database_url: Option<String>,
    /// PostgreSQL connections of this instance.
    pub database_max_connections: u32,
    /// Where the SQLite file and the generated API key live (`./kpay-data`).
    pub data_dir: PathBuf,
    /// KakaoPay base URL; `None` with no key: the built-in sandbox.
    pub kakaopay_url: Option<String>,
    /// Which API generation to speak.
    pub kakaopay_api: Generation,
    /// Current-generation secret key.
    pub secret_key: Option<SecretString>,
    /// Legacy admin key.
    pub admin_key: Option<SecretString>,
    /// Merchant code.
    pub cid: Cid,
    /// Merchant code for subscriptions.
    pub subscription_cid: Cid,
    /// When refused renewals are retried.
    pub dunning_schedule: DunningSchedule,
    /// What a subscription becomes when dunning gives up.
    pub dunning_final: DunningFinal,
    /// Subscription charges out at once (per instance).
    pub renewal_concurrency: usize,
    /// Webhook endpoints may be plain http and private or loopback addresses even with a real
    /// KakaoPay (always allowed with a sandbox: local development).
    pub webhook_allow_private: bool,
    /// When failed webhook deliveries are tried again (seconds after the attempt before).
    pub webhook_retry_schedule: crate::domain::RetrySchedule,
    /// Whether this instance sends webhook deliveries (off: it only writes events, others
    /// deliver them).
    pub webhook_delivery: bool,
    /// The key that seals SIDs at rest (`KPAY_ENCRYPTION_KEY`, 64 hex digits); `None`: generated
    /// once into `<data-dir>/encryption.key` (mode 0600). Several instances on one database must
    /// share it.
    pub encryption_key: Option<SecretString>,
    /// The merchant API key; `None`: generated on first start and kept in the data directory.
    pub api_key: Option<SecretString>,
    /// The base browsers reach (`http://<listen>`).
    pub public_url: Option<String>,
    /// How often the reconciler looks for due payments.
    pub reconcile_interval: Duration,
    /// How long after an unclear approve or cancel a lookup that shows "not applied" is believed.
    /// It should cover KakaoPay's own processing time; the server never waits less than
    /// `kakaopay_timeout` either (until then the call may still be in flight).
    pub unknown_grace: Duration,
    /// Timeout of one KakaoPay call.
    pub kakaopay_timeout: Duration,
    /// Password for the admin dashboard; `None`: the API key logs in.
    pub admin_password: Option<SecretString>,
    /// How long shutdown waits for in-flight work.
    pub shutdown_timeout: Duration,
    /// Whether to serve the demo shop at `/`.
    pub demo_shop: bool,
    /// How long a ready stays payable before the reconciler expires it (KakaoPay: 15 minutes;
    /// shorter only in tests).
    pub payment_ttl: Duration,
    /// A [`crate::crashpoint`] to die at (tests of crash recovery; sandbox only).
    pub crash_at: Option<String>,
}

impl ServerConfig {
    /// The defaults of `kpay serve` with nothing configured.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            database_url: None,
            database_max_connections: defaults::PG_CONNECTIONS,
            data_dir: PathBuf::from(defaults::DATA_DIR),
            kakaopay_url: None,
            kakaopay_api: Generation::Open,
            secret_key: None,
            admin_key: None,
            cid: Cid::parse(defaults::CID).unwrap_or_else(|_| unreachable!("a valid CID literal")),
            subscription_cid: Cid::parse(defaults::SUBSCRIPTION_CID)
                .unwrap_or_else(|_| unreachable!("a valid CID literal")),
            dunning_schedule: DunningSchedule::standard(),
            dunning_final: DunningFinal::Unpaid,
            renewal_concurrency: defaults::RENEWAL_CONCURRENCY,
            webhook_allow_private: false,
            webhook_retry_schedule: crate::domain::RetrySchedule::standard(),
            webhook_delivery: true,
            encryption_key: None,
            api_key: None,
            public_url: None,
            reconcile_interval: Duration::from_secs(defaults::RECONCILE_INTERVAL_SECS),
            unknown_grace: Duration::from_secs(defaults::UNKNOWN_GRACE_SECS),
            kakaopay_timeout: Duration::from_secs(defaults::KAKAOPAY_TIMEOUT_SECS),
            admin_password: None,
            shutdown_timeout: Duration::from_secs(20),
            demo_shop: true,
            payment_ttl: Duration::from_secs(15 * 60),
            crash_at: None,
        }
    }

    /// The database URL: the configured one or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("kpay.db").display()))
    }

    /// Whether the built-in sandbox serves as KakaoPay.
    pub fn uses_builtin_sandbox(&self) -> bool {
        self.kakaopay_url.is_none() && self.secret_key.is_none() && self.admin_key.is_none()
    }

    /// Whether KakaoPay is a sandbox: the built-in one, or a loopback URL without a key.
    pub fn kakaopay_is_sandbox(&self) -> bool {
        self.uses_builtin_sandbox()
            || (self.secret_key.is_none()
                && self.admin_key.is_none()
                && self.kakaopay_url.as_deref().is_some_and(is_loopback))
    }
}

fn redacted(s: &Option<SecretString>) -> &'static str {
    if s.is_some() { "<set>" } else { "<unset>" }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("data_dir", &self.data_dir)
            .field("kakaopay_url", &self.kakaopay_url)
            .field("kakaopay_api", &self.kakaopay_api)
            .field("secret_key", &redacted(&self.secret_key))
            .field("admin_key", &redacted(&self.admin_key))
            .field("cid", &self.cid.as_str())
            .field("subscription_cid", &self.subscription_cid.as_str())
            .field("dunning_schedule", &self.dunning_schedule.to_string())
            .field("dunning_final", &self.dunning_final)
            .field(
                "webhook_retry_schedule",
                &self.webhook_retry_schedule.to_string(),
            )
            .field("webhook_delivery", &self.webhook_delivery)
            .field("encryption_key", &redacted(&self.encryption_key))
            .field("api_key", &redacted(&self.api_key))
            .field("public_url", &self.public_url)
            .field("reconcile_interval", &self.reconcile_interval)
            .field("unknown_grace", &self.unknown_grace)
            .field("admin_password", &redacted(&self.admin_password))
            .finish_non_exhaustive()
    }
}

/// A database URL with its password hidden.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Whether `url` points at this machine.
pub(crate) fn is_loopback(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    })
}
