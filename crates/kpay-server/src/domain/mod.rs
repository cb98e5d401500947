//! The merchant's payment domain, pure: statuses, the transition function, and the money arithmetic.
//! No I/O here; the services feed it what happened and persist what it decides.

mod machine;
mod money;

pub use machine::{
    Event, PaymentStatus, RefundStatus, Remote, TransitionError, reconcile, transition,
};
pub use money::{Amounts, AmountsError, RefundError, RefundPlan, RefundRequest, plan_refund};
