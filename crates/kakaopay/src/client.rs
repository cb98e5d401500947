//! The client: one type for both generations, chosen by the credential it is built with
//! (configured in [`crate::builder`]).

use crate::error::{ApiError, Error, ErrorCode, Operation, TransportKind};
use crate::settings::{Generation, RetryPolicy};
use crate::{
    ApproveRequest, ApproveResponse, CancelRequest, CancelResponse, OrderRequest, OrderResponse,
    ReadyRequest, ReadyResponse, SidRequest, SubscriptionInactiveResponse, SubscriptionRequest,
    SubscriptionStatusResponse,
};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// An async KakaoPay client. Cheap to clone; clones share one connection pool.
///
/// Every call validates its request first (nothing leaves the process on a
/// [`Error::Validation`]), runs in a `tracing` span `kakaopay` with `operation`, `tid`,
/// `partner_order_id`, `latency_ms` and `outcome`, and never logs keys or pg_tokens.
#[derive(Clone)]
pub struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) generation: Generation,
    pub(crate) auth: HeaderValue,
    pub(crate) timeout: Duration,
    pub(crate) retry: RetryPolicy,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("generation", &self.generation)
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// What a span should name besides the operation.
#[derive(Default)]
struct CallContext<'a> {
    tid: Option<&'a str>,
    partner_order_id: Option<&'a str>,
}

impl Client {
    /// The API generation this client speaks.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// The base URL calls go to.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Creates a payment. Store the returned TID with this order before redirecting the buyer.
    ///
    /// ```
    /// use kakaopay::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sandbox = kakaopay_sandbox::spawn(Default::default()).await?;
    /// # let client = Client::builder(Credentials::secret_key("DEV0123456789ABCDEF0123456789ABCDEF01234")).base_url(sandbox.base_url()).build()?;
    /// let ready = client
    ///     .ready(
    ///         &ReadyRequest::builder()
    ///             .cid("TC0ONETIME")
    ///             .partner_order_id("o-1")
    ///             .partner_user_id("u-1")
    ///             .item_name("초코파이")
    ///             .quantity(1)
    ///             .total_amount(2200)
    ///             .approval_url("https://shop.example/ok")
    ///             .cancel_url("https://shop.example/cancel")
    ///             .fail_url("https://shop.example/fail")
    ///             .build()?,
    ///     )
    ///     .await?;
    /// // Send a desktop browser here (a QR code page); phones go to next_redirect_mobile_url.
    /// assert!(ready.next_redirect_pc_url.is_some());
    /// # Ok(()) }
    /// ```
    pub async fn ready(&self, req: &ReadyRequest) -> Result<ReadyResponse, Error> {
        req.validate()?;
        let ctx = CallContext {
            tid: None,
            partner_order_id: Some(req.partner_order_id.as_str()),
        };
        self.call(Operation::Ready, req, ctx).await
    }

    /// Approves an authenticated payment. Never retried automatically: when
    /// [`Error::may_have_applied`] is true, look the order up instead of failing the payment.
    ///
    /// ```
    /// use kakaopay::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sandbox = kakaopay_sandbox::spawn(Default::default()).await?;
    /// # let client = Client::builder(Credentials::secret_key("DEV0123456789ABCDEF0123456789ABCDEF01234")).base_url(sandbox.base_url()).build()?;
    /// # let ready = client.ready(&ReadyRequest::builder().cid("TC0ONETIME").partner_order_id("o-1").partner_user_id("u-1")
    /// #     .item_name("초코파이").quantity(1).total_amount(2200).approval_url("https://shop.example/ok")
    /// #     .cancel_url("https://shop.example/cancel").fail_url("https://shop.example/fail").build()?).await?;
    /// // The pg_token arrives on approval_url; here the sandbox's helper plays the buyer.
    /// let pg_token = PgToken::parse(sandbox.authorize(ready.tid.as_str())?)?;
    /// let req = ApproveRequest::new("TC0ONETIME".parse()?, ready.tid.clone(), "o-1".parse()?, "u-1".parse()?, pg_token)
    ///     .total_amount(Amount::new(2200)?); // KakaoPay checks it too
    /// let paid = client.approve(&req).await?;
    /// assert_eq!(paid.amount.total, Amount::new(2200)?);
    /// // Approving twice is refused (-702), and that error "may have applied": it did, the first time.
    /// let again = client.approve(&req).await.unwrap_err();
    /// assert_eq!(again.code(), Some(ErrorCode::AlreadyApproved));
    /// assert!(again.may_have_applied());
    /// # Ok(()) }
    /// ```
    pub async fn approve(&self, req: &ApproveRequest) -> Result<ApproveResponse, Error> {
        let ctx = CallContext {
            tid: Some(req.tid.as_str()),
            partner_order_id: Some(req.partner_order_id.as_str()),
        };
        self.call(Operation::Approve, req, ctx).await
    }

