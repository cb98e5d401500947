//! The HTTP the run needs: JSON requests with an optional API key and Idempotency-Key, and the
//! browser's GET (no redirects followed: a 303 to a return URL is an answer).

use serde_json::Value;
use std::time::Duration;

/// The merchant API key every instance is started with.
pub const API_KEY: &str = "kpay_sk_chaos_0123456789abcdefghij";

/// One HTTP client for the whole run.
#[derive(Clone, Debug)]
pub struct Http {
    client: reqwest::Client,
}

/// An answer: HTTP status and JSON body (`Null` when it was not JSON).
pub type Answer = (u16, Value);

impl Http {
    /// A client with a per-request timeout above the servers' KakaoPay timeout.
    pub fn new() -> Http {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .pool_max_idle_per_host(32)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Http { client }
    }

    /// A request; `Err` when no answer came (connection refused or cut, timeout).
    pub async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        api: bool,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let mut req = self.client.request(method, url);
        if api {
            req = req.bearer_auth(API_KEY);
        }
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// GET with the API key.
    pub async fn get(&self, url: &str) -> Result<Answer, String> {
        self.send(reqwest::Method::GET, url, true, None, None).await
    }

    /// POST without the API key (sandbox helpers).
    pub async fn post_plain(&self, url: &str, body: &Value) -> Result<Answer, String> {
        self.send(reqwest::Method::POST, url, false, None, Some(body))
            .await
    }

    /// A browser's GET of a page: only the status matters.
    pub async fn browse(&self, url: &str) -> Result<u16, String> {
        self.send(reqwest::Method::GET, url, false, None, None)
            .await
            .map(|(s, _)| s)
    }
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}
