//! The sandbox's clock: real time plus an offset that tests move forward to expire payments.

use chrono::{DateTime, Duration, Utc};
use std::sync::atomic::{AtomicI64, Ordering};

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
    pub fn advance(&self, seconds: u64) -> DateTime<Utc> {
        let ms = i64::try_from(seconds)
            .unwrap_or(i64::MAX / 4)
            .saturating_mul(1000);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
        self.now()
    }
}
