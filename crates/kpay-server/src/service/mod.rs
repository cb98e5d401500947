//! Use cases, one per function, in atomic phases: claim the step in the store (a conditional
//! update), call KakaoPay outside any transaction, record the outcome. An unclear outcome is a
//! state (`approving`, a pending refund), resolved by order lookups right away in the background
//! and again by the reconciler until known.

mod approve;
mod create;
mod refund;
pub(crate) mod resolve;
mod sync;

pub use create::{Channel, CreatePayment};
pub use refund::{RefundInput, RefundResult};
pub use resolve::Resolvers;
pub use sync::SyncReport;

use crate::domain::{AmountsError, PaymentStatus, RefundError, TransitionError};
use crate::gateway::Gateway;
use crate::store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::task::TaskTracker;

/// What the use cases need.
#[derive(Clone, Debug)]
pub struct Services {
    /// The ledger.
    pub store: Store,
    /// KakaoPay.
    pub kakaopay: Gateway,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Background work (lookups after unclear outcomes) that shutdown waits for.
    pub tasks: TaskTracker,
    /// The payments this process is resolving in the background (one resolver each).
    pub resolvers: Resolvers,
}

/// The Idempotency-Key of the request being served, as the idempotency layer hands it to the use
/// cases that bind it to their effect. They look for the effect first, whatever the key's row
/// says: a first attempt may have made it and then failed to store its answer (a crash, or a
/// database error answered with a 5xx, which frees the key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The key.
    pub key: String,
}

/// Settings of the use cases.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Base URL browsers reach, for callback URLs.
    pub public_url: String,
    /// See [`crate::ServerConfig::unknown_grace`].
    pub unknown_grace: Duration,
    /// How long one KakaoPay call may take (the client's timeout).
    pub kakaopay_timeout: Duration,
    /// How long a ready stays payable.
    pub payment_ttl: Duration,
    /// This instance's name (leases, logs).
    pub instance: String,
}

/// Why a use case failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
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
        /// Machine-readable code.
        code: &'static str,
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
        refund_id: String,
        /// KakaoPay's code or the server's reason.
        code: String,
        /// Why.
        message: String,
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
            code: "invalid_state",
            message: e.to_string(),
        }
    }
}

impl ServiceError {
    /// Whether `e` becomes [`ServiceError::Unavailable`] (a 5xx: trying again may work).
    pub fn is_unavailable(e: &kakaopay::Error) -> bool {
        e.is_retryable() || e.api().is_none()
    }

    /// A KakaoPay failure: [`ServiceError::Unavailable`] when trying again may work (outage,
    /// 5xx, quota), [`ServiceError::Refused`] when KakaoPay said no.
    pub fn kakaopay(e: kakaopay::Error) -> Self {
        if Self::is_unavailable(&e) {
            ServiceError::Unavailable(e)
        } else {
            ServiceError::Refused(e)
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A random id: `prefix` + 20 lower-case letters and digits.
pub fn new_id(prefix: &str) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let tail: String = (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{tail}")
}

impl Services {
    /// Loads a payment or fails with [`ServiceError::NotFound`].
    pub async fn payment(&self, id: &str) -> Result<crate::store::PaymentRecord, ServiceError> {
        self.store
            .payment(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(id.to_owned()))
    }

    /// How long after a call was sent its outcome may still change: the grace period, and never
    /// less than the call's own timeout (a lookup while the call is still out proves nothing; a
    /// grace shorter than the timeout would free a refund whose cancel is still on its way).
    fn grace_ms(&self) -> i64 {
        let grace = self
            .settings
            .unknown_grace
            .max(self.settings.kakaopay_timeout);
        i64::try_from(grace.as_millis()).unwrap_or(i64::MAX / 4)
    }

    /// Whether `status` is one whose truth lives at KakaoPay.
    pub fn is_unclear(status: PaymentStatus, refund_in_flight: bool) -> bool {
        status == PaymentStatus::Approving || refund_in_flight
    }
}
