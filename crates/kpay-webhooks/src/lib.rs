//! Standard Webhooks signatures, as the kpay server sends them and as a receiver checks them.
//!
//! A delivery carries three headers: `webhook-id` (the event id, the same on every retry),
//! `webhook-timestamp` (unix seconds of this attempt) and `webhook-signature`: one or more
//! space-separated `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with the bytes of
//! the endpoint's secret (`whsec_<base64>`). While a rotated secret is still valid, both sign.
//!
//! ```
//! use kpay_webhooks::{Secret, verify, signature_header};
//!
//! let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
//! let body = br#"{"test": 2432232314}"#;
//! let header = signature_header(&[&secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
//! assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
//! // A receiver: the headers as received, the raw body, its own clock.
//! verify(&[&secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", &header, body, 1614265331)
//!     .unwrap();
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a delivery's timestamp may be from the receiver's clock, either way (replays).
pub const TOLERANCE_SECONDS: i64 = 300;
/// Bytes of a generated secret (the spec asks for 24 to 64).
pub const SECRET_BYTES: usize = 32;

/// An endpoint's signing secret. Never printed by `Debug`; [`Secret::expose`] gives the
/// `whsec_…` form once, for the merchant.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(whsec_…)")
    }
}

/// A secret that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Not base64 after the optional `whsec_` prefix.
    #[error("webhook secret: not base64 after \"whsec_\"")]
    NotBase64,
    /// Too short or too long.
    #[error("webhook secret: {0} bytes; a secret has 24 to 64")]
    Length(usize),
}

impl Secret {
    /// A new random secret of [`SECRET_BYTES`] bytes.
    pub fn generate() -> Self {
        Self(rand::random::<[u8; SECRET_BYTES]>().to_vec())
    }

