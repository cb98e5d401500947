//! What a client is configured with: the API generation, the credential (which decides it), and
//! the retry policy of lookups.

use crate::error::{Error, Operation};
use rand::Rng;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::time::Duration;

/// Which KakaoPay API a client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Generation {
    /// `open-api.kakaopay.com/online/v1/payment/*`: JSON bodies, `SECRET_KEY` auth,
    /// `error_code`/`error_message` errors.
    Open,
    /// `kapi.kakao.com/v1/payment/*`: form bodies, `KakaoAK` auth, `code`/`msg` errors.
    Legacy,
}

impl Generation {
    /// The production host.
    pub const fn default_base_url(self) -> &'static str {
        match self {
            Self::Open => "https://open-api.kakaopay.com",
            Self::Legacy => "https://kapi.kakao.com",
        }
    }
    /// The path of `op` below the base URL.
    pub fn path(self, op: Operation) -> String {
        match self {
            Self::Open => format!("/online/v1/payment/{}", op.path_tail()),
            Self::Legacy => format!("/v1/payment/{}", op.path_tail()),
        }
    }
}

/// A KakaoPay credential; its kind decides the API generation.
#[derive(Clone)]
pub enum Credentials {
    /// Current generation, `Authorization: SECRET_KEY …` (production or dev secret key).
    SecretKey(SecretString),
    /// Current generation, `Authorization: DEV_SECRET_KEY …` (dev secret key).
    DevSecretKey(SecretString),
    /// Legacy generation, `Authorization: KakaoAK …` (Kakao Developers admin key).
    AdminKey(SecretString),
}

impl Credentials {
    /// A current-generation secret key.
    pub fn secret_key(key: impl Into<String>) -> Self {
        Self::SecretKey(SecretString::from(key.into()))
    }
    /// A current-generation dev secret key sent with the `DEV_SECRET_KEY` prefix.
    pub fn dev_secret_key(key: impl Into<String>) -> Self {
        Self::DevSecretKey(SecretString::from(key.into()))
    }
    /// A legacy admin key.
    pub fn admin_key(key: impl Into<String>) -> Self {
        Self::AdminKey(SecretString::from(key.into()))
    }
    /// The generation this credential belongs to.
    pub fn generation(&self) -> Generation {
        match self {
            Self::SecretKey(_) | Self::DevSecretKey(_) => Generation::Open,
            Self::AdminKey(_) => Generation::Legacy,
        }
    }
    pub(crate) fn header(&self) -> Result<HeaderValue, Error> {
        let (scheme, key) = match self {
            Self::SecretKey(k) => ("SECRET_KEY", k),
            Self::DevSecretKey(k) => ("DEV_SECRET_KEY", k),
            Self::AdminKey(k) => ("KakaoAK", k),
        };
        let key = key.expose_secret().trim();
        if key.is_empty() {
            return Err(Error::Config("the KakaoPay key is empty".into()));
        }
        let mut value = HeaderValue::from_str(&format!("{scheme} {key}")).map_err(|_| {
            Error::Config("the KakaoPay key contains characters not allowed in a header".into())
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SecretKey(_) => "SecretKey(<redacted>)",
            Self::DevSecretKey(_) => "DevSecretKey(<redacted>)",
            Self::AdminKey(_) => "AdminKey(<redacted>)",
        })
    }
}

/// Capped, jittered exponential backoff for lookups (the only calls retried automatically).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Upper bound of the first wait.
    pub initial_backoff: Duration,
    /// Upper bound of any wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub const NONE: RetryPolicy = RetryPolicy {
        max_retries: 0,
        initial_backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
    };

    /// The wait before retry number `attempt` (0-based): uniform in `[0, min(cap, base·2^attempt)]`
    /// ("full jitter"), so that many clients do not retry in step.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
            .min(self.max_backoff);
        let micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rand::rng().random_range(0..=micros))
    }
}
