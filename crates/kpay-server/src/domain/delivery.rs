//! Deliveries of events to webhook endpoints, pure: the retry schedule, what one attempt's
//! answer means (delivered, try again at…, give up, the endpoint is gone), and when an endpoint
//! that keeps failing is switched off. The worker (`service::delivery`) feeds it answers; the
//! store records what it decides.

use super::Timestamp;
use std::fmt;
use std::time::Duration;

/// When failed deliveries are tried again: each entry is the wait after the attempt before it
/// (`--webhook-retry-schedule`, seconds, comma separated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

/// A schedule that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RetryScheduleError {
    /// An entry is not a whole number of seconds from 1 to 604800 (a week).
    #[error(
        "webhook retry schedule entry {0:?}: expected whole seconds from 1 to 604800, like 300"
    )]
    Entry(String),
    /// No entry, or more than 30.
    #[error("webhook retry schedule must have 1 to 30 entries")]
    Length,
}

impl RetrySchedule {
    /// The longest single wait.
    pub const MAX_WAIT: Duration = Duration::from_secs(7 * 86_400);

    /// The default: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h (about three days in
    /// all, as Svix does).
    pub fn standard() -> Self {
        Self(
            [
                5u64, 300, 1_800, 7_200, 18_000, 36_000, 50_400, 72_000, 86_400,
            ]
            .map(Duration::from_secs)
            .to_vec(),
        )
    }

    /// Parses `5,300,1800`.
    pub fn parse(s: &str) -> Result<Self, RetryScheduleError> {
        let mut out = Vec::new();
        for raw in s.split(',').map(str::trim) {
            let secs = raw
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs)
                .filter(|d| !d.is_zero() && *d <= Self::MAX_WAIT)
                .ok_or_else(|| RetryScheduleError::Entry(raw.to_owned()))?;
            out.push(secs);
        }
        if out.is_empty() || out.len() > 30 {
            return Err(RetryScheduleError::Length);
        }
        Ok(Self(out))
    }

    /// How many retries follow the first attempt.
    pub fn retries(&self) -> usize {
        self.0.len()
    }

    /// The wait after attempt number `attempt` (1 = the first) failed; `None` when it was the
    /// last one.
    pub fn wait_after(&self, attempt: u32) -> Option<Duration> {
        let i = usize::try_from(attempt).ok()?.checked_sub(1)?;
        self.0.get(i).copied()
    }
}

impl fmt::Display for RetrySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|d| d.as_secs().to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

/// Where one delivery (an event to one endpoint) stands.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr, strum::Display,
)]
#[strum(serialize_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not delivered yet: an attempt is due (or running).
    Pending,
    /// A 2xx came back.
    Succeeded,
    /// Every attempt of the schedule failed, or the endpoint went away; `redeliver` starts over.
    Failed,
}

/// What the receiver did with one attempt, as far as the decision needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// An HTTP status came back; `retry_after` from its `Retry-After` header, if any.
    Status {
        /// The status code.
        code: u16,
        /// `Retry-After`, as a wait.
        retry_after: Option<Duration>,
    },
    /// No status: the connection failed, was reset, or the 15 s ran out.
    NoAnswer,
}

/// What follows an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered.
    Delivered,
    /// Try again at this time.
    RetryAt(Timestamp),
    /// The schedule is used up: the delivery failed.
    GiveUp,
    /// The receiver answered 410 Gone: the endpoint is disabled, nothing more is sent to it.
    Gone,
}

/// The longest `Retry-After` honoured; a longer one waits this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

/// How long an endpoint may fail every attempt before it is disabled.
pub const FAILING_LIMIT: Duration = Duration::from_secs(5 * 86_400);

/// The verdict on attempt number `attempt` (1 = the first of this round) answered with
/// `answer` at `now`. `jitter` in `[0, 1)` spreads the scheduled waits over ±10 % so that
/// deliveries failed together are not retried together. A `Retry-After` on 429 or 503 replaces
/// the scheduled wait (capped at a day) but still counts as an attempt: the schedule bounds the
/// calls whatever the receiver asks.
pub fn judge(
    answer: Answer,
    attempt: u32,
    schedule: &RetrySchedule,
    now: Timestamp,
    jitter: f64,
) -> Verdict {
    let retry_after = match answer {
        Answer::Status {
            code: 200..=299, ..
        } => return Verdict::Delivered,
        Answer::Status { code: 410, .. } => return Verdict::Gone,
        Answer::Status {
            code: 429 | 503,
            retry_after,
        } => retry_after,
        _ => None,
    };
    let Some(wait) = schedule.wait_after(attempt) else {
        return Verdict::GiveUp;
    };
    let wait = match retry_after {
        Some(asked) => asked.clamp(Duration::from_secs(1), MAX_RETRY_AFTER),
        None => wait.mul_f64(0.9 + 0.2 * jitter.clamp(0.0, 1.0)),
    };
    Verdict::RetryAt(now.plus(wait))
}

