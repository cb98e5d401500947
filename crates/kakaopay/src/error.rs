//! The crate's one error type and the two questions every caller has about a failure:
//! [`Error::is_retryable`] (may I send this again?) and [`Error::may_have_applied`] (might KakaoPay
//! have done it anyway, so that I must look the order up before deciding?).

use std::fmt;

/// Which KakaoPay operation a call was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `payment/ready`.
    Ready,
    /// `payment/approve`.
    Approve,
    /// `payment/cancel`.
    Cancel,
    /// `payment/order` (order lookup).
    Order,
    /// `payment/subscription` (charge a SID).
    Subscription,
    /// `payment/manage/subscription/inactive`.
    SubscriptionInactive,
    /// `payment/manage/subscription/status`.
    SubscriptionStatus,
}

impl Operation {
    /// Path below `/v1/payment/` (legacy) and `/online/v1/payment/` (current).
    pub const fn path_tail(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Approve => "approve",
            Self::Cancel => "cancel",
            Self::Order => "order",
            Self::Subscription => "subscription",
            Self::SubscriptionInactive => "manage/subscription/inactive",
            Self::SubscriptionStatus => "manage/subscription/status",
        }
    }

    /// Whether the operation moves money or changes state at KakaoPay. Such calls are never retried
    /// blindly: after an unclear failure the order must be looked up instead.
    pub const fn is_mutating(self) -> bool {
        matches!(self, Self::Approve | Self::Cancel | Self::Subscription)
    }

    /// Whether sending the same request twice is harmless (lookups).
    pub const fn is_idempotent(self) -> bool {
        matches!(self, Self::Order | Self::SubscriptionStatus)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ready => "ready",
            Self::Approve => "approve",
            Self::Cancel => "cancel",
            Self::Order => "order lookup",
            Self::Subscription => "subscription charge",
            Self::SubscriptionInactive => "subscription inactivate",
            Self::SubscriptionStatus => "subscription status",
        })
    }
}

macro_rules! error_codes {
    ($($variant:ident = $code:literal, $desc:literal;)+) => {
        /// Every error code in the KakaoPay documentation (both generations), plus [`ErrorCode::Unknown`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $(#[doc = $desc] $variant,)+
            /// A code this crate does not know.
            Unknown(i64),
        }
        impl ErrorCode {
            /// Maps a numeric code to its variant.
            pub fn from_code(code: i64) -> Self {
                match code {
                    $($code => Self::$variant,)+
                    other => Self::Unknown(other),
                }
            }
            /// The numeric code.
            pub fn code(self) -> i64 {
                match self {
                    $(Self::$variant => $code,)+
                    Self::Unknown(c) => c,
                }
            }
            /// What the documentation says the code means.
            pub fn description(self) -> &'static str {
                match self {
                    $(Self::$variant => $desc,)+
                    Self::Unknown(_) => "undocumented error code",
                }
            }
        }
    };
}

