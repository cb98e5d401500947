//! Billing periods of a subscription, computed from its anchor — the registration time in Korean
//! time — and the period's number, never from the previous period's (clamped) date: an anchor on
//! Jan 31 renews on Feb 28 (29 in a leap year), Mar 31, Apr 30, and never drifts to the 28th. Pure;
//! KST is a fixed offset, so the machine's time zone plays no part.

use super::{Timestamp, kst};
use chrono::{DateTime, Datelike, Days, FixedOffset, Months, NaiveDate, TimeZone};

/// The unit of a subscription's cadence.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Interval {
    /// Every N days.
    Day,
    /// Every N weeks.
    Week,
    /// Every N months (the anchor's day, or the month's last day when it has fewer).
    Month,
    /// Every N years (Feb 29 renews on Feb 28 in other years).
    Year,
}

/// How often a subscription renews: `count` `interval`s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cadence {
    interval: Interval,
    count: u16,
}

/// A cadence that cannot be billed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("interval_count must be 1 to {max}, got {got}")]
pub struct CadenceError {
    /// The largest count.
    pub max: u16,
    /// What was asked.
    pub got: i64,
}

impl Cadence {
    /// The largest `interval_count`.
    pub const MAX_COUNT: u16 = 365;

    /// `count` `interval`s, 1 ≤ count ≤ 365.
    pub fn new(interval: Interval, count: i64) -> Result<Self, CadenceError> {
        u16::try_from(count)
            .ok()
            .filter(|c| (1..=Self::MAX_COUNT).contains(c))
            .map(|count| Self { interval, count })
            .ok_or(CadenceError {
                max: Self::MAX_COUNT,
                got: count,
            })
    }
    /// The unit.
    pub fn interval(self) -> Interval {
        self.interval
    }
    /// How many units.
    pub fn count(self) -> u16 {
        self.count
    }
}

/// One billing period: `[start, end)`, numbered from 0 (the registration's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Period {
    /// Its number.
    pub number: u32,
    /// When it starts (and its charge is due).
    pub start: Timestamp,
    /// When the next one starts.
    pub end: Timestamp,
}

/// The start of period `n` of a subscription anchored at `anchor`, or `None` past the end of
/// time (thousands of years away).
pub fn period_start(anchor: Timestamp, cadence: Cadence, n: u32) -> Option<Timestamp> {
    let local = anchor.kst();
    let steps = u64::from(n) * u64::from(cadence.count);
    let date = local.date_naive();
    let day = match cadence.interval {
        Interval::Day => date.checked_add_days(Days::new(steps))?,
        Interval::Week => date.checked_add_days(Days::new(steps.checked_mul(7)?))?,
        Interval::Month => add_months_clamped(date, steps)?,
        Interval::Year => add_months_clamped(date, steps.checked_mul(12)?)?,
    };
    let at: DateTime<FixedOffset> = kst()
        .from_local_datetime(&day.and_time(local.time()))
        .single()?;
    Some(Timestamp::from(at.to_utc()))
}

/// `date` + `months`, on the anchor's day of the month, or the last day of a shorter month.
fn add_months_clamped(date: NaiveDate, months: u64) -> Option<NaiveDate> {
    let first = date.with_day(1)?;
    let month = first.checked_add_months(Months::new(u32::try_from(months).ok()?))?;
    let last = month.checked_add_months(Months::new(1))?.pred_opt()?.day();
    month.with_day(date.day().min(last))
}

/// Period `n`.
pub fn period(anchor: Timestamp, cadence: Cadence, n: u32) -> Option<Period> {
    Some(Period {
        number: n,
        start: period_start(anchor, cadence, n)?,
        end: period_start(anchor, cadence, n.checked_add(1)?)?,
    })
}