/// Whether an endpoint that has failed every attempt since `failing_since` is to be disabled
/// at `now`.
pub fn failing_too_long(failing_since: Option<Timestamp>, now: Timestamp) -> bool {
    failing_since.is_some_and(|since| now.since(since) >= FAILING_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t0() -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000).expect("a valid time")
    }

    #[test]
    fn the_standard_schedule_is_the_contracts() {
        assert_eq!(
            RetrySchedule::standard().to_string(),
            "5,300,1800,7200,18000,36000,50400,72000,86400"
        );
        assert_eq!(
            RetrySchedule::parse("5,300,1800,7200,18000,36000,50400,72000,86400"),
            Ok(RetrySchedule::standard())
        );
    }

    #[test]
    fn bad_schedules_say_which_entry() {
        assert_eq!(
            RetrySchedule::parse("5,abc"),
            Err(RetryScheduleError::Entry("abc".into()))
        );
        assert_eq!(
            RetrySchedule::parse("0"),
            Err(RetryScheduleError::Entry("0".into()))
        );
        assert_eq!(
            RetrySchedule::parse("604801"),
            Err(RetryScheduleError::Entry("604801".into()))
        );
        assert_eq!(
            RetrySchedule::parse(&vec!["1"; 31].join(",")),
            Err(RetryScheduleError::Length)
        );
    }

    #[test]
    fn retry_after_replaces_the_wait_on_429_and_503_only() {
        let s = RetrySchedule::parse("5,300").expect("valid");
        let asked = Some(Duration::from_secs(120));
        for code in [429, 503] {
            assert_eq!(
                judge(
                    Answer::Status {
                        code,
                        retry_after: asked
                    },
                    1,
                    &s,
                    t0(),
                    0.5
                ),
                Verdict::RetryAt(t0().plus(Duration::from_secs(120)))
            );
        }
        assert_eq!(
            judge(
                Answer::Status {
                    code: 500,
                    retry_after: asked
                },
                1,
                &s,
                t0(),
                0.5
            ),
            Verdict::RetryAt(t0().plus(Duration::from_secs(5)))
        );
        // Even a receiver asking for more time gets no more attempts than the schedule.
        assert_eq!(
            judge(
                Answer::Status {
                    code: 429,
                    retry_after: asked
                },
                3,
                &s,
                t0(),
                0.5
            ),
            Verdict::GiveUp
        );
    }

    #[test]
    fn five_days_of_failures_disable() {
        assert!(!failing_too_long(None, t0()));
        assert!(!failing_too_long(
            Some(t0()),
            t0().plus(FAILING_LIMIT - Duration::from_secs(1))
        ));
        assert!(failing_too_long(Some(t0()), t0().plus(FAILING_LIMIT)));
    }

    fn answer() -> impl Strategy<Value = Answer> {
        prop_oneof![
            Just(Answer::NoAnswer),
            (100u16..600, proptest::option::of(0u64..200_000)).prop_map(|(code, ra)| {
                Answer::Status {
                    code,
                    retry_after: ra.map(Duration::from_secs),
                }
            }),
        ]
    }

    proptest! {
        #[test]
        fn verdicts_follow_the_rules(
            a in answer(),
            attempt in 1u32..40,
            waits in proptest::collection::vec(1u64..604_800, 1..30),
            jitter in 0.0f64..1.0,
        ) {
            let text = waits.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
            let s = RetrySchedule::parse(&text).expect("valid");
            let v = judge(a, attempt, &s, t0(), jitter);
            match a {
                Answer::Status { code: 200..=299, .. } => prop_assert_eq!(v, Verdict::Delivered),
                Answer::Status { code: 410, .. } => prop_assert_eq!(v, Verdict::Gone),
                _ if attempt as usize > waits.len() => prop_assert_eq!(v, Verdict::GiveUp),
                Answer::Status { code: 429 | 503, retry_after: Some(ra) } => {
                    let want = ra.clamp(Duration::from_secs(1), MAX_RETRY_AFTER);
                    prop_assert_eq!(v, Verdict::RetryAt(t0().plus(want)));
                }
                _ => {
                    let base = Duration::from_secs(waits[attempt as usize - 1]);
                    let Verdict::RetryAt(at) = v else { return Err(TestCaseError::fail("a retry")) };
                    let wait = at.since(t0());
                    prop_assert!(wait >= base.mul_f64(0.9) - Duration::from_millis(1));
                    prop_assert!(wait <= base.mul_f64(1.1) + Duration::from_millis(1));
                }
            }
        }
    }
}
