//! Identifiers and texts, each parsed once at the edge so an invalid one cannot exist inside.
//!
//! Every type here validates on construction (`parse`, `TryFrom`, `FromStr`, and when deserialized),
//! so a request built from them can only fail the few cross-field checks of
//! [`crate::ValidationError`].

use crate::error::ValidationError;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// What a text field must look like.
#[derive(Clone, Copy)]
enum Shape {
    /// ASCII letters and digits only, with a length range in characters.
    Token { min: usize, max: usize },
    /// Any non-blank text up to `max` characters, without control characters.
    Text { max: usize },
    /// Possibly empty text up to `max` characters.
    OptionalText { max: usize },
}

fn check(field: &'static str, shape: Shape, s: &str) -> Result<(), ValidationError> {
    let len = s.chars().count();
    let bad = |reason: String| Err(ValidationError::new(field, reason));
    match shape {
        Shape::Token { min, max } => {
            if len < min || len > max {
                return if min == max {
                    bad(format!("must be exactly {min} characters, got {len}"))
                } else {
                    bad(format!("must be {min} to {max} characters, got {len}"))
                };
            }
            if !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return bad("must contain only ASCII letters and digits".into());
            }
        }
        Shape::Text { max } | Shape::OptionalText { max } => {
            if matches!(shape, Shape::Text { .. }) && s.trim().is_empty() {
                return bad("must not be empty".into());
            }
            if len > max {
                return bad(format!("must be at most {max} characters, got {len}"));
            }
            if s.chars().any(char::is_control) {
                return bad("must not contain control characters".into());
            }
        }
    }
    Ok(())
}

macro_rules! text_type {
    ($(#[$meta:meta])* $name:ident, $field:literal, $shape:expr) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates the value.
            pub fn parse(value: impl Into<String>) -> Result<Self, ValidationError> {
                let value = value.into();
                check($field, $shape, &value)?;
                Ok(Self(value))
            }
            /// The value as sent on the wire.
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// The value, consumed.
            pub fn into_inner(self) -> String {
                self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl std::str::FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }
        impl TryFrom<&str> for $name {
            type Error = ValidationError;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                // Numbers are accepted too: `"partner_order_id": 1001` is common in merchant code.
                let s = crate::wire::opt_text(d)?
                    .ok_or_else(|| serde::de::Error::custom(concat!($field, " is required")))?;
                Self::parse(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

text_type!(
    /// Merchant code (가맹점 코드), exactly 10 characters, e.g. `TC0ONETIME`.
    Cid, "cid", Shape::Token { min: 10, max: 10 }
);
text_type!(
    /// Payment id issued by ready: 20 characters in practice (`T` + 19); accepted up to 64 so that a
    /// longer id from KakaoPay still decodes.
    Tid, "tid", Shape::Token { min: 1, max: 64 }
);
text_type!(
    /// Request id of one approve, cancel or subscription charge (`A` + 19 in practice).
    Aid, "aid", Shape::Token { min: 1, max: 64 }
);
text_type!(
    /// Subscription id issued by a subscription CID's first approve (`S` + 19 in practice).
    Sid, "sid", Shape::Token { min: 1, max: 64 }
);
text_type!(
    /// The merchant's order id, 1–100 characters; KakaoPay checks it again on approve (-706).
    PartnerOrderId, "partner_order_id", Shape::Text { max: 100 }
);
text_type!(
    /// The merchant's user id, 1–100 characters; must not be personal data (name, phone, e-mail).
    PartnerUserId, "partner_user_id", Shape::Text { max: 100 }
);
text_type!(
    /// Item name shown to the buyer, 1–100 characters.
    ItemName, "item_name", Shape::Text { max: 100 }
);
text_type!(
    /// Item code, 1–100 characters.
    ItemCode, "item_code", Shape::Text { max: 100 }
);
text_type!(
    /// Free text stored by KakaoPay with an approve, cancel or charge, at most 200 characters.
    Payload, "payload", Shape::OptionalText { max: 200 }
);

/// The one-time token KakaoPay appends to `approval_url` once the buyer has authenticated.
///
/// It authorizes the approve of one payment, so it is treated like a credential: `Debug` is redacted
/// and there is no `Display`; [`PgToken::expose`] is the only way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct PgToken(String);

impl PgToken {
    /// Parses a pg_token: 1–64 ASCII letters and digits (KakaoPay issues 20 lower-case hex).
    pub fn parse(value: impl Into<String>) -> Result<Self, ValidationError> {
        let value = value.into();
        check("pg_token", Shape::Token { min: 1, max: 64 }, &value)
            .map_err(|e| ValidationError::new("pg_token", e.reason().to_owned()))?;
        Ok(Self(value))
    }
    /// The token itself, for the wire only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}
impl fmt::Debug for PgToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PgToken(<redacted>)")
    }
}
impl Serialize for PgToken {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
impl<'de> Deserialize<'de> for PgToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The rejected value is never echoed: it may be a real token with a typo.
        Self::parse(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The optional CID authentication key (24 characters, digits and lower-case letters). A secret.
#[derive(Clone)]
pub struct CidSecret(SecretString);

impl CidSecret {
    /// Parses a cid_secret.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValidationError> {
        let value: String = value.into();
        let ok = value.len() == 24
            && value
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
        if !ok {
            return Err(ValidationError::new(
                "cid_secret",
                "must be 24 characters of digits and lower-case letters",
            ));
        }
        Ok(Self(SecretString::from(value)))
    }
    /// The secret itself, for the wire only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}
impl PartialEq for CidSecret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}
impl fmt::Debug for CidSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CidSecret(<redacted>)")
    }
}
impl Serialize for CidSecret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.expose())
    }
}
impl<'de> Deserialize<'de> for CidSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Number of items, at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Quantity(u32);

