//! The merchant's payment domain, pure: what a payment, a refund and an event-log line are
//! ([`Payment`], [`Refund`], [`PaymentEvent`]), built from typed values; where they stand
//! ([`PaymentStatus`], [`RefundStatus`]); the one function that decides every status change
//! ([`transition`]); and the money arithmetic. No I/O here: the services feed it what happened
//! and the store persists what it decides.

mod billing;
mod charge;
mod delivery;
mod event;
mod ids;
mod machine;
mod money;
mod payment;
mod refund;
mod subscription;
mod time;
mod webhook;

pub use billing::{Cadence, CadenceError, Interval, Period, period, period_at, period_start};
pub use charge::{
    Charge, ChargeFailureKind, ChargeKind, ChargeStatus, Dunning, DunningFinal, MERCHANT_HOLD,
    SEND_BUDGET, Subscription, SubscriptionCause, SubscriptionLogLine, Verdict, after_refusal,
    attempt_window, judge_lost_charge,
};
pub use delivery::{
    Answer, DeliveryStatus, FAILING_LIMIT, MAX_RETRY_AFTER, RetrySchedule, RetryScheduleError,
    Verdict as DeliveryVerdict, failing_too_long, judge as judge_attempt,
};
pub use event::{Cause, Detail, FailureCode, PaymentEvent};
pub(crate) use ids::random_tail;
pub use ids::{ChargeId, EventId, IdError, PaymentId, RefundId, SubscriptionId, WebhookEndpointId};
pub use machine::{
    Event, PaymentStatus, RefundStatus, Remote, TransitionError, reconcile, refund_event,
    transition,
};
pub use money::{Amounts, AmountsError, RefundError, RefundPlan, RefundRequest, plan_refund};
pub use payment::{Channel, EXPIRY_CHECK_DELAY, Failure, Payment, PaymentChange, Redirects};
pub use refund::{Refund, RefundAid};
pub use subscription::{
    ChargeFailure, DunningSchedule, DunningScheduleError, SubscriptionEvent, SubscriptionStatus,
    SubscriptionTransitionError, charge_failure, subscription_transition,
};
pub use time::Timestamp;
pub(crate) use time::kst;
pub use webhook::{
    Destination, DestinationError, EndpointStatus, EventSelection, EventType, WebhookEndpoint,
    is_internal, subscription_events,
};
