//! The sandbox's clock: real time plus an offset that tests move forward to expire payments.
//!
//! The offset is bounded: the sandbox is reachable by anyone who can reach the server's built-in
//! sandbox, and one advance past what `chrono` can represent would make every later request
//! fail. Moves beyond the bounds are refused (400), never applied.

use chrono::{DateTime, Duration, Utc};
use std::sync::atomic::{AtomicI64, Ordering};

/// The most one advance may move the clock: ten years (renewals, expiries and retention all
/// fit in that).
pub const MAX_ADVANCE_SECONDS: u64 = 10 * 366 * 86_400;
/// The most the clock may run ahead of real time in all: a hundred years.
pub const MAX_OFFSET_SECONDS: i64 = 100 * 366 * 86_400;

/// Why the clock did not move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// One move larger than [`MAX_ADVANCE_SECONDS`].
    #[error("seconds must be at most {MAX_ADVANCE_SECONDS} (ten years) per advance")]
    TooFar,
    /// The clock would run more than [`MAX_OFFSET_SECONDS`] ahead of real time.
    #[error(
        "the sandbox clock may run at most {MAX_OFFSET_SECONDS} seconds (a hundred years) ahead of real time"
    )]
    TooFarAhead,
}

/// Wall-clock time shifted by an adjustable offset. Lock-free: read on every request.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    /// The sandbox's current time.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock forward by `seconds` (never backwards) and returns the new time.
    pub fn advance(&self, seconds: u64) -> Result<DateTime<Utc>, ClockError> {
        if seconds > MAX_ADVANCE_SECONDS {
            return Err(ClockError::TooFar);
        }
        // In range by the check above: at most ten years in milliseconds.
        let add = i64::try_from(seconds).map_err(|_| ClockError::TooFar)? * 1000;
        self.offset_ms
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |offset| {
                offset
                    .checked_add(add)
                    .filter(|o| *o <= MAX_OFFSET_SECONDS * 1000)
            })
            .map_err(|_| ClockError::TooFarAhead)?;
        Ok(self.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_are_bounded_and_refused_ones_change_nothing() {
        let clock = Clock::default();
        assert_eq!(clock.advance(u64::MAX), Err(ClockError::TooFar));
        assert_eq!(
            clock.advance(9_000_000_000_000_000),
            Err(ClockError::TooFar)
        );
        assert!(clock.now() < Utc::now() + Duration::seconds(5));
        for _ in 0..10 {
            clock.advance(MAX_ADVANCE_SECONDS).unwrap();
        }
        assert_eq!(
            clock.advance(MAX_ADVANCE_SECONDS),
            Err(ClockError::TooFarAhead)
        );
        assert_eq!(clock.advance(60), Err(ClockError::TooFarAhead));
        // Still readable, and zero moves still answer.
        assert!(clock.advance(0).is_ok());
        assert!(clock.now() > Utc::now() + Duration::days(36_000));
    }
}