    /// Refunds all or part of a payment. Never retried automatically.
    ///
    /// ```
    /// use kakaopay::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sandbox = kakaopay_sandbox::spawn(Default::default()).await?;
    /// # let client = Client::builder(Credentials::secret_key("DEV0123456789ABCDEF0123456789ABCDEF01234")).base_url(sandbox.base_url()).build()?;
    /// # let ready = client.ready(&ReadyRequest::builder().cid("TC0ONETIME").partner_order_id("o-1").partner_user_id("u-1")
    /// #     .item_name("초코파이").quantity(1).total_amount(2200).approval_url("https://shop.example/ok")
    /// #     .cancel_url("https://shop.example/cancel").fail_url("https://shop.example/fail").build()?).await?;
    /// # let pg_token = PgToken::parse(sandbox.authorize(ready.tid.as_str())?)?;
    /// # client.approve(&ApproveRequest::new("TC0ONETIME".parse()?, ready.tid.clone(), "o-1".parse()?, "u-1".parse()?, pg_token)).await?;
    /// let cid: Cid = "TC0ONETIME".parse()?;
    /// let part = CancelRequest::new(cid.clone(), ready.tid.clone(), Amount::new(1000)?, Amount::ZERO)
    ///     .expect_available(Amount::new(2200)?);
    /// assert_eq!(client.cancel(&part).await?.status, OrderStatus::PartCancelPayment);
    /// let too_much = CancelRequest::new(cid.clone(), ready.tid.clone(), Amount::new(1201)?, Amount::ZERO);
    /// assert_eq!(client.cancel(&too_much).await.unwrap_err().code(), Some(ErrorCode::CancelAmountExceedsAvailable));
    /// let rest = CancelRequest::new(cid, ready.tid.clone(), Amount::new(1200)?, Amount::ZERO);
    /// assert_eq!(client.cancel(&rest).await?.status, OrderStatus::CancelPayment);
    /// # Ok(()) }
    /// ```
    pub async fn cancel(&self, req: &CancelRequest) -> Result<CancelResponse, Error> {
        req.validate()?;
        let ctx = CallContext {
            tid: Some(req.tid.as_str()),
            partner_order_id: None,
        };
        self.call(Operation::Cancel, req, ctx).await
    }

    /// Looks an order up: status, amounts and history. Retried with backoff on transient failures.
    ///
    /// ```
    /// use kakaopay::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sandbox = kakaopay_sandbox::spawn(Default::default()).await?;
    /// # let client = Client::builder(Credentials::secret_key("DEV0123456789ABCDEF0123456789ABCDEF01234")).base_url(sandbox.base_url()).build()?;
    /// # let ready = client.ready(&ReadyRequest::builder().cid("TC0ONETIME").partner_order_id("o-1").partner_user_id("u-1")
    /// #     .item_name("초코파이").quantity(1).total_amount(2200).approval_url("https://shop.example/ok")
    /// #     .cancel_url("https://shop.example/cancel").fail_url("https://shop.example/fail").build()?).await?;
    /// let order = client.order(&OrderRequest::new("TC0ONETIME".parse()?, ready.tid.clone())).await?;
    /// assert_eq!(order.status, OrderStatus::Ready);
    /// assert!(order.status.is_pending());
    /// assert_eq!(order.amount.map(|a| a.total), Some(Amount::new(2200)?));
    /// # Ok(()) }
    /// ```
    pub async fn order(&self, req: &OrderRequest) -> Result<OrderResponse, Error> {
        let ctx = CallContext {
            tid: Some(req.tid.as_str()),
            partner_order_id: None,
        };
        self.call(Operation::Order, req, ctx).await
    }

