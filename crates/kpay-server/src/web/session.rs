//! Admin sessions without server-side state: a cookie `expiry.nonce.signature` signed with
//! HMAC-SHA256 under a key derived from the admin secret (so every instance with the same
//! configuration accepts it), and a CSRF token derived from the session's nonce.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Session length.
pub(crate) const SESSION_SECONDS: i64 = 8 * 3600;
/// The cookie's name.
pub(crate) const COOKIE: &str = "kpay_admin";

/// Signs and checks sessions.
#[derive(Clone)]
pub(crate) struct Sessions {
    key: Vec<u8>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions(<key>)")
    }
}

impl Sessions {
    /// Sessions keyed by `secret` (the admin password or API key).
    pub(crate) fn new(secret: &str) -> Self {
        use sha2::Digest;
        let key = Sha256::digest(format!("kpay-admin-session:{secret}").as_bytes()).to_vec();
        Self { key }
    }

    fn mac(&self, msg: &str) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).ok()?;
        mac.update(msg.as_bytes());
        Some(mac)
    }

    fn sign(&self, msg: &str) -> String {
        self.mac(msg)
            .map(|m| hex::encode(m.finalize().into_bytes()))
            .unwrap_or_default()
    }

    /// Whether `sig` (hex) is `msg`'s signature, compared in constant time.
    fn signed(&self, msg: &str, sig: &str) -> bool {
        match (self.mac(msg), hex::decode(sig)) {
            (Some(mac), Ok(sig)) => mac.verify_slice(&sig).is_ok(),
            _ => false,
        }
    }

    /// A new session cookie value, valid from `now` (seconds).
    pub(crate) fn issue(&self, now: i64) -> String {
        let nonce = crate::service::token();
        let body = format!("{}.{nonce}", now + SESSION_SECONDS);
        format!("{body}.{}", self.sign(&body))
    }

    /// The session's nonce if `cookie` is valid and unexpired at `now`.
    pub(crate) fn verify<'a>(&self, cookie: &'a str, now: i64) -> Option<&'a str> {
        let (body, sig) = cookie.rsplit_once('.')?;
        let (expiry, nonce) = body.split_once('.')?;
        (self.signed(body, sig) && expiry.parse::<i64>().ok()? > now).then_some(nonce)
    }

    /// The CSRF token of a session.
    pub(crate) fn csrf(&self, nonce: &str) -> String {
        self.sign(&format!("csrf:{nonce}"))
    }

    /// Whether `token` is the session's CSRF token.
    pub(crate) fn check_csrf(&self, nonce: &str, token: &str) -> bool {
        self.signed(&format!("csrf:{nonce}"), token)
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
