//! `kpay listen` and `kpay trigger`, for local development (like `stripe listen` and
//! `stripe trigger`). `listen` follows a server's events feed by long polling
//! (`GET /api/v1/events?after=…&wait=30`) and forwards each new event to a local URL, signed
//! per Standard Webhooks with a local secret it prints, one line per event. `trigger` makes an
//! event happen with the sandbox: it creates a payment and pays it (then refunds it, for the
//! refund events), so the events flow without a browser.

use kpay_webhooks::Secret;
use serde_json::{Value, json};
use std::time::Duration;

/// Flags of `kpay listen`.
#[derive(Debug, clap::Args)]
pub struct ListenArgs {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The merchant API key (default: read from ./kpay-data/api-key).
    #[arg(long, env = "KPAY_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Where to forward each event (your webhook handler), e.g. http://localhost:3000/hooks.
    #[arg(long)]
    forward_to: String,
    /// Only these event types (comma separated; default all).
    #[arg(long, value_delimiter = ',')]
    events: Vec<String>,
    /// The signing secret to use (`whsec_…`); default: a new one, printed at start.
    #[arg(long, env = "KPAY_LISTEN_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Forward the events already in the feed too (default: only those from now on).
    #[arg(long)]
    from_start: bool,
}

/// Flags of `kpay trigger`.
#[derive(Debug, clap::Args)]
pub struct TriggerArgs {
    /// The event to cause: payment.approved, payment.partially_canceled, payment.canceled or
    /// refund.succeeded.
    event: String,
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The merchant API key (default: read from ./kpay-data/api-key).
    #[arg(long, env = "KPAY_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The sandbox the server uses (default: the built-in one at <server>/sandbox).
    #[arg(long)]
    sandbox_url: Option<String>,
    /// The payment's total in won.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..=100_000_000))]
    amount: i64,
}

/// Why listen or trigger stopped.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// A flag is wrong.
    #[error("{0}")]
    Usage(String),
    /// No API key given and none in ./kpay-data/api-key.
    #[error("no API key: pass --api-key (or KPAY_API_KEY), or run where ./kpay-data/api-key is")]
    NoKey,
    /// The server refused (wrong key, bad request).
    #[error("the server answered {status}: {body}")]
    Refused {
        /// The status.
        status: u16,
        /// Its body.
        body: String,
    },
    /// The server could not be reached.
    #[error("cannot reach {url}: {source}")]
    Unreachable {
        /// Where.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
}

fn api_key(given: Option<String>) -> Result<String, ListenError> {
    match given {
        Some(k) if !k.trim().is_empty() => Ok(k.trim().to_owned()),
        _ => std::fs::read_to_string("kpay-data/api-key")
            .ok()
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .ok_or(ListenError::NoKey),
    }
}

