//! Injected faults: make the next matching calls fail, stall, or apply and then lose the answer.
//!
//! The registry is behind a mutex, but the hot path only reads an atomic counter of active faults:
//! with no fault configured, no lock is taken.

use crate::SandboxError;
use kakaopay::Operation;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Faults active at once: enough for any test, small enough that the registry's memory and the
/// scan on every call stay bounded whoever posts faults.
pub const MAX_FAULTS: usize = 256;
/// Longest `method_result_code` (KakaoPay's are short upper-case words).
pub const MAX_METHOD_RESULT_CODE: usize = 64;

/// Which endpoint a fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultEndpoint {
    /// ready.
    Ready,
    /// approve.
    Approve,
    /// cancel.
    Cancel,
    /// order lookup.
    Order,
    /// subscription charge (also inactivate and status).
    Subscription,
    /// every endpoint.
    #[serde(rename = "*")]
    Any,
}

impl FaultEndpoint {
    fn matches(self, op: Operation) -> bool {
        match self {
            Self::Any => true,
            Self::Ready => op == Operation::Ready,
            Self::Approve => op == Operation::Approve,
            Self::Cancel => op == Operation::Cancel,
            Self::Order => op == Operation::Order,
            Self::Subscription => matches!(
                op,
                Operation::Subscription
                    | Operation::SubscriptionInactive
                    | Operation::SubscriptionStatus
            ),
        }
    }
}

/// What the fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer with an error; nothing is applied.
    Error,
    /// Wait `delay_ms`, then process normally.
    Delay,
    /// Close the connection without an answer; nothing is applied.
    Drop,
    /// Apply the operation, then answer with an error.
    CommitThenError,
    /// Apply the operation, then close the connection without an answer.
    CommitThenDrop,
}

/// A fault as posted to `POST /test/v1/faults`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Which endpoint.
    pub endpoint: FaultEndpoint,
    /// What happens.
    pub action: FaultAction,
    /// Error code for `error`/`commit_then_error` (default: -780 approve, -781 cancel,
    /// -782 subscription, -500 otherwise).
    #[serde(default)]
    pub error_code: Option<i64>,
    /// HTTP status of the error (default 400 for -7xx codes, 500 otherwise).
    #[serde(default)]
    pub http_status: Option<u16>,
    /// `extras.method_result_code`, e.g. `USER_LOCKED`, `BANK_FIRM_UNKNOWN`.
    #[serde(default)]
    pub method_result_code: Option<String>,
    /// Delay before anything else happens, in milliseconds (all actions; `null` is 0).
    #[serde(default, deserialize_with = "null_as_zero")]
    pub delay_ms: u64,
    /// How many matching calls it hits (default: unlimited when `probability` is set, else 1).
    #[serde(default)]
    pub count: Option<u32>,
    /// Chance of hitting each matching call, 0–1 (default 1).
    #[serde(default)]
    pub probability: Option<f64>,
}

impl FaultSpec {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), SandboxError> {
        if let Some(p) = self.probability
            && !(0.0..=1.0).contains(&p)
        {
            return Err(SandboxError::bad_request(
                "probability must be between 0 and 1",
            ));
        }
        if self.count == Some(0) {
            return Err(SandboxError::bad_request("count must be at least 1"));
        }
        if let Some(s) = self.http_status
            && !(400..=599).contains(&s)
        {
            return Err(SandboxError::bad_request("http_status must be 400 to 599"));
        }
        if let Some(code) = &self.method_result_code
            && (code.is_empty()
                || code.len() > MAX_METHOD_RESULT_CODE
                || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            return Err(SandboxError::bad_request(format!(
                "method_result_code must be 1 to {MAX_METHOD_RESULT_CODE} letters, digits or underscores"
            )));
        }
        if self.delay_ms > 120_000 {
            return Err(SandboxError::bad_request("delay_ms must be at most 120000"));
        }
        Ok(())
    }
}

fn null_as_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.unwrap_or(0))
}

/// A fault that hit a call: what the API layer must do.
#[derive(Clone, Debug)]
pub struct Hit {
    /// The action.
    pub action: FaultAction,
    /// Milliseconds to wait first.
    pub delay_ms: u64,
    /// The error to answer with, for error actions.
    pub error: SandboxError,
}

struct Active {
    id: u64,
    spec: FaultSpec,
    remaining: Option<u32>,
}

/// The fault registry.
#[derive(Default)]
pub struct Faults {
    active: AtomicUsize,
    next_id: AtomicU64,
    list: Mutex<Vec<Active>>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Faults({} active)", self.active.load(Ordering::Relaxed))
    }
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Active>> {
        // A panic while holding this lock cannot leave the list inconsistent; keep going.
        self.list
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a fault; returns its id, or an error when [`MAX_FAULTS`] are active.
    pub fn add(&self, spec: FaultSpec) -> Result<u64, SandboxError> {
        let remaining = spec.count.or(if spec.probability.is_some() {
            None
        } else {
            Some(1)
        });
        let mut list = self.lock();
        if list.len() >= MAX_FAULTS {
            return Err(SandboxError::bad_request(format!(
                "at most {MAX_FAULTS} faults may be active; DELETE /test/v1/faults clears them"
            )));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        list.push(Active {
            id,
            spec,
            remaining,
        });
        self.active.store(list.len(), Ordering::Release);
        Ok(id)
    }

    /// Removes every fault; returns how many there were.
    pub fn clear(&self) -> usize {
        let mut list = self.lock();
        let n = list.len();
        list.clear();
        self.active.store(0, Ordering::Release);
        n
    }

    /// The first fault that hits a call of `op`, used up by one.
    pub fn take(&self, op: Operation) -> Option<Hit> {
        if self.active.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut list = self.lock();
        let mut rng = rand::rng();
        let index = list.iter().position(|f| {
            f.spec.endpoint.matches(op) && f.spec.probability.is_none_or(|p| rng.random_bool(p))
        })?;
        let fault = &mut list[index];
        let hit = Hit {
            action: fault.spec.action,
            delay_ms: fault.spec.delay_ms,
            error: error_for(op, &fault.spec),
        };
        if let Some(n) = fault.remaining.as_mut() {
            *n -= 1;
            if *n == 0 {
                list.remove(index);
            }
        }
        self.active.store(list.len(), Ordering::Release);
        Some(hit)
    }

    /// Ids of the active faults (for diagnostics).
    pub fn ids(&self) -> Vec<u64> {
        self.lock().iter().map(|f| f.id).collect()
    }
}

fn error_for(op: Operation, spec: &FaultSpec) -> SandboxError {
    let code = spec.error_code.unwrap_or(match op {
        Operation::Approve => -780,
        Operation::Cancel => -781,
        Operation::Subscription => -782,
        _ => -500,
    });
    let status = spec
        .http_status
        .unwrap_or(if (-799..=-700).contains(&code) {
            400
        } else {
            500
        });
    let message = match code {
        -780 => "approval failure!",
        -781 => "cancel failure!",
        -782 => "subscription failure!",
        _ => "injected fault",
    };
    let mut err = SandboxError::api(status, code, message);
    if let Some(mrc) = &spec.method_result_code {
        let msg = match mrc.as_str() {
            "USER_LOCKED" => "진행중인 거래가 있습니다. 잠시 후 다시 시도해 주세요.",
            "BANK_FIRM_UNKNOWN" => "은행 처리 결과를 알 수 없습니다.",
            _ => "injected fault",
        };
        err = err.with_method_result(mrc.clone(), msg);
    }
    err
}