error_codes! {
    InternalError = -1, "internal error; retry";
    InvalidParameter = -2, "missing or invalid parameter";
    FeatureNotEnabled = -3, "required feature or API not enabled for the app";
    AccountRestricted = -4, "account restricted";
    NoPermission = -5, "no permission for this API";
    ServiceProblem = -7, "service maintenance or internal problem";
    InvalidHeader = -8, "invalid header";
    ApiDiscontinued = -9, "API discontinued";
    QuotaExceededLegacy = -10, "quota exceeded";
    AuthorizationMissing = -400, "Authorization header missing (or, on the legacy API, a bad request)";
    InvalidKey = -401, "invalid key or app mismatch";
    ApiNotRegistered = -403, "online payment API not registered for the app, or call from an unregistered site";
    WrongUrl = -404, "wrong URL";
    QuotaExceeded = -429, "daily quota exceeded";
    ServerError = -500, "KakaoPay internal error (outcome unknown)";
    Maintenance = -503, "service under maintenance";
    LegacyMaintenance = -9798, "service under maintenance";
    NotAuthenticatedYet = -701, "approve called before the buyer finished authentication";
    AlreadyApproved = -702, "the payment is already approved";
    InvalidPointAmount = -703, "invalid point amount";
    InvalidMethodAmount = -704, "invalid amount of the original payment method";
    UnsupportedPaymentMethod = -705, "unsupported payment method";
    PartnerOrderIdMismatch = -706, "partner_order_id differs from the one sent with ready";
    PartnerUserIdMismatch = -707, "partner_user_id differs from the one sent with ready";
    InvalidPgToken = -708, "invalid pg_token";
    CancelAmountExceedsAvailable = -710, "cancel amount exceeds the cancellable amount";
    CancelAmountExceedsApproved = -711, "cancel amount exceeds the approved amount";
    TidNotFound = -721, "TID does not exist";
    InvalidAmount = -722, "invalid amount information";
    PaymentExpired = -723, "payment expired";
    InvalidSingleAmount = -724, "invalid single payment amount";
    InvalidTotalAmount = -725, "invalid total payment amount";
    InvalidOrder = -726, "invalid order information";
    InvalidMerchantApp = -730, "invalid merchant app information";
    InvalidCid = -731, "invalid CID";
    InvalidGid = -732, "invalid GID";
    InvalidCidSecret = -733, "invalid CID_SECRET";
    SidNotFound = -750, "SID does not exist";
    SidInactive = -751, "SID is inactive";
    SidMonthlyLimit = -752, "SID exceeded its monthly use count";
    SidUserMismatch = -753, "partner_user_id differs from the one the SID was issued to";
    NotKakaoTalkUser = -761, "phone number is not a KakaoTalk user";
    ApprovalFailed = -780, "approve failed (see extras)";
    CancelFailed = -781, "cancel failed (see extras)";
    SubscriptionFailed = -782, "subscription payment failed (see extras)";
    NotApprovable = -783, "approve is not possible in this state";
    NotCancellable = -784, "cancel is not possible in this state";
    DuplicateRequest = -785, "duplicate concurrent payment or cancel request";
    OverTransactionLimit = -797, "exceeds the per-transaction limit";
    IpNotAllowed = -798, "request from a non-allowed IP";
    DomainMismatch = -799, "request domain differs from the registered web domain";
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

/// `extras.method_result_code` values that mean "the outcome is not known yet".
const UNCLEAR_METHOD_RESULTS: [&str; 2] = ["BANK_FIRM_UNKNOWN", "USER_LOCKED"];

/// KakaoPay's error answer, with either generation's body shape normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status of the answer.
    pub status: u16,
    /// The numeric code.
    pub code: ErrorCode,
    /// KakaoPay's message (informational; branch on `code`).
    pub message: String,
    /// `extras.method_result_code`, e.g. `USER_LOCKED`, `BANK_FIRM_UNKNOWN`, `"6666"`.
    pub method_result_code: Option<String>,
    /// `extras.method_result_message`.
    pub method_result_message: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HTTP {}, code {} ({})",
            self.status, self.code, self.message
        )?;
        if let Some(m) = &self.method_result_code {
            write!(f, ", method result {m}")?;
            if let Some(msg) = &self.method_result_message {
                write!(f, ": {msg}")?;
            }
        }
        Ok(())
    }
}

impl ApiError {
    /// Whether `extras.method_result_code` says the outcome is still unknown.
    pub fn is_outcome_unclear(&self) -> bool {
        self.method_result_code
            .as_deref()
            .is_some_and(|c| UNCLEAR_METHOD_RESULTS.contains(&c))
    }
}

/// How a request failed to get an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// The connection could not be opened: the request never left.
    Connect,
    /// No answer within the timeout: the request may have been processed.
    Timeout,
    /// The connection broke after the request was sent, or another I/O failure.
    Reset,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "could not connect",
            Self::Timeout => "timed out waiting for the answer",
            Self::Reset => "connection lost before the answer",
        })
    }
}

/// A field that failed validation; nothing was sent. The message never repeats the rejected value,
/// which may be a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct ValidationError {
    field: &'static str,
    reason: String,
}

impl ValidationError {
    /// A validation error for `field`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
    /// The wire name of the offending field.
    pub fn field(&self) -> &'static str {
        self.field
    }
    /// Why it was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Everything that can go wrong in a call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// KakaoPay answered with an error.
    #[error("KakaoPay refused the {operation}: {error}")]
    Api {
        /// The call.
        operation: Operation,
        /// KakaoPay's answer.
        error: Box<ApiError>,
    },
    /// No usable answer arrived.
    #[error("KakaoPay {operation} failed: {kind}: {source}")]
    Transport {
        /// The call.
        operation: Operation,
        /// Connect, timeout or reset.
        kind: TransportKind,
        /// The underlying error (its text names the URL, never a key).
        #[source]
        source: reqwest::Error,
    },
    /// The answer could not be decoded.
    #[error(
        "KakaoPay {operation} answered HTTP {status} with a body this client cannot read ({reason}); it starts with {excerpt:?}"
    )]
    Decode {
        /// The call.
        operation: Operation,
        /// HTTP status.
        status: u16,
        /// What did not fit.
        reason: String,
        /// The first 200 characters of the body.
        excerpt: String,
    },
    /// The request was refused before sending: nothing left the process.
    #[error("request not sent: {0}")]
    Validation(#[from] ValidationError),
    /// The client was configured wrongly.
    #[error("invalid KakaoPay client configuration: {0}")]
    Config(String),
}

impl Error {
    /// The operation the error belongs to, if a call was made.
    pub fn operation(&self) -> Option<Operation> {
        match self {
            Self::Api { operation, .. }
            | Self::Transport { operation, .. }
            | Self::Decode { operation, .. } => Some(*operation),
            Self::Validation(_) | Self::Config(_) => None,
        }
    }

