//! The server's one time source. Everything the server decides by the time — expiry, grace
//! periods, back-off, leases, reports — reads it here, so that a test clock can move all of it at
//! once. A test clock is the system clock plus an offset that only moves forward; it exists only
//! while KakaoPay is a sandbox (with a real KakaoPay, time is the machine's).

use crate::domain::Timestamp;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The time source.
#[derive(Clone, Debug, Default)]
pub(crate) struct Clock {
    /// How far a test clock is ahead of the system clock, in ms; `None`: the system clock.
    ahead_ms: Option<Arc<AtomicU64>>,
}

/// Why the clock did not move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ClockError {
    /// This server runs on the system clock (KakaoPay is real).
    #[error("the clock can only be moved while KakaoPay is a sandbox")]
    NotATestClock,
    /// More than ten years at once, or past the end of time.
    #[error("the clock can move by at most ten years at once")]
    TooFar,
}

impl Clock {
    /// The machine's clock.
    pub(crate) fn system() -> Self {
        Self { ahead_ms: None }
    }

    /// A clock that starts at the machine's time and can be moved forward.
    pub(crate) fn test() -> Self {
        Self {
            ahead_ms: Some(Arc::new(AtomicU64::new(0))),
        }
    }

    /// Whether it can be moved.
    pub(crate) fn is_test(&self) -> bool {
        self.ahead_ms.is_some()
    }

    /// Now.
    pub(crate) fn now(&self) -> Timestamp {
        let now = Timestamp::now();
        match &self.ahead_ms {
            Some(ahead) => now.plus(Duration::from_millis(ahead.load(Ordering::Acquire))),
            None => now,
        }
    }

    /// Moves a test clock forward by `by`; answers the new now.
    pub(crate) fn advance(&self, by: Duration) -> Result<Timestamp, ClockError> {
        const TEN_YEARS: Duration = Duration::from_secs(10 * 366 * 86_400);
        let ahead = self.ahead_ms.as_ref().ok_or(ClockError::NotATestClock)?;
        if by > TEN_YEARS {
            return Err(ClockError::TooFar);
        }
        let ms = u64::try_from(by.as_millis()).map_err(|_| ClockError::TooFar)?;
        ahead
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| a.checked_add(ms))
            .map_err(|_| ClockError::TooFar)?;
        Ok(self.now())
    }
}

impl Clock {
    /// Moves a test clock forward to `at` if it is behind it (never back): the sandbox's clock
    /// is the reference, so that a move it made whose answer was lost, or that happened before
    /// this process started, is caught up with.
    pub(crate) fn catch_up(&self, at: Timestamp) -> Result<Timestamp, ClockError> {
        let now = self.now();
        if at > now {
            self.advance(at.since(now))
        } else {
            Ok(now)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_clock_moves_forward_and_the_system_clock_does_not() {
        let clock = Clock::test();
        let before = clock.now();
        let after = clock.advance(Duration::from_secs(3 * 86_400)).unwrap();
        assert!(after.since(before) >= Duration::from_secs(3 * 86_400));
        assert!(clock.now() >= after, "time goes on from there");
        let shared = clock.clone();
        shared.advance(Duration::from_secs(60)).unwrap();
        assert!(
            clock.now().since(after) >= Duration::from_secs(60),
            "clones share it"
        );
        assert_eq!(
            clock.advance(Duration::from_secs(11 * 366 * 86_400)),
            Err(ClockError::TooFar)
        );
        let system = Clock::system();
        assert_eq!(
            system.advance(Duration::from_secs(1)),
            Err(ClockError::NotATestClock)
        );
        assert!(!system.is_test() && clock.is_test());
        let ahead = clock.now().plus(Duration::from_secs(3600));
        assert!(clock.catch_up(ahead).unwrap() >= ahead);
        let now = clock.now();
        assert!(
            clock.catch_up(now.minus(Duration::from_secs(60))).unwrap() >= now,
            "never back"
        );
    }
}