/// A JSON request to the server; a non-2xx is [`ListenError::Refused`].
async fn call(req: reqwest::RequestBuilder, url: &str) -> Result<Value, ListenError> {
    let r = req
        .send()
        .await
        .map_err(|source| ListenError::Unreachable {
            url: url.to_owned(),
            source,
        })?;
    let status = r.status().as_u16();
    let body = r.text().await.unwrap_or_default();
    if !(200..300).contains(&status) {
        return Err(ListenError::Refused { status, body });
    }
    Ok(serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// `kpay listen`.
pub async fn listen(args: ListenArgs) -> Result<(), ListenError> {
    let key = api_key(args.api_key)?;
    let secret = match &args.secret {
        Some(s) => Secret::parse(s).map_err(|e| ListenError::Usage(format!("--secret: {e}")))?,
        None => Secret::generate(),
    };
    url::Url::parse(&args.forward_to)
        .map_err(|e| ListenError::Usage(format!("--forward-to {:?}: {e}", args.forward_to)))?;
    let server = args.server.trim_end_matches('/').to_owned();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(45))
        .build()
        .map_err(|source| ListenError::Unreachable {
            url: server.clone(),
            source,
        })?;
    let feed = format!("{server}/api/v1/events");
    // Where to start: the end of the feed, unless every event is wanted.
    let mut cursor: Option<String> = None;
    if !args.from_start {
        loop {
            let mut req = http.get(&feed).bearer_auth(&key).query(&[("limit", "100")]);
            if let Some(c) = &cursor {
                req = req.query(&[("after", c.as_str())]);
            }
            let page = call(req, &feed).await?;
            let n = page["data"].as_array().map_or(0, Vec::len);
            if let Some(c) = page["next_cursor"].as_str() {
                cursor = Some(c.to_owned());
            }
            if n < 100 {
                break;
            }
        }
    }
    println!(
        "Ready. Forwarding events from {server} to {} — signing secret {} (Ctrl-C to stop)",
        args.forward_to,
        secret.expose()
    );
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut req = http
            .get(&feed)
            .bearer_auth(&key)
            .query(&[("limit", "100"), ("wait", "30")]);
        if let Some(c) = &cursor {
            req = req.query(&[("after", c.as_str())]);
        }
        let page = match call(req, &feed).await {
            Ok(p) => {
                backoff = Duration::from_secs(1);
                p
            }
            Err(e @ ListenError::Refused { .. }) => return Err(e),
            Err(e) => {
                eprintln!("{e}; trying again in {} s", backoff.as_secs());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        for event in page["data"].as_array().into_iter().flatten() {
            let kind = event["type"].as_str().unwrap_or("?");
            if !args.events.is_empty() && !args.events.iter().any(|e| e == kind) {
                continue;
            }
            forward(&http, &args.forward_to, &secret, event).await;
        }
        if let Some(c) = page["next_cursor"].as_str() {
            cursor = Some(c.to_owned());
        }
    }
}

/// Forwards one event and prints its line.
async fn forward(http: &reqwest::Client, to: &str, secret: &Secret, event: &Value) {
    let id = event["id"].as_str().unwrap_or("");
    let kind = event["type"].as_str().unwrap_or("?");
    let body = event.to_string();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let signature = kpay_webhooks::signature_header(&[secret], id, ts, body.as_bytes());
    let outcome = match http
        .post(to)
        .timeout(Duration::from_secs(15))
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
    {
        Ok(r) => format!("[{}]", r.status().as_u16()),
        Err(e) => format!("[failed: {e}]"),
    };
    println!(
        "{}  {kind:<28} {id}  → {to} {outcome}",
        event["created_at"].as_str().unwrap_or("")
    );
}

/// `kpay trigger`.
pub async fn trigger(args: TriggerArgs) -> Result<(), ListenError> {
    let refund = match args.event.as_str() {
        "payment.approved" => None,
        "payment.partially_canceled" | "refund.succeeded" => Some(args.amount / 2),
        "payment.canceled" => Some(args.amount),
        other => {
            return Err(ListenError::Usage(format!(
                "cannot trigger {other:?}: use payment.approved, payment.partially_canceled, payment.canceled or refund.succeeded"
            )));
        }
    };
    if refund == Some(0) {
        return Err(ListenError::Usage(
            "--amount must be at least 2 for a partial refund".into(),
        ));
    }
    let key = api_key(args.api_key)?;
    let server = args.server.trim_end_matches('/').to_owned();
    let sandbox = args
        .sandbox_url
        .unwrap_or_else(|| format!("{server}/sandbox"))
        .trim_end_matches('/')
        .to_owned();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|source| ListenError::Unreachable {
            url: server.clone(),
            source,
        })?;
    let url = format!("{server}/api/v1/payments");
    let p = call(
        http.post(&url).bearer_auth(&key).json(&json!({
            "partner_user_id": "kpay-trigger",
            "item_name": "kpay trigger",
            "quantity": 1,
            "total_amount": args.amount,
        })),
        &url,
    )
    .await?;
    let (id, tid) = (
        p["id"].as_str().unwrap_or_default().to_owned(),
        p["tid"].as_str().unwrap_or_default().to_owned(),
    );
    let url = format!("{sandbox}/test/v1/payments/{tid}/authorize");
    let auth = call(http.post(&url).json(&json!({})), &url).await?;
    let Some(callback) = auth["redirect_url"].as_str() else {
        return Err(ListenError::Usage(format!(
            "the sandbox at {sandbox} did not authorize {tid}: {auth}"
        )));
    };
    // The buyer's browser coming back: the server approves.
    http.get(callback)
        .send()
        .await
        .map_err(|source| ListenError::Unreachable {
            url: callback.to_owned(),
            source,
        })?;
    let url = format!("{server}/api/v1/payments/{id}");
    let paid = call(http.get(&url).bearer_auth(&key), &url).await?;
    println!("payment {id} {}", paid["status"].as_str().unwrap_or("?"));
    if let Some(amount) = refund {
        let url = format!("{server}/api/v1/payments/{id}/cancel");
        let r = call(
            http.post(&url)
                .bearer_auth(&key)
                .json(&json!({ "amount": amount, "reason": "kpay trigger" })),
            &url,
        )
        .await?;
        println!(
            "payment {id} {} (refunded {amount})",
            r["status"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}