    /// KakaoPay's answer, when the failure is one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The numeric KakaoPay code, when the failure is an API error.
    pub fn code(&self) -> Option<ErrorCode> {
        self.api().map(|e| e.code)
    }

    /// May the caller send the same request again as it is?
    ///
    /// Yes when the request provably never reached KakaoPay (connect failure) or was refused for quota.
    /// Lookups and ready also after timeouts, resets, 5xx and maintenance (a repeated ready only
    /// leaves an unused TID to expire). Approve, cancel and subscription charges: never after an
    /// unclear failure — [`Error::may_have_applied`] is true then, and the order must be looked up.
    pub fn is_retryable(&self) -> bool {
        use ErrorCode::*;
        match self {
            Self::Transport {
                kind: TransportKind::Connect,
                ..
            } => true,
            Self::Transport { operation, .. } => !operation.is_mutating(),
            Self::Api { operation, error } => match error.code {
                QuotaExceeded | QuotaExceededLegacy => true,
                InternalError | ServerError | ServiceProblem | Maintenance | LegacyMaintenance => {
                    !operation.is_mutating()
                }
                _ => error.status >= 500 && !operation.is_mutating(),
            },
            Self::Decode {
                operation, status, ..
            } => *status >= 500 && !operation.is_mutating(),
            Self::Validation(_) | Self::Config(_) => false,
        }
    }

    /// Might KakaoPay have applied this approve, cancel or charge despite the error?
    ///
    /// True for timeouts and resets after sending, 5xx answers, undecodable success answers,
    /// `-702` (already approved), `-785` (a concurrent duplicate is in flight), and `-780`/`-781`/`-782`
    /// with `USER_LOCKED` or `BANK_FIRM_UNKNOWN`. When true, do not treat the call as failed: look the
    /// order up (KakaoPay's own guidance) until its status is final. Always false for lookups and ready.
    pub fn may_have_applied(&self) -> bool {
        use ErrorCode::*;
        let Some(op) = self.operation() else {
            return false;
        };
        if !op.is_mutating() {
            return false;
        }
        match self {
            Self::Transport { kind, .. } => *kind != TransportKind::Connect,
            Self::Decode { .. } => true,
            Self::Api { error, .. } => {
                error.status >= 500
                    || matches!(
                        error.code,
                        AlreadyApproved | DuplicateRequest | ServerError | InternalError
                    )
                    || (matches!(
                        error.code,
                        ApprovalFailed | CancelFailed | SubscriptionFailed
                    ) && error.is_outcome_unclear())
            }
            Self::Validation(_) | Self::Config(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(op: Operation, status: u16, code: i64, mrc: Option<&str>) -> Error {
        Error::Api {
            operation: op,
            error: Box::new(ApiError {
                status,
                code: ErrorCode::from_code(code),
                message: "m".into(),
                method_result_code: mrc.map(str::to_owned),
                method_result_message: None,
            }),
        }
    }

    #[test]
    fn codes_round_trip() {
        for c in [
            -1, -2, -401, -701, -702, -708, -710, -721, -723, -731, -780, -785, -799, -9798,
        ] {
            let code = ErrorCode::from_code(c);
            assert!(
                !matches!(code, ErrorCode::Unknown(_)),
                "{c} should be known"
            );
            assert_eq!(code.code(), c);
        }
        assert_eq!(ErrorCode::from_code(-12345), ErrorCode::Unknown(-12345));
        assert_eq!(ErrorCode::from_code(-12345).code(), -12345);
    }

    #[test]
    fn unclear_approve_outcomes_may_have_applied() {
        use Operation::*;
        assert!(api(Approve, 400, -780, Some("USER_LOCKED")).may_have_applied());
        assert!(api(Approve, 400, -780, Some("BANK_FIRM_UNKNOWN")).may_have_applied());
        assert!(!api(Approve, 400, -780, Some("6666")).may_have_applied());
        assert!(api(Cancel, 500, -781, None).may_have_applied());
        assert!(api(Approve, 400, -702, None).may_have_applied());
        assert!(api(Cancel, 400, -785, None).may_have_applied());
        assert!(!api(Approve, 400, -708, None).may_have_applied());
        assert!(!api(Order, 500, -500, None).may_have_applied());
        assert!(!api(Ready, 500, -500, None).may_have_applied());
    }

    #[test]
    fn only_lookups_retry_after_server_errors() {
        use Operation::*;
        assert!(api(Order, 500, -500, None).is_retryable());
        assert!(api(SubscriptionStatus, 503, -503, None).is_retryable());
        assert!(!api(Approve, 500, -500, None).is_retryable());
        assert!(!api(Approve, 503, -503, None).is_retryable());
        assert!(api(Approve, 429, -429, None).is_retryable());
        assert!(api(Ready, 500, -500, None).is_retryable());
        assert!(!api(Order, 400, -721, None).is_retryable());
        assert!(!Error::Validation(ValidationError::new("cid", "x")).is_retryable());
    }
}
