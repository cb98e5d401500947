//! One signed POST to one endpoint, bounded in time (15 s in all) and memory (the answer is
//! read up to 64 KiB, its first 1 KiB kept). Redirects are not followed, and unless
//! destinations may be local, host names are resolved here and every private, loopback or
//! link-local address refused at connect time — a public name that resolves inward (DNS
//! rebinding) reaches nothing.

use crate::domain::{Answer, is_internal};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one attempt may take, connect to last byte.
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// How much of an answer is read before the connection is dropped.
const READ_LIMIT: usize = 64 * 1024;
/// How much of it is kept with the attempt.
const KEEP: usize = 1024;

/// What one attempt brought back.
#[derive(Clone, Debug)]
pub(crate) struct Sent {
    /// For the verdict.
    pub(crate) answer: Answer,
    /// Connect to last byte read.
    pub(crate) latency: Duration,
    /// For people: why there was no answer, or the status line of a failure.
    pub(crate) error: Option<String>,
    /// The first bytes of the answer.
    pub(crate) response: Option<String>,
}

/// Resolves host names to public addresses only.
#[derive(Debug)]
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> =
                all.into_iter().filter(|a| !is_internal(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// Sends deliveries.
#[derive(Clone, Debug)]
pub(crate) struct Sender {
    client: reqwest::Client,
}

impl Sender {
    /// A sender; `local`: destinations may be private (development).
    pub(crate) fn new(local: bool) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64)
            .user_agent(concat!("kpay-webhooks/", env!("CARGO_PKG_VERSION")));
        if !local {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(Self {
            client: builder.build()?,
        })
    }

    /// POSTs `body` to `url` with the Standard Webhooks headers.
    pub(crate) async fn send(
        &self,
        url: &str,
        id: &str,
        timestamp: i64,
        signature: &str,
        body: String,
    ) -> Sent {
        let started = Instant::now();
        let request = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body);
        let mut resp = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                return Sent {
                    answer: Answer::NoAnswer,
                    latency: started.elapsed(),
                    error: Some(describe(&e)),
                    response: None,
                };
            }
        };
        let code = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after);
        let mut kept = Vec::new();
        let mut read = 0usize;
        let mut cut = None;
        while read < READ_LIMIT {
            match resp.chunk().await {
                Ok(Some(bytes)) => {
                    read += bytes.len();
                    let room = KEEP.saturating_sub(kept.len());
                    kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
                }
                Ok(None) => break,
                Err(e) => {
                    cut = Some(describe(&e));
                    break;
                }
            }
        }
        let error = if (200..300).contains(&code) {
            None
        } else {
            Some(format!(
                "HTTP {code}{}",
                resp.status()
                    .canonical_reason()
                    .map(|r| format!(" {r}"))
                    .unwrap_or_default()
            ))
        };
        Sent {
            answer: Answer::Status { code, retry_after },
            latency: started.elapsed(),
            // The status decides; a body cut short is worth knowing but changes nothing.
            error: error.or(cut.map(|c| format!("answer cut short: {c}"))),
            response: (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned()),
        }
    }
}

/// `Retry-After`: seconds or an HTTP date.
fn retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// A transport error for people, without the URL's query (reqwest prints the URL).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out after 15 s"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "redirect not followed"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = None;
    while let Some(s) = source {
        detail = Some(s.to_string());
        source = s.source();
    }
    match detail {
        Some(d) => format!("{what}: {d}"),
        None => what.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In production mode a name that resolves to loopback reaches nothing, whatever the URL
    /// check let through.
    #[tokio::test]
    async fn production_senders_refuse_internal_addresses_at_connect() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let port = listener.local_addr().expect("an address").port();
        let sent = Sender::new(false)
            .expect("a sender")
            .send(
                &format!("http://localhost:{port}/hooks"),
                "evt_x",
                0,
                "v1,x",
                "{}".into(),
            )
            .await;
        assert_eq!(sent.answer, Answer::NoAnswer);
        let error = sent.error.expect("an error");
        assert!(error.contains("resolves to no public address"), "{error}");
        // The same sender in local development reaches it.
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("a connection");
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                .await;
        });
        let sent = Sender::new(true)
            .expect("a sender")
            .send(
                &format!("http://localhost:{port}/hooks"),
                "evt_x",
                0,
                "v1,x",
                "{}".into(),
            )
            .await;
        assert!(
            matches!(sent.answer, Answer::Status { code: 204, .. }),
            "{sent:?}"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = std::time::SystemTime::now() + Duration::from_secs(3_600);
        let d = retry_after(&httpdate::fmt_http_date(later)).expect("a date");
        assert!(d > Duration::from_secs(3_500) && d <= Duration::from_secs(3_600));
        assert_eq!(retry_after("soon"), None);
    }
}
