//! A typed async client for KakaoPay online payments, for both API generations.
//!
//! * **Current** (`open-api.kakaopay.com/online/v1/payment/*`, JSON, `SECRET_KEY`/`DEV_SECRET_KEY`)
//!   and **legacy** (`kapi.kakao.com/v1/payment/*`, form bodies, `KakaoAK`) behind one API: the
//!   [`Credentials`] you build the [`Client`] with choose the generation; the request and response
//!   types are the same.
//! * Every identifier and amount is a type that validates once ([`Cid`], [`Tid`], [`PgToken`],
//!   [`Amount`], …); requests are checked again before sending, so an invalid request never leaves
//!   the process ([`Error::Validation`]).
//! * One [`Error`] with the two answers callers need: [`Error::is_retryable`] and
//!   [`Error::may_have_applied`]. Approve, cancel and subscription charges are never retried by this
//!   crate; lookups are, with capped jittered backoff.
//! * Keys and pg_tokens never appear in `Debug` output, errors or logs.
//!
//! # A single payment: ready → (buyer authenticates) → approve → cancel
//!
//! The examples run against [`kakaopay-sandbox`](../kakaopay_sandbox/index.html), the project's
//! local KakaoPay; against the real service, drop `base_url` and use your key.
//!
//! ```
//! use kakaopay::{ApproveRequest, CancelRequest, Client, Credentials, OrderRequest, ReadyRequest};
//! use kakaopay::{Amount, Cid, OrderStatus, PgToken};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let sandbox = kakaopay_sandbox::spawn(kakaopay_sandbox::SandboxConfig::default()).await?;
//! let client = Client::builder(Credentials::secret_key("DEV0123456789ABCDEF0123456789ABCDEF01234"))
//!     .base_url(sandbox.base_url())
//!     .build()?;
//!
//! // 1. ready: the server decides the amount and keeps the TID with the order.
//! let ready = client
//!     .ready(
//!         &ReadyRequest::builder()
//!             .cid("TC0ONETIME")
//!             .partner_order_id("order-1001")
//!             .partner_user_id("user-42")
//!             .item_name("초코파이")
//!             .quantity(1)
//!             .total_amount(2200)
//!             .approval_url("https://shop.example/pay/approve?order=1001")
//!             .cancel_url("https://shop.example/pay/cancel?order=1001")
//!             .fail_url("https://shop.example/pay/fail?order=1001")
//!             .build()?,
//!     )
//!     .await?;
//! assert!(ready.next_redirect_pc_url.is_some());
//!
//! // 2. The buyer pays on KakaoPay's page and comes back with ?pg_token=… (here: a sandbox helper).
//! let pg_token = PgToken::parse(sandbox.authorize(ready.tid.as_str())?)?;
//!
//! // 3. approve, then check the amount against the order.
//! let cid = Cid::parse("TC0ONETIME")?;
//! let approved = client
//!     .approve(&ApproveRequest::new(
//!         cid.clone(),
//!         ready.tid.clone(),
//!         "order-1001".parse()?,
//!         "user-42".parse()?,
//!         pg_token,
//!     ))
//!     .await?;
//! assert_eq!(approved.amount.total, Amount::new(2200)?);
//! assert_eq!(approved.amount.vat, Amount::new(200)?); // the default VAT rule
//!
//! // 4. refund 1,100 won of it, guarding against a concurrent refund.
//! let cancel = CancelRequest::new(cid.clone(), ready.tid.clone(), Amount::new(1100)?, Amount::ZERO)
//!     .expect_available(Amount::new(2200)?);
//! let canceled = client.cancel(&cancel).await?;
//! assert_eq!(canceled.status, OrderStatus::PartCancelPayment);
//! assert_eq!(canceled.cancel_available_amount.total, Amount::new(1100)?);
//!
//! // 5. The order lookup is the source of truth (reconciliation, unclear outcomes).
//! let order = client.order(&OrderRequest::new(cid, ready.tid)).await?;
//! assert_eq!(order.payment_action_details.len(), 2);
//! # Ok(())
//! # }
//! ```
//!
//! # When approve fails
//!
//! ```
//! # use kakaopay::*;
//! # async fn handle(client: &Client, req: &ApproveRequest) -> Result<(), Error> {
//! match client.approve(req).await {
//!     Ok(paid) => { /* record paid.aid and paid.amount */ }
//!     Err(e) if e.may_have_applied() => {
//!         // Timeout, reset, 5xx, -702, -785, -780 USER_LOCKED/BANK_FIRM_UNKNOWN:
//!         // keep the payment "approving" and look the order up until its status is final.
//!         let order = client.order(&OrderRequest::new(req.cid.clone(), req.tid.clone())).await?;
//!         let _paid = order.status.is_paid();
//!     }
//!     Err(e) => return Err(e), // refused: the payment failed, nothing was taken
//! }
//! # Ok(()) }
//! ```

#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod approve;
mod builder;
mod cancel;
mod client;
mod common;
mod error;
mod ids;
mod money;
mod order;
mod ready;
mod settings;
mod subscription;
mod wire;

pub use approve::{ApproveRequest, ApproveResponse};
pub use builder::ClientBuilder;
pub use cancel::{CancelRequest, CancelResponse};
pub use client::Client;
pub use common::{
    CardInfo, InstallmentType, KstDateTime, OrderStatus, PaymentActionDetail, PaymentActionType,
    PaymentMethodType, SelectedCardInfo, SequentialPaymentMethod, SubscriptionStatus,
};
pub use error::{ApiError, Error, ErrorCode, Operation, TransportKind, ValidationError};
pub use ids::{
    Aid, Cid, CidSecret, InstallMonth, ItemCode, ItemName, PartnerOrderId, PartnerUserId, Payload,
    PgToken, Quantity, RedirectUrl, Sid, Tid,
};
pub use money::{Amount, AmountBreakdown, default_vat};
pub use order::{OrderRequest, OrderResponse};
pub use ready::ReadyResponse;
pub use ready::{ReadyRequest, ReadyRequestBuilder};
pub use settings::{Credentials, Generation, RetryPolicy};
pub use subscription::{
    SidRequest, SubscriptionInactiveResponse, SubscriptionRequest, SubscriptionStatusResponse,
};

/// The answer of a subscription charge has the shape of approve's.
pub type SubscriptionResponse = ApproveResponse;
