//! Use cases, one per function, in atomic phases: claim the step in the store (a conditional
//! update), call KakaoPay outside any transaction, record the outcome. An unclear outcome is a
//! state (`approving`, a pending refund), resolved by order lookups right away in the background
//! and again by the reconciler until known.

mod approve;
mod clock;
mod create;
pub(crate) mod delivery;
mod keys;
pub(crate) mod reconciler;
mod refund;
mod reports;
pub(crate) mod resolve;
pub(crate) mod subscriptions;
mod sync;
mod webhooks;

pub(crate) use clock::{Clock, ClockError};
pub(crate) use create::CreatePayment;
pub(crate) use refund::RefundInput;
pub(crate) use resolve::Resolvers;
pub(crate) use subscriptions::{CreateSubscription, subscription_id};
pub(crate) use sync::SyncReport;

use crate::domain::{
    AmountsError, FailureCode, Payment, PaymentEvent, PaymentId, Refund, RefundError, RefundId,
    Timestamp, TransitionError,
};
use crate::gateway::Gateway;
use crate::store::{ListFilter, Page};
use crate::store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::task::TaskTracker;

/// What the use cases need.
#[derive(Clone, Debug)]
pub(crate) struct Services {
    /// The ledger: only the use cases (this module) touch it.
    store: Store,
    /// KakaoPay.
    pub(crate) kakaopay: Gateway,
    /// Settings.
    pub(crate) settings: Arc<Settings>,
    /// Background work (lookups after unclear outcomes) that shutdown waits for.
    pub(crate) tasks: TaskTracker,
    /// The payments this process is resolving in the background (one resolver each).
    pub(crate) resolvers: Resolvers,
    /// The time source of every decision.
    pub(crate) clock: Clock,
    /// Wakes this instance's webhook dispatcher (deliveries were added).
    pub(crate) deliveries_due: Arc<tokio::sync::Notify>,
    /// Cancelled when the server starts shutting down (long polls answer at once then).
    pub(crate) stopping: tokio_util::sync::CancellationToken,
    /// Long polls of the events feed waiting at once (each re-reads the feed a few times a
    /// second): past them, a poll answers without waiting.
    pub(crate) long_polls: Arc<tokio::sync::Semaphore>,
}

/// The Idempotency-Key of the request being served, as the idempotency layer hands it to the use
/// cases that bind it to their effect. They look for the effect first, whatever the key's row
/// says: a first attempt may have made it and then failed to store its answer (a crash, or a
/// database error answered with a 5xx, which frees the key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IdempotencyKey {
    /// The key.
    pub(crate) key: String,
}

/// Why a request conflicts with the payment's state (HTTP 409); the text is the API's
/// `error.code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub(crate) enum Conflict {
    /// The payment has nothing to refund (not paid, or all refunded).
    NotRefundable,
    /// Another refund of the payment is in flight.
    RefundInProgress,
    /// The refundable balance changed since an operator confirmed it.
    BalanceChanged,
    /// The merchant order already has a payment that can still be, or has been, paid.
    DuplicateOrder,
    /// The state machine refuses the change.
    InvalidState,
    /// KakaoPay answered ready without a page to send the buyer to.
    KakaopayNoRedirect,
    /// Another charge of the subscription is in flight or unresolved.
    ChargeInProgress,
}

impl Conflict {
    /// The API's code.
    pub(crate) fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Long polls of the events feed one instance holds open at once.
const LONG_POLLS: usize = 64;

/// Settings of the use cases.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// Base URL browsers reach, for callback URLs.
    pub(crate) public_url: String,
    /// See [`crate::ServerConfig::unknown_grace`].
    pub(crate) unknown_grace: Duration,
    /// How long one KakaoPay call may take (the client's timeout).
    pub(crate) kakaopay_timeout: Duration,
    /// How long a ready stays payable.
    pub(crate) payment_ttl: Duration,
    /// This instance's name (leases, logs).
    pub(crate) instance: String,
    /// Seals SIDs.
    pub(crate) vault: crate::vault::Vault,
    /// When refused renewals are retried.
    pub(crate) dunning_schedule: crate::domain::DunningSchedule,
    /// What dunning ends in.
    pub(crate) dunning_final: crate::domain::DunningFinal,
    /// Subscription charges out at once.
    pub(crate) renewal_concurrency: usize,
    /// Webhook destinations may be http and private (`--webhook-allow-private`, or KakaoPay is
    /// a sandbox: local development).
    pub(crate) webhooks_local: bool,
    /// When failed deliveries are tried again.
    pub(crate) webhook_retry_schedule: crate::domain::RetrySchedule,
}

