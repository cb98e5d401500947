//! Admin sessions without server-side state: a cookie `expiry.nonce.signature` signed with
//! HMAC-SHA256 under a key derived from the admin secret (so every instance with the same
//! configuration accepts it), and a CSRF token derived from the session's nonce.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Session length.
pub const SESSION_SECONDS: i64 = 8 * 3600;
/// The cookie's name.
pub const COOKIE: &str = "kpay_admin";

/// Signs and checks sessions.
#[derive(Clone)]
pub struct Sessions {
    key: Vec<u8>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions(<key>)")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    /// Sessions keyed by `secret` (the admin password or API key).
    pub fn new(secret: &str) -> Self {
        use sha2::Digest;
        let key = Sha256::digest(format!("kpay-admin-session:{secret}").as_bytes()).to_vec();
        Self { key }
    }

    fn sign(&self, msg: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(msg.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// A new session cookie value, valid from `now` (seconds).
    pub fn issue(&self, now: i64) -> String {
        let nonce = crate::service::token();
        let body = format!("{}.{nonce}", now + SESSION_SECONDS);
        format!("{body}.{}", self.sign(&body))
    }

    /// The session's nonce if `cookie` is valid and unexpired at `now`.
    pub fn verify<'a>(&self, cookie: &'a str, now: i64) -> Option<&'a str> {
        let (body, sig) = cookie.rsplit_once('.')?;
        let (expiry, nonce) = body.split_once('.')?;
        let expected = self.sign(body);
        let equal = expected.len() == sig.len()
            && expected
                .bytes()
                .zip(sig.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        (equal && expiry.parse::<i64>().ok()? > now).then_some(nonce)
    }

    /// The CSRF token of a session.
    pub fn csrf(&self, nonce: &str) -> String {
        self.sign(&format!("csrf:{nonce}"))
    }

    /// Whether `token` is the session's CSRF token.
    pub fn check_csrf(&self, nonce: &str, token: &str) -> bool {
        let expected = self.csrf(nonce);
        expected.len() == token.len()
            && expected
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_resist_tampering() {
        let s = Sessions::new("secret");
        let c = s.issue(1000);
        let nonce = s.verify(&c, 1001).unwrap();
        assert!(s.check_csrf(nonce, &s.csrf(nonce)));
        assert!(!s.check_csrf(nonce, "00"));
        assert!(s.verify(&c, 1000 + SESSION_SECONDS).is_none(), "expired");
        let forged = c.replacen(
            &(1000 + SESSION_SECONDS).to_string(),
            &(9_000_000_000i64).to_string(),
            1,
        );
        assert!(
            s.verify(&forged, 1001).is_none(),
            "a longer expiry breaks the signature"
        );
        assert!(Sessions::new("other").verify(&c, 1001).is_none());
    }
}