impl Quantity {
    /// Parses a quantity; zero and negative counts are refused.
    pub fn new(n: i64) -> Result<Self, ValidationError> {
        u32::try_from(n)
            .ok()
            .filter(|n| *n >= 1)
            .map(Self)
            .ok_or_else(|| ValidationError::new("quantity", format!("must be at least 1, got {n}")))
    }
    /// The count.
    pub fn get(self) -> u32 {
        self.0
    }
}
impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = crate::wire::int_from_number_or_string(d)?;
        Self::new(n).map_err(serde::de::Error::custom)
    }
}

/// Card installment months for ready: 0 (lump sum) to 12.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct InstallMonth(u8);

impl InstallMonth {
    /// Parses an installment count.
    pub fn new(n: i64) -> Result<Self, ValidationError> {
        u8::try_from(n)
            .ok()
            .filter(|n| *n <= 12)
            .map(Self)
            .ok_or_else(|| {
                ValidationError::new("install_month", format!("must be 0 to 12, got {n}"))
            })
    }
    /// The number of months.
    pub fn get(self) -> u8 {
        self.0
    }
}
impl<'de> Deserialize<'de> for InstallMonth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = crate::wire::int_from_number_or_string(d)?;
        Self::new(n).map_err(serde::de::Error::custom)
    }
}

/// An absolute http(s) URL of at most 255 characters, as approval/cancel/fail URLs must be.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RedirectUrl(String);

impl RedirectUrl {
    /// Parses a redirect URL; `field` names it in the error (`approval_url`, …).
    pub fn parse_for(
        field: &'static str,
        value: impl Into<String>,
    ) -> Result<Self, ValidationError> {
        let value = value.into();
        let len = value.chars().count();
        if len > 255 {
            return Err(ValidationError::new(
                field,
                format!("must be at most 255 characters, got {len}"),
            ));
        }
        match url::Url::parse(&value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(Self(value)),
            Ok(_) => Err(ValidationError::new(field, "must be an http or https URL")),
            Err(e) => Err(ValidationError::new(
                field,
                format!("is not a valid URL: {e}"),
            )),
        }
    }
    /// Parses a redirect URL, naming it `url` in errors.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValidationError> {
        Self::parse_for("url", value)
    }
    /// The URL text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl fmt::Display for RedirectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl Serialize for RedirectUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
impl<'de> Deserialize<'de> for RedirectUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cid_is_exactly_ten_alphanumerics() {
        assert!(Cid::parse("TC0ONETIME").is_ok());
        assert_eq!(
            Cid::parse("TC0ONETIM").unwrap_err().to_string(),
            "invalid cid: must be exactly 10 characters, got 9"
        );
        assert!(Cid::parse("TC0ONETIM!").is_err());
    }

    #[test]
    fn texts_count_characters_not_bytes() {
        let hangul = "가".repeat(100);
        assert!(ItemName::parse(hangul.clone()).is_ok());
        assert!(ItemName::parse(hangul + "가").is_err());
        assert!(ItemName::parse("  ").is_err());
        assert!(PartnerOrderId::parse("a\nb").is_err());
        assert!(Payload::parse("").is_ok());
        assert!(Payload::parse("x".repeat(201)).is_err());
    }

    #[test]
    fn quantity_and_install_month_ranges() {
        assert!(Quantity::new(0).is_err());
        assert!(Quantity::new(-1).is_err());
        assert_eq!(Quantity::new(1).unwrap().get(), 1);
        assert!(InstallMonth::new(-1).is_err());
        assert_eq!(InstallMonth::new(0).unwrap().get(), 0);
        assert_eq!(InstallMonth::new(12).unwrap().get(), 12);
        assert!(InstallMonth::new(13).is_err());
    }

    #[test]
    fn redirect_urls_are_absolute_http_and_short() {
        assert!(RedirectUrl::parse("https://shop.example/pay/approve?order=1").is_ok());
        assert!(RedirectUrl::parse("ftp://x.example/").is_err());
        assert!(RedirectUrl::parse("/relative").is_err());
        let long = format!("https://x.example/{}", "a".repeat(237));
        assert_eq!(long.len(), 255);
        assert!(RedirectUrl::parse(long.clone()).is_ok());
        assert!(RedirectUrl::parse(long + "a").is_err());
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let t = PgToken::parse("ad950e97794abfef4ce0").unwrap();
        assert!(!format!("{t:?}").contains("ad950e"));
        let s = CidSecret::parse("abcdefghijklmnop12345678").unwrap();
        assert!(!format!("{s:?}").contains("abcdef"));
        let err = PgToken::parse("bad token!").unwrap_err();
        assert!(!err.to_string().contains("bad token"));
    }
}