    /// Charges a subscription (SID) without the buyer. Never retried automatically.
    ///
    /// ```
    /// use kakaopay::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sandbox = kakaopay_sandbox::spawn(Default::default()).await?;
    /// # let client = Client::builder(Credentials::secret_key("DEV0123456789ABCDEF0123456789ABCDEF01234")).base_url(sandbox.base_url()).build()?;
    /// // The first payment, with a subscription CID, issues the SID.
    /// let ready = client.ready(&ReadyRequest::builder().cid("TCSUBSCRIP").partner_order_id("sub-1")
    ///     .partner_user_id("member-7").item_name("월간 구독").quantity(1).total_amount(9900)
    ///     .approval_url("https://shop.example/ok").cancel_url("https://shop.example/cancel")
    ///     .fail_url("https://shop.example/fail").build()?).await?;
    /// let pg_token = PgToken::parse(sandbox.authorize(ready.tid.as_str())?)?;
    /// let first = client.approve(&ApproveRequest::new("TCSUBSCRIP".parse()?, ready.tid, "sub-1".parse()?, "member-7".parse()?, pg_token)).await?;
    /// let sid = first.sid.expect("subscription CIDs issue a SID");
    ///
    /// // Next month, without the buyer:
    /// let charge = SubscriptionRequest::new("TCSUBSCRIP".parse()?, sid, "sub-2".parse()?, "member-7".parse()?, Quantity::new(1)?, Amount::new(9900)?)
    ///     .item_name("월간 구독 2월".parse()?);
    /// let paid = client.subscription(&charge).await?;
    /// assert_eq!(paid.amount.vat, Amount::new(900)?);
    /// # Ok(()) }
    /// ```
    pub async fn subscription(&self, req: &SubscriptionRequest) -> Result<ApproveResponse, Error> {
        req.validate()?;
        let ctx = CallContext {
            tid: None,
            partner_order_id: Some(req.partner_order_id.as_str()),
        };
        self.call(Operation::Subscription, req, ctx).await
    }

    /// Inactivates a subscription; later charges fail with `-751`.
    ///
    /// ```
    /// use kakaopay::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sandbox = kakaopay_sandbox::spawn(Default::default()).await?;
    /// # let client = Client::builder(Credentials::secret_key("DEV0123456789ABCDEF0123456789ABCDEF01234")).base_url(sandbox.base_url()).build()?;
    /// # let ready = client.ready(&ReadyRequest::builder().cid("TCSUBSCRIP").partner_order_id("s").partner_user_id("m")
    /// #     .item_name("구독").quantity(1).total_amount(0).approval_url("https://shop.example/ok")
    /// #     .cancel_url("https://shop.example/c").fail_url("https://shop.example/f").build()?).await?;
    /// # let pg_token = PgToken::parse(sandbox.authorize(ready.tid.as_str())?)?;
    /// # let sid = client.approve(&ApproveRequest::new("TCSUBSCRIP".parse()?, ready.tid, "s".parse()?, "m".parse()?, pg_token)).await?.sid.unwrap();
    /// let gone = client.inactivate_subscription(&SidRequest::new("TCSUBSCRIP".parse()?, sid.clone())).await?;
    /// assert_eq!(gone.status, SubscriptionStatus::Inactive);
    /// let status = client.subscription_status(&SidRequest::new("TCSUBSCRIP".parse()?, sid)).await?;
    /// assert_eq!(status.available, Some(false));
    /// # Ok(()) }
    /// ```
    pub async fn inactivate_subscription(
        &self,
        req: &SidRequest,
    ) -> Result<SubscriptionInactiveResponse, Error> {
        self.call(Operation::SubscriptionInactive, req, CallContext::default())
            .await
    }

    /// Reads a subscription's status. Retried with backoff on transient failures.
    ///
    /// ```
    /// use kakaopay::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sandbox = kakaopay_sandbox::spawn(Default::default()).await?;
    /// # let client = Client::builder(Credentials::secret_key("DEV0123456789ABCDEF0123456789ABCDEF01234")).base_url(sandbox.base_url()).build()?;
    /// # let ready = client.ready(&ReadyRequest::builder().cid("TCSUBSCRIP").partner_order_id("s").partner_user_id("m")
    /// #     .item_name("구독").quantity(1).total_amount(0).approval_url("https://shop.example/ok")
    /// #     .cancel_url("https://shop.example/c").fail_url("https://shop.example/f").build()?).await?;
    /// # let pg_token = PgToken::parse(sandbox.authorize(ready.tid.as_str())?)?;
    /// # let sid = client.approve(&ApproveRequest::new("TCSUBSCRIP".parse()?, ready.tid, "s".parse()?, "m".parse()?, pg_token)).await?.sid.unwrap();
    /// let status = client.subscription_status(&SidRequest::new("TCSUBSCRIP".parse()?, sid)).await?;
    /// assert_eq!(status.status, SubscriptionStatus::Active);
    /// # Ok(()) }
    /// ```
    pub async fn subscription_status(
        &self,
        req: &SidRequest,
    ) -> Result<SubscriptionStatusResponse, Error> {
        self.call(Operation::SubscriptionStatus, req, CallContext::default())
            .await
    }