/// Why a use case failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServiceError {
    /// No such payment.
    #[error("payment {0} not found")]
    NotFound(String),
    /// A field is invalid.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// The payment is not in a state that allows this.
    #[error("{message}")]
    Conflict {
        /// What kind of conflict.
        code: Conflict,
        /// Why.
        message: String,
    },
    /// KakaoPay refused the request for good; nothing happened.
    #[error("KakaoPay refused: {0}")]
    Refused(kakaopay::Error),
    /// KakaoPay could not be reached or answered unusably; nothing is known to have happened.
    #[error("KakaoPay is unavailable: {0}")]
    Unavailable(kakaopay::Error),
    /// A refund made earlier under the same Idempotency-Key ended in failure; nothing was
    /// refunded.
    #[error("refund {refund_id} failed ({code}): {message}")]
    RefundFailed {
        /// The refund.
        refund_id: RefundId,
        /// KakaoPay's code or the server's reason.
        code: FailureCode,
        /// Why.
        message: String,
    },
    /// KakaoPay answered without something the ledger needs; nothing was decided from it.
    #[error("KakaoPay's {operation} answer lacks {field}; nothing was changed")]
    Incomplete {
        /// The missing field.
        field: &'static str,
        /// Which call.
        operation: &'static str,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RefundError> for ServiceError {
    fn from(e: RefundError) -> Self {
        let field = match e {
            RefundError::TaxFreeTooLarge { .. } => "tax_free_amount",
            RefundError::VatTooLarge { .. } => "vat_amount",
            RefundError::FullRefundParts { field, .. } => field,
            _ => "amount",
        };
        ServiceError::Invalid {
            field,
            message: e.to_string(),
        }
    }
}

impl From<AmountsError> for ServiceError {
    fn from(e: AmountsError) -> Self {
        let field = match e {
            AmountsError::ZeroTotal => "total_amount",
            AmountsError::TaxFreeAboveTotal => "tax_free_amount",
            AmountsError::VatAboveTaxable => "vat_amount",
        };
        ServiceError::Invalid {
            field,
            message: e.to_string(),
        }
    }
}

impl From<TransitionError> for ServiceError {
    fn from(e: TransitionError) -> Self {
        ServiceError::Conflict {
            code: Conflict::InvalidState,
            message: e.to_string(),
        }
    }
}

impl ServiceError {
    /// Whether `e` becomes [`ServiceError::Unavailable`] (a 5xx: trying again may work).
    pub(crate) fn is_unavailable(e: &kakaopay::Error) -> bool {
        e.is_retryable() || e.api().is_none()
    }

    /// A KakaoPay failure: [`ServiceError::Unavailable`] when trying again may work (outage,
    /// 5xx, quota), [`ServiceError::Refused`] when KakaoPay said no.
    pub(crate) fn kakaopay(e: kakaopay::Error) -> Self {
        if Self::is_unavailable(&e) {
            ServiceError::Unavailable(e)
        } else {
            ServiceError::Refused(e)
        }
    }
}

/// A random token: 20 lower-case letters and digits (locks, lease owners, run ids).
pub(crate) fn token() -> String {
    crate::domain::random_tail()
}

/// A payment id from a URL. Text that is not a payment id names no payment: not found, like an
/// unknown one.
pub(crate) fn payment_id(id: &str) -> Result<PaymentId, ServiceError> {
    PaymentId::parse(id).map_err(|_| ServiceError::NotFound(id.to_owned()))
}

impl Services {
    /// The use cases over `store` and KakaoPay.
    pub(crate) fn new(store: Store, kakaopay: Gateway, settings: Settings, clock: Clock) -> Self {
        Self {
            store,
            kakaopay,
            settings: Arc::new(settings),
            tasks: TaskTracker::new(),
            resolvers: Resolvers::default(),
            clock,
            deliveries_due: Arc::default(),
            stopping: tokio_util::sync::CancellationToken::new(),
            long_polls: Arc::new(tokio::sync::Semaphore::new(LONG_POLLS)),
        }
    }

    /// Now, by the server's clock.
    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Loads a payment or fails with [`ServiceError::NotFound`].
    pub(crate) async fn payment(&self, id: &PaymentId) -> Result<Payment, ServiceError> {
        self.store
            .payment(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(id.to_string()))
    }

    /// A payment with every refund of it, oldest first.
    pub(crate) async fn payment_with_refunds(
        &self,
        id: &PaymentId,
    ) -> Result<(Payment, Vec<Refund>), ServiceError> {
        let payment = self.payment(id).await?;
        let refunds = self.store.refunds(id).await?;
        Ok((payment, refunds))
    }

    /// A payment's event log, oldest first.
    pub(crate) async fn events(&self, id: &PaymentId) -> Result<Vec<PaymentEvent>, ServiceError> {
        self.payment(id).await?;
        Ok(self.store.events(id).await?)
    }

    /// Closes the database, waiting for connections in use (shutdown).
    pub(crate) async fn close(&self) {
        self.store.close().await;
    }

    /// A round trip to the database (readiness).
    pub(crate) async fn ping_database(&self) -> Result<(), ServiceError> {
        Ok(self.store.ping().await?)
    }

    /// How many payments are in each status.
    pub(crate) async fn payment_counts(
        &self,
    ) -> Result<Vec<(crate::domain::PaymentStatus, u64)>, ServiceError> {
        Ok(self.store.status_counts().await?)
    }

    /// A page of payments, newest first.
    pub(crate) async fn payments(&self, filter: &ListFilter) -> Result<Page, ServiceError> {
        Ok(self.store.page(filter).await?)
    }

    /// How long after a call was sent its outcome may still change: the grace period, and never
    /// less than the call's own timeout (a lookup while the call is still out proves nothing; a
    /// grace shorter than the timeout would free a refund whose cancel is still on its way).
    pub(crate) fn grace(&self) -> Duration {
        self.settings
            .unknown_grace
            .max(self.settings.kakaopay_timeout)
    }
}