    /// `whsec_<base64>` (the prefix may be left out, as some senders' dashboards do).
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let b64 = text.trim().strip_prefix("whsec_").unwrap_or(text.trim());
        let key = STANDARD.decode(b64).map_err(|_| SecretError::NotBase64)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(Self(key))
    }

    /// The `whsec_…` form.
    pub fn expose(&self) -> String {
        format!("whsec_{}", STANDARD.encode(&self.0))
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable_hmac(),
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

#[cold]
fn unreachable_hmac() -> ! {
    // Documented by RustCrypto: HMAC accepts every key length.
    panic!("HMAC-SHA256 rejected a key")
}

/// `v1,<signature>` of one secret.
pub fn sign(secret: &Secret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = secret
        .mac(id, &timestamp.to_string(), body)
        .finalize()
        .into_bytes();
    format!("v1,{}", STANDARD.encode(tag))
}

/// The `webhook-signature` header: one signature per secret, space-separated.
pub fn signature_header(secrets: &[&Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| sign(s, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a delivery was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// `webhook-timestamp` is not unix seconds.
    #[error("webhook-timestamp is not a unix time in seconds")]
    BadTimestamp,
    /// Older than [`TOLERANCE_SECONDS`] (a replay, or a clock far behind).
    #[error("webhook-timestamp is more than 5 minutes old")]
    TooOld,
    /// Newer than [`TOLERANCE_SECONDS`] ahead.
    #[error("webhook-timestamp is more than 5 minutes in the future")]
    TooNew,
    /// No `v1` signature in the header matches any of the secrets.
    #[error("no webhook-signature matches the secret")]
    NoMatch,
}

/// Checks a delivery as received: `id` and `timestamp` are the `webhook-id` and
/// `webhook-timestamp` headers, `signatures` the `webhook-signature` header, `body` the raw bytes,
/// `now` the receiver's unix time. Accepted if any `v1` signature matches any secret (rotation);
/// the comparison is constant-time.
pub fn verify(
    secrets: &[&Secret],
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    if ts < now.saturating_sub(TOLERANCE_SECONDS) {
        return Err(VerifyError::TooOld);
    }
    if ts > now.saturating_add(TOLERANCE_SECONDS) {
        return Err(VerifyError::TooNew);
    }
    for candidate in signatures.split_whitespace() {
        let Some(b64) = candidate.strip_prefix("v1,") else {
            continue;
        };
        let Ok(tag) = STANDARD.decode(b64) else {
            continue;
        };
        for secret in secrets {
            // `verify_slice` compares in constant time.
            if secret
                .mac(id, timestamp.trim(), body)
                .verify_slice(&tag)
                .is_ok()
            {
                return Ok(());
            }
        }
    }
    Err(VerifyError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TS: i64 = 1_614_265_330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    #[test]
    fn the_specifications_test_vector_signs_and_verifies() {
        let s = Secret::parse(VECTOR_SECRET).unwrap();
        assert_eq!(sign(&s, VECTOR_ID, VECTOR_TS, VECTOR_BODY), VECTOR_SIG);
        let ts = VECTOR_TS.to_string();
        assert_eq!(
            verify(&[&s], VECTOR_ID, &ts, VECTOR_SIG, VECTOR_BODY, VECTOR_TS),
            Ok(())
        );
        // With an unknown version and a wrong signature before it: still accepted.
        let several = format!("v2,abc v1,bm9wZQ== {VECTOR_SIG}");
        assert_eq!(
            verify(&[&s], VECTOR_ID, &ts, &several, VECTOR_BODY, VECTOR_TS),
            Ok(())
        );
    }

    #[test]
    fn tampering_stale_and_future_deliveries_are_refused() {
        let s = Secret::parse(VECTOR_SECRET).unwrap();
        let ts = VECTOR_TS.to_string();
        let v = |id: &str, ts: &str, sig: &str, body: &[u8], now: i64| {
            verify(&[&s], id, ts, sig, body, now)
        };
        assert_eq!(
            v(VECTOR_ID, &ts, VECTOR_SIG, br#"{"test": 1}"#, VECTOR_TS),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            v("msg_other", &ts, VECTOR_SIG, VECTOR_BODY, VECTOR_TS),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            v(VECTOR_ID, &ts, VECTOR_SIG, VECTOR_BODY, VECTOR_TS + 301),
            Err(VerifyError::TooOld)
        );
        assert_eq!(
            v(VECTOR_ID, &ts, VECTOR_SIG, VECTOR_BODY, VECTOR_TS - 301),
            Err(VerifyError::TooNew)
        );
        assert_eq!(
            v(VECTOR_ID, "yesterday", VECTOR_SIG, VECTOR_BODY, VECTOR_TS),
            Err(VerifyError::BadTimestamp)
        );
        assert_eq!(
            v(VECTOR_ID, &ts, "", VECTOR_BODY, VECTOR_TS),
            Err(VerifyError::NoMatch)
        );
        let other = Secret::generate();
        assert_eq!(
            verify(
                &[&other],
                VECTOR_ID,
                &ts,
                VECTOR_SIG,
                VECTOR_BODY,
                VECTOR_TS
            ),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn secrets_parse_print_and_hide() {
        let s = Secret::generate();
        let text = s.expose();
        assert!(text.starts_with("whsec_"));
        assert_eq!(Secret::parse(&text).unwrap(), s);
        assert_eq!(Secret::parse(text.trim_start_matches("whsec_")).unwrap(), s);
        assert!(!format!("{s:?}").contains(&text[6..]));
        assert_eq!(Secret::parse("whsec_!!"), Err(SecretError::NotBase64));
        assert_eq!(Secret::parse("whsec_AAAA"), Err(SecretError::Length(3)));
    }

    /// The independent implementation (the `standardwebhooks` crate) accepts what this crate
    /// signs, and this crate accepts what it signs, with rotation's two signatures.
    #[test]
    fn interoperates_with_the_standardwebhooks_crate() {
        let ours = Secret::generate();
        let old = Secret::generate();
        let theirs = standardwebhooks::Webhook::new(&ours.expose()).unwrap();
        let body = br#"{"id":"evt_1","type":"payment.approved"}"#;
        let ts = now();
        let header = signature_header(&[&old, &ours], "evt_1", ts, body);
        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", "evt_1".parse().unwrap());
        headers.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        headers.insert("webhook-signature", header.parse().unwrap());
        theirs.verify(body, &headers).unwrap();
        let signed_by_them = theirs.sign("evt_2", ts, body).unwrap();
        assert_eq!(signed_by_them, sign(&ours, "evt_2", ts, body));
        assert_eq!(
            verify(
                &[&ours],
                "evt_2",
                &ts.to_string(),
                &signed_by_them,
                body,
                ts
            ),
            Ok(())
        );
        // And it refuses what a wrong secret signed.
        let mut bad = headers.clone();
        bad.insert(
            "webhook-signature",
            sign(&Secret::generate(), "evt_1", ts, body)
                .parse()
                .unwrap(),
        );
        assert!(theirs.verify(body, &bad).is_err());
    }

    proptest! {
        /// Whatever the body, id and time: a signature verifies with its secret within the
        /// tolerance and never with another secret or another body.
        #[test]
        fn sign_then_verify(body in proptest::collection::vec(any::<u8>(), 0..512),
                            id in "[a-z_0-9]{1,40}", ts in 0i64..4_000_000_000, skew in -300i64..=300) {
            let s = Secret::generate();
            let sig = sign(&s, &id, ts, &body);
            prop_assert_eq!(verify(&[&s], &id, &ts.to_string(), &sig, &body, ts + skew), Ok(()));
            prop_assert_eq!(verify(&[&Secret::generate()], &id, &ts.to_string(), &sig, &body, ts), Err(VerifyError::NoMatch));
            let mut other = body.clone();
            other.push(b'x');
            prop_assert_eq!(verify(&[&s], &id, &ts.to_string(), &sig, &other, ts), Err(VerifyError::NoMatch));
        }
    }
}
