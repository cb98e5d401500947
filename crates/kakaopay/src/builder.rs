//! Configuring a [`Client`]: which API generation, which credential, where, how long, how to
//! retry lookups. [`ClientBuilder::build`] is the one place a configuration is checked.

use crate::client::Client;
use crate::error::Error;
use crate::settings::{Credentials, RetryPolicy};
use std::time::Duration;

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

impl Client {
    /// Starts configuring a client for `credentials` (which choose the generation).
    pub fn builder(credentials: Credentials) -> ClientBuilder {
        ClientBuilder {
            credentials,
            base_url: None,
            timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            http: None,
        }
    }
}