/// The period that contains `at` (the first one for any time before the anchor).
pub fn period_at(anchor: Timestamp, cadence: Cadence, at: Timestamp) -> Option<Period> {
    // An estimate from the mean length of a period, corrected by at most a few steps: periods
    // are never shorter than 28 days per month nor longer than 31.
    let approx_days = match cadence.interval {
        Interval::Day => 1.0,
        Interval::Week => 7.0,
        Interval::Month => 30.436_875,
        Interval::Year => 365.242_5,
    } * f64::from(cadence.count);
    let elapsed_days = at.since(anchor).as_secs_f64() / 86_400.0;
    let mut n = u32::try_from((elapsed_days / approx_days) as u64).unwrap_or(u32::MAX);
    loop {
        let p = period(anchor, cadence, n)?;
        if at < p.start && n > 0 {
            n -= 1;
        } else if at >= p.end {
            n = n.checked_add(1)?;
        } else {
            return Some(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kst_time(y: i32, m: u32, d: u32, h: u32, min: u32) -> Timestamp {
        Timestamp::from(
            kst()
                .with_ymd_and_hms(y, m, d, h, min, 0)
                .single()
                .unwrap()
                .to_utc(),
        )
    }

    fn day(t: Timestamp) -> (i32, u32, u32) {
        let k = t.kst();
        (k.year(), k.month(), k.day())
    }

    fn monthly() -> Cadence {
        Cadence::new(Interval::Month, 1).unwrap()
    }

    #[test]
    fn month_end_anchors_renew_on_the_last_day_and_come_back() {
        let anchor = kst_time(2027, 1, 31, 10, 0);
        let days: Vec<_> = (0..5)
            .map(|n| day(period_start(anchor, monthly(), n).unwrap()))
            .collect();
        assert_eq!(
            days,
            [
                (2027, 1, 31),
                (2027, 2, 28),
                (2027, 3, 31),
                (2027, 4, 30),
                (2027, 5, 31)
            ]
        );
        // A leap year's February.
        let anchor = kst_time(2027, 12, 31, 10, 0);
        assert_eq!(
            day(period_start(anchor, monthly(), 2).unwrap()),
            (2028, 2, 29)
        );
    }

    #[test]
    fn days_are_korean_days_whatever_utc_says() {
        // 00:30 KST on Mar 1 is Feb 28 in UTC: the renewal is on the 1st, at 00:30 KST.
        let anchor = kst_time(2027, 3, 1, 0, 30);
        assert_eq!(anchor.utc().day(), 28);
        let next = period_start(anchor, monthly(), 1).unwrap();
        assert_eq!(day(next), (2027, 4, 1));
        assert_eq!(next.kst().time(), anchor.kst().time());
    }

    #[test]
    fn leap_day_anchors_renew_yearly_on_feb_28_and_29() {
        let anchor = kst_time(2028, 2, 29, 9, 0);
        let yearly = Cadence::new(Interval::Year, 1).unwrap();
        let days: Vec<_> = (0..5)
            .map(|n| day(period_start(anchor, yearly, n).unwrap()))
            .collect();
        assert_eq!(
            days,
            [
                (2028, 2, 29),
                (2029, 2, 28),
                (2030, 2, 28),
                (2031, 2, 28),
                (2032, 2, 29)
            ]
        );
    }

    #[test]
    fn weeks_and_days_and_year_boundaries() {
        let anchor = kst_time(2027, 12, 29, 23, 59);
        let biweekly = Cadence::new(Interval::Week, 2).unwrap();
        assert_eq!(
            day(period_start(anchor, biweekly, 1).unwrap()),
            (2028, 1, 12)
        );
        let every3 = Cadence::new(Interval::Day, 3).unwrap();
        assert_eq!(day(period_start(anchor, every3, 1).unwrap()), (2028, 1, 1));
    }

    #[test]
    fn cadences_are_validated() {
        assert!(Cadence::new(Interval::Month, 0).is_err());
        assert!(Cadence::new(Interval::Month, 366).is_err());
        assert_eq!(
            Cadence::new(Interval::Day, -1).unwrap_err().to_string(),
            "interval_count must be 1 to 365, got -1"
        );
        assert_eq!(Cadence::new(Interval::Year, 365).unwrap().count(), 365);
        assert_eq!("week".parse::<Interval>(), Ok(Interval::Week));
    }

    fn any_anchor() -> impl Strategy<Value = Timestamp> {
        (2000i32..2100, 1u32..=12, 1u32..=31, 0u32..24, 0u32..60).prop_map(|(y, m, d, h, min)| {
            let last = NaiveDate::from_ymd_opt(y, m, 1)
                .unwrap()
                .checked_add_months(Months::new(1))
                .unwrap()
                .pred_opt()
                .unwrap()
                .day();
            kst_time(y, m, d.min(last), h, min)
        })
    }

    fn any_cadence() -> impl Strategy<Value = Cadence> {
        (
            proptest::sample::select(<Interval as strum::VariantArray>::VARIANTS),
            1i64..=i64::from(Cadence::MAX_COUNT),
        )
            .prop_map(|(i, c)| Cadence::new(i, c).unwrap())
    }

    proptest! {
        /// 120 monthly renewals: each on the anchor's day (or the month's last day), at the
        /// anchor's KST time, in the right month — no drift however short the months between.
        #[test]
        fn monthly_renewals_never_drift(anchor in any_anchor(), n in 0u32..120) {
            let start = period_start(anchor, monthly(), n).unwrap().kst();
            let a = anchor.kst();
            let months = a.year() * 12 + a.month0() as i32 + n as i32;
            prop_assert_eq!((start.year(), start.month0() as i32), (months / 12, months % 12));
            let last = NaiveDate::from_ymd_opt(start.year(), start.month(), 1).unwrap()
                .checked_add_months(Months::new(1)).unwrap().pred_opt().unwrap().day();
            prop_assert_eq!(start.day(), a.day().min(last));
            prop_assert_eq!(start.time(), a.time());
        }

        /// Periods tile time: each ends where the next starts, strictly later, and the period
        /// found for any moment contains it.
        #[test]
        fn periods_tile_time(anchor in any_anchor(), cadence in any_cadence(), n in 0u32..200, into in 0.0f64..1.0) {
            let p = period(anchor, cadence, n).unwrap();
            prop_assert!(p.start < p.end);
            prop_assert_eq!(period(anchor, cadence, n + 1).unwrap().start, p.end);
            let inside = p.start.plus(p.end.since(p.start).mul_f64(into));
            let found = period_at(anchor, cadence, inside).unwrap();
            prop_assert_eq!(found.number, n);
            prop_assert_eq!(period_at(anchor, cadence, p.start).unwrap().number, n);
        }
    }
}