    /// Encodes a request body the way this client's generation sends it: the content type and bytes.
    pub fn encode<T: Serialize>(&self, req: &T) -> Result<(&'static str, Vec<u8>), Error> {
        encode(self.generation, req)
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        op: Operation,
        req: &Req,
        ctx: CallContext<'_>,
    ) -> Result<Resp, Error> {
        let (content_type, body) = self.encode(req)?;
        let span = tracing::info_span!(
            "kakaopay",
            operation = %op,
            generation = ?self.generation,
            tid = ctx.tid,
            partner_order_id = ctx.partner_order_id,
            latency_ms = tracing::field::Empty,
            outcome = tracing::field::Empty,
            attempts = tracing::field::Empty,
        );
        let url = format!("{}{}", self.base, self.generation.path(op));
        async {
            let started = Instant::now();
            let mut attempt = 0;
            let result = loop {
                let result = self.send_once::<Resp>(op, &url, content_type, body.clone()).await;
                match result {
                    Err(e) if op.is_idempotent() && e.is_retryable() && attempt < self.retry.max_retries => {
                        let wait = self.retry.backoff(attempt);
                        tracing::debug!(error = %e, wait_ms = wait.as_millis() as u64, "retrying lookup");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    other => break other,
                }
            };
            let span = tracing::Span::current();
            span.record("latency_ms", started.elapsed().as_secs_f64() * 1000.0);
            span.record("attempts", attempt + 1);
            match &result {
                Ok(_) => {
                    span.record("outcome", "ok");
                    tracing::debug!("KakaoPay call succeeded");
                }
                Err(e) => {
                    let outcome = match e {
                        Error::Api { error, .. } => format!("api_error {}", error.code),
                        Error::Transport { kind, .. } => format!("transport {kind:?}"),
                        Error::Decode { .. } => "decode_error".into(),
                        _ => "error".into(),
                    };
                    span.record("outcome", outcome.as_str());
                    tracing::warn!(error = %e, may_have_applied = e.may_have_applied(), "KakaoPay call failed");
                }
            }
            result
        }
        .instrument(span)
        .await
    }

    async fn send_once<Resp: DeserializeOwned>(
        &self,
        op: Operation,
        url: &str,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Result<Resp, Error> {
        let transport = |source: reqwest::Error| Error::Transport {
            operation: op,
            kind: if source.is_connect() {
                TransportKind::Connect
            } else if source.is_timeout() {
                TransportKind::Timeout
            } else {
                TransportKind::Reset
            },
            source,
        };
        let response = self
            .http
            .post(url)
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, content_type)
            .timeout(self.timeout)
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(transport)?;
        if (200..300).contains(&status) {
            serde_json::from_slice(&bytes)
                .map_err(|e| decode_error(op, status, e.to_string(), &bytes))
        } else {
            Err(parse_error(op, status, &bytes))
        }
    }
}

/// Encodes `req` for `generation`: JSON for the current one, a form body for the legacy one.
pub(crate) fn encode<T: Serialize>(
    generation: Generation,
    req: &T,
) -> Result<(&'static str, Vec<u8>), Error> {
    let fail = |e: serde_json::Error| Error::Config(format!("cannot encode the request: {e}"));
    Ok(match generation {
        Generation::Open => ("application/json", serde_json::to_vec(req).map_err(fail)?),
        Generation::Legacy => (
            "application/x-www-form-urlencoded;charset=utf-8",
            crate::wire::to_form(req).map_err(fail)?.into_bytes(),
        ),
    })
}

fn decode_error(op: Operation, status: u16, reason: String, body: &[u8]) -> Error {
    let text = String::from_utf8_lossy(body);
    Error::Decode {
        operation: op,
        status,
        reason,
        excerpt: text.chars().take(200).collect(),
    }
}

/// Reads either generation's error body: `{error_code, error_message, extras}` or
/// `{code, msg, extras}`.
fn parse_error(op: Operation, status: u16, body: &[u8]) -> Error {
    #[derive(serde::Deserialize)]
    struct Extras {
        #[serde(default, deserialize_with = "crate::wire::opt_text")]
        method_result_code: Option<String>,
        #[serde(default)]
        method_result_message: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Raw {
        #[serde(default, deserialize_with = "crate::wire::opt_int")]
        error_code: Option<i64>,
        #[serde(default)]
        error_message: Option<String>,
        #[serde(default, deserialize_with = "crate::wire::opt_int")]
        code: Option<i64>,
        #[serde(default)]
        msg: Option<String>,
        #[serde(default)]
        extras: Option<Extras>,
    }
    match serde_json::from_slice::<Raw>(body) {
        Ok(raw) if raw.error_code.or(raw.code).is_some() => {
            let code = raw.error_code.or(raw.code).unwrap_or_default();
            let extras = raw.extras;
            Error::Api {
                operation: op,
                error: Box::new(ApiError {
                    status,
                    code: ErrorCode::from_code(code),
                    message: raw.error_message.or(raw.msg).unwrap_or_default(),
                    method_result_code: extras.as_ref().and_then(|e| e.method_result_code.clone()),
                    method_result_message: extras.and_then(|e| e.method_result_message),
                }),
            }
        }
        Ok(_) => decode_error(op, status, "error answer without a code".into(), body),
        Err(e) => decode_error(op, status, e.to_string(), body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Credentials;

    #[test]
    fn both_error_shapes_parse() {
        let legacy = r#"{"code":-780,"msg":"approval failure!","extras":{"method_result_code":"USER_LOCKED","method_result_message":"진행중인 거래가 있습니다. 잠시 후 다시 시도해 주세요."}}"#;
        let e = parse_error(Operation::Approve, 400, legacy.as_bytes());
        let api = e.api().unwrap();
        assert_eq!(api.code, ErrorCode::ApprovalFailed);
        assert_eq!(api.message, "approval failure!");
        assert_eq!(api.method_result_code.as_deref(), Some("USER_LOCKED"));
        assert!(e.may_have_applied());

        let open = r#"{"error_code":-781,"error_message":"cancel failure!","extras":{"method_result_code":"6666","method_result_message":"원거래없음"}}"#;
        let e = parse_error(Operation::Cancel, 400, open.as_bytes());
        assert_eq!(e.code(), Some(ErrorCode::CancelFailed));
        assert!(!e.may_have_applied());

        let bare = br#"{"code":-401,"msg":"ip mismatched!"}"#;
        let e = parse_error(Operation::Ready, 401, bare);
        assert_eq!(e.code(), Some(ErrorCode::InvalidKey));
        assert_eq!(
            e.to_string(),
            "KakaoPay refused the ready: HTTP 401, code -401 (ip mismatched!)"
        );

        let html = b"<html>502 Bad Gateway</html>";
        let e = parse_error(Operation::Approve, 502, html);
        assert!(matches!(e, Error::Decode { status: 502, .. }));
        assert!(e.may_have_applied());
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let p = RetryPolicy::default();
        for attempt in 0..40 {
            assert!(p.backoff(attempt) <= p.max_backoff);
        }
        assert!(p.backoff(0) <= Duration::from_millis(100));
    }

    #[test]
    fn keys_are_redacted_and_validated() {
        let c = Credentials::secret_key("DEVSECRETKEY1234567890");
        assert!(!format!("{c:?}").contains("DEVSECRET"));
        let client = Client::builder(c).build().unwrap();
        assert!(!format!("{client:?}").contains("DEVSECRET"));
        assert_eq!(client.base_url(), "https://open-api.kakaopay.com");
        assert!(matches!(
            Client::builder(Credentials::admin_key(" ")).build(),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Client::builder(Credentials::admin_key("k"))
                .base_url("http://u:p@h")
                .build(),
            Err(Error::Config(_))
        ));
        let legacy = Client::builder(Credentials::admin_key("k"))
            .base_url("http://127.0.0.1:9/")
            .build()
            .unwrap();
        assert_eq!(legacy.base_url(), "http://127.0.0.1:9");
        assert_eq!(legacy.generation(), Generation::Legacy);
    }
}
