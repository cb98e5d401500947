//! Crash points: named places in the money paths where a test can make the process die at once
//! (`abort`, as abrupt as SIGKILL: no destructor, no flush, no answer), to prove that what a crash
//! leaves behind is found and finished, never done twice. Armed only by `--test-crash-at` and only
//! while KakaoPay is a sandbox; a server talking to the real KakaoPay refuses to start with it.
//!
//! | point | the process dies right after… |
//! |---|---|
//! | `create.after_insert` | the payment (with its Idempotency-Key) is stored, before the answer is |
//! | `approve.after_kakaopay` | KakaoPay approved, before the approval is recorded |
//! | `refund.after_kakaopay` | KakaoPay refunded, before the refund is recorded |
//! | `renewal.after_claim` | a renewal attempt is recorded (pending), before its call |
//! | `renewal.after_kakaopay` | KakaoPay charged a renewal, before the charge is recorded |

use std::sync::OnceLock;

/// The points a test may arm.
pub(crate) const POINTS: [&str; 5] = [
    "create.after_insert",
    "approve.after_kakaopay",
    "refund.after_kakaopay",
    "renewal.after_claim",
    "renewal.after_kakaopay",
];

static ARMED: OnceLock<&'static str> = OnceLock::new();

/// Arms `point` for the rest of the process's life; `false` if it is not a known point.
pub(crate) fn arm(point: &str) -> bool {
    match POINTS.iter().find(|p| **p == point) {
        Some(p) => {
            let _ = ARMED.set(p);
            true
        }
        None => false,
    }
}

/// Dies here if `point` is armed.
pub(crate) fn hit(point: &str) {
    if ARMED.get().is_some_and(|p| *p == point) {
        eprintln!("kpay: crash point {point} reached; aborting (--test-crash-at)");
        std::process::abort();
    }
}
