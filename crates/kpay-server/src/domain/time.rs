//! Points in time of the ledger. Stored as milliseconds since the Unix epoch (one integer column,
//! ordered and compared in SQL); everywhere else a [`Timestamp`], shown in Korean time.

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use std::fmt;
use std::time::Duration;

/// A point in time, to the millisecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

/// Korea Standard Time (UTC+9, no daylight saving): the client's, so that both agree.
pub(crate) fn kst() -> FixedOffset {
    kakaopay::KstDateTime::offset()
}

impl Timestamp {
    /// Now, by this machine's clock.
    pub fn now() -> Self {
        Self::from(Utc::now())
    }

    /// From milliseconds since the epoch; `None` outside chrono's range (±262,000 years).
    pub fn from_millis(ms: i64) -> Option<Self> {
        DateTime::from_timestamp_millis(ms).map(Self)
    }

    /// Milliseconds since the epoch (the stored form).
    pub fn millis(self) -> i64 {
        self.0.timestamp_millis()
    }

    /// The UTC time.
    pub fn utc(self) -> DateTime<Utc> {
        self.0
    }

    /// The same instant in Korean time.
    pub fn kst(self) -> DateTime<FixedOffset> {
        self.0.with_timezone(&kst())
    }

    /// RFC 3339 in Korean time, to the second (`2026-11-22T10:00:00+09:00`): the API's form.
    pub fn rfc3339(self) -> String {
        self.kst().to_rfc3339_opts(SecondsFormat::Secs, false)
    }

    /// `self + d`, saturating at the end of time.
    pub fn plus(self, d: Duration) -> Self {
        chrono::TimeDelta::from_std(d)
            .ok()
            .and_then(|d| self.0.checked_add_signed(d))
            .map_or(Self(DateTime::<Utc>::MAX_UTC), Self)
    }

    /// `self - d`, saturating at the beginning of time.
    pub fn minus(self, d: Duration) -> Self {
        chrono::TimeDelta::from_std(d)
            .ok()
            .and_then(|d| self.0.checked_sub_signed(d))
            .map_or(Self(DateTime::<Utc>::MIN_UTC), Self)
    }

    /// How long after `earlier` this is (zero if it is not later).
    pub fn since(self, earlier: Timestamp) -> Duration {
        (self.0 - earlier.0).to_std().unwrap_or(Duration::ZERO)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    /// Truncated to the millisecond, the stored precision: a time read back equals the one written.
    fn from(t: DateTime<Utc>) -> Self {
        DateTime::from_timestamp_millis(t.timestamp_millis()).map_or(Self(t), Self)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_trip_and_show_in_korean_time() {
        let t = Timestamp::from_millis(1_763_773_200_000).unwrap();
        assert_eq!(t.millis(), 1_763_773_200_000);
        assert_eq!(t.rfc3339(), "2025-11-22T10:00:00+09:00");
        assert_eq!(
            t.plus(Duration::from_secs(5)).since(t),
            Duration::from_secs(5)
        );
        assert_eq!(t.since(t.plus(Duration::from_secs(5))), Duration::ZERO);
        assert_eq!(
            t.plus(Duration::from_secs(7)).minus(Duration::from_secs(7)),
            t
        );
    }

    #[test]
    fn times_keep_the_stored_precision() {
        let t = Timestamp::now();
        assert_eq!(Timestamp::from_millis(t.millis()), Some(t));
    }

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        let t = Timestamp::now();
        assert!(t.plus(Duration::MAX) > t);
        assert!(t.minus(Duration::MAX) < t);
        assert_eq!(Timestamp::from_millis(i64::MAX), None);
    }
}
