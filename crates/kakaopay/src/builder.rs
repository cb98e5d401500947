//! Configuring a [`Client`]: which API generation, which credential, where, how long, how to
//! retry lookups. [`ClientBuilder::build`] is the one place a configuration is checked.

use crate::client::Client;
use crate::error::{Error, Operation};
use rand::Rng;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::time::Duration;

/// Which KakaoPay API a client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Generation {
    /// `open-api.kakaopay.com/online/v1/payment/*`: JSON bodies, `SECRET_KEY` auth,
    /// `error_code`/`error_message` errors.
    Open,
    /// `kapi.kakao.com/v1/payment/*`: form bodies, `KakaoAK` auth, `code`/`msg` errors.
    Legacy,
}

impl Generation {
    /// The production host.
    pub const fn default_base_url(self) -> &'static str {
        match self {
            Self::Open => "https://open-api.kakaopay.com",
            Self::Legacy => "https://kapi.kakao.com",
        }
    }
    /// The path of `op` below the base URL.
    pub fn path(self, op: Operation) -> String {
        match self {
            Self::Open => format!("/online/v1/payment/{}", op.path_tail()),
            Self::Legacy => format!("/v1/payment/{}", op.path_tail()),
        }
    }
}

/// A KakaoPay credential; its kind decides the API generation.
#[derive(Clone)]
pub enum Credentials {
    /// Current generation, `Authorization: SECRET_KEY …` (production or dev secret key).
    SecretKey(SecretString),
    /// Current generation, `Authorization: DEV_SECRET_KEY …` (dev secret key).
    DevSecretKey(SecretString),
    /// Legacy generation, `Authorization: KakaoAK …` (Kakao Developers admin key).
    AdminKey(SecretString),
}

impl Credentials {
    /// A current-generation secret key.
    pub fn secret_key(key: impl Into<String>) -> Self {
        Self::SecretKey(SecretString::from(key.into()))
    }
    /// A current-generation dev secret key sent with the `DEV_SECRET_KEY` prefix.
    pub fn dev_secret_key(key: impl Into<String>) -> Self {
        Self::DevSecretKey(SecretString::from(key.into()))
    }
    /// A legacy admin key.
    pub fn admin_key(key: impl Into<String>) -> Self {
        Self::AdminKey(SecretString::from(key.into()))
    }
    /// The generation this credential belongs to.
    pub fn generation(&self) -> Generation {
        match self {
            Self::SecretKey(_) | Self::DevSecretKey(_) => Generation::Open,
            Self::AdminKey(_) => Generation::Legacy,
        }
    }
    fn header(&self) -> Result<HeaderValue, Error> {
        let (scheme, key) = match self {
            Self::SecretKey(k) => ("SECRET_KEY", k),
            Self::DevSecretKey(k) => ("DEV_SECRET_KEY", k),
            Self::AdminKey(k) => ("KakaoAK", k),
        };
        let key = key.expose_secret().trim();
        if key.is_empty() {
            return Err(Error::Config("the KakaoPay key is empty".into()));
        }
        let mut value = HeaderValue::from_str(&format!("{scheme} {key}")).map_err(|_| {
            Error::Config("the KakaoPay key contains characters not allowed in a header".into())
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SecretKey(_) => "SecretKey(<redacted>)",
            Self::DevSecretKey(_) => "DevSecretKey(<redacted>)",
            Self::AdminKey(_) => "AdminKey(<redacted>)",
        })
    }
}

/// Capped, jittered exponential backoff for lookups (the only calls retried automatically).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Upper bound of the first wait.
    pub initial_backoff: Duration,
    /// Upper bound of any wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub const NONE: RetryPolicy = RetryPolicy {
        max_retries: 0,
        initial_backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
    };

    /// The wait before retry number `attempt` (0-based): uniform in `[0, min(cap, base·2^attempt)]`
    /// ("full jitter"), so that many clients do not retry in step.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
            .min(self.max_backoff);
        let micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rand::rng().random_range(0..=micros))
    }
}

/// Configures a [`Client`].
#[derive(Debug)]
pub struct ClientBuilder {
    pub(crate) credentials: Credentials,
    pub(crate) base_url: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) http: Option<reqwest::Client>,
}

impl ClientBuilder {
    /// Points the client at another KakaoPay-compatible base, e.g. the sandbox
    /// (`http://127.0.0.1:9090`). The generation's paths are appended to it.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }
    /// Total time allowed for one attempt. Default 15 s: above KakaoPay's own 11 s timeout, so that
    /// KakaoPay, not this client, decides when a call has failed.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// Time allowed to open a connection. Default 5 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
    /// Retry policy for lookups (order, subscription status). Default: [`RetryPolicy::default`].
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
    /// Uses a prepared `reqwest::Client` (shared pool, proxies…); the timeouts above are then
    /// applied per request.
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Checks the configuration and builds the client.
    pub fn build(self) -> Result<Client, Error> {
        let generation = self.credentials.generation();
        let raw = self
            .base_url
            .as_deref()
            .unwrap_or(generation.default_base_url());
        let base = url::Url::parse(raw)
            .map_err(|e| Error::Config(format!("base URL {raw:?} is not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || !base.has_host() {
            return Err(Error::Config(format!(
                "base URL {raw:?} must be an http(s) URL with a host"
            )));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(Error::Config("base URL must not carry credentials".into()));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(Error::Config(format!(
                "base URL {raw:?} must not have a query or fragment"
            )));
        }
        let auth = self.credentials.header()?;
        let http = match self.http {
            Some(h) => h,
            None => reqwest::Client::builder()
                .connect_timeout(self.connect_timeout)
                .pool_idle_timeout(Duration::from_secs(60))
                .tcp_nodelay(true)
                .build()
                .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?,
        };
        Ok(Client {
            http,
            base: base.as_str().trim_end_matches('/').to_owned(),
            generation,
            auth,
            timeout: self.timeout,
            retry: self.retry,
        })
    }
}
