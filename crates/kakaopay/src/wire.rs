//! Lenient decoding helpers shared by every request and response type.
//!
//! KakaoPay is loose on the wire: the current generation accepts numbers sent as strings, the legacy
//! generation sends everything in a form body as text (arrays and maps as JSON strings), responses use
//! explicit `null` in one generation and absent keys in the other. These helpers absorb that looseness
//! at the edge so the typed structs inside stay strict.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// Deserializes an integer sent as a JSON number or as a decimal string (`2200` or `"2200"`).
pub(crate) fn int_from_number_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an integer or a string holding an integer")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom("integer out of range"))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
            if v.fract() == 0.0 && v.abs() < 9.0e15 {
                Ok(v as i64)
            } else {
                Err(E::custom("expected a whole number of won"))
            }
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
            v.trim()
                .parse::<i64>()
                .map_err(|_| E::custom(format!("expected an integer, got {v:?}")))
        }
    }
    d.deserialize_any(V)
}

/// Like [`int_from_number_or_string`] for optional fields: `null`, absent and `""` are `None`.
pub(crate) fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(i64),
        Float(f64),
        Str(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Int(i)) => Ok(Some(i)),
        Some(Raw::Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
        Some(Raw::Float(_)) => Err(de::Error::custom("expected a whole number")),
        Some(Raw::Str(s)) if s.trim().is_empty() => Ok(None),
        Some(Raw::Str(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| de::Error::custom(format!("expected an integer, got {s:?}"))),
    }
}

/// Decodes a value that is either itself (JSON) or a JSON document inside a string (legacy form bodies
/// carry `available_cards` and `custom_json` that way).
pub(crate) fn json_or_json_string<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(serde_json::Value::String(s)) => serde_json::from_str(&s)
            .map(Some)
            .map_err(|e| de::Error::custom(format!("not a valid JSON document: {e}"))),
        Some(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(de::Error::custom),
    }
}

/// Deserializes a bool sent as `true`/`false`, `"true"`/`"false"` or `"Y"`/`"N"`.
pub(crate) fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bool(bool),
        Str(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Bool(b)) => Ok(Some(b)),
        Some(Raw::Str(s)) => match s.as_str() {
            "" => Ok(None),
            "Y" | "y" | "true" => Ok(Some(true)),
            "N" | "n" | "false" => Ok(Some(false)),
            other => Err(de::Error::custom(format!("expected Y or N, got {other:?}"))),
        },
    }
}

/// Serializes `Some(true)` as `"Y"` and `Some(false)` as `"N"`, KakaoPay's flag convention.
pub(crate) fn ser_yn<S: Serializer>(v: &Option<bool>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(true) => s.serialize_str("Y"),
        Some(false) => s.serialize_str("N"),
        None => s.serialize_none(),
    }
}

/// Turns a request into the legacy generation's form body: scalars as text, arrays and maps as JSON
/// strings (the way kapi.kakao.com expects `available_cards` and `custom_json`), absent fields left out.
pub(crate) fn to_form<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let json = serde_json::to_value(value)?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let serde_json::Value::Object(map) = json {
        for (k, v) in map {
            let text = match v {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => s,
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Number(n) => n.to_string(),
                other @ (serde_json::Value::Array(_) | serde_json::Value::Object(_)) => {
                    other.to_string()
                }
            };
            pairs.push((k, text));
        }
    }
    // serde_urlencoded cannot fail on a list of string pairs.
    serde_urlencoded::to_string(pairs).map_err(serde::ser::Error::custom)
}

/// `null` or absent reads as the type's default (an empty list, say).
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A text field that some responses send as a number (`install_month`: `"00"` or `0`).
pub(crate) fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
        Some(serde_json::Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(other) => Err(de::Error::custom(format!("expected text, got {other}"))),
    }
}

/// An optional amount: `null`, absent or `""` is `None`; numbers may come as strings.
pub(crate) fn opt_amount<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<crate::Amount>, D::Error> {
    opt_int(d)?
        .map(crate::Amount::new)
        .transpose()
        .map_err(de::Error::custom)
}

/// Declares a string enum with the values KakaoPay documents plus `Unknown(String)`, so a value added
/// by KakaoPay tomorrow decodes instead of failing the whole response.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this crate does not know yet, kept verbatim.
            Unknown(String),
        }
        impl $name {
            /// The wire text of this value.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Unknown(s) => s,
                }
            }
        }
        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(match s {
                    $($text => Self::$variant,)+
                    other => Self::Unknown(other.to_owned()),
                })
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok(match s.parse() {
                    Ok(v) => v,
                    Err(never) => match never {},
                })
            }
        }
    };
}
pub(crate) use string_enum;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct N {
        #[serde(deserialize_with = "int_from_number_or_string")]
        n: i64,
        #[serde(default, deserialize_with = "opt_int")]
        o: Option<i64>,
    }

    #[test]
    fn integers_decode_from_numbers_and_strings() {
        let a: N = serde_json::from_str(r#"{"n":2200,"o":"5"}"#).unwrap();
        assert_eq!((a.n, a.o), (2200, Some(5)));
        let b: N = serde_json::from_str(r#"{"n":" 1100 ","o":null}"#).unwrap();
        assert_eq!((b.n, b.o), (1100, None));
        let c: N = serde_json::from_str(r#"{"n":1.0}"#).unwrap();
        assert_eq!((c.n, c.o), (1, None));
        assert!(serde_json::from_str::<N>(r#"{"n":"12a"}"#).is_err());
        assert!(serde_json::from_str::<N>(r#"{"n":1.5}"#).is_err());
    }

    #[test]
    fn form_encoding_turns_collections_into_json_strings() {
        let v = serde_json::json!({"a": "초코파이 1", "b": 3, "c": ["KB","BC"], "d": null, "e": {"k":"v"}});
        let form = to_form(&v).unwrap();
        assert_eq!(
            form,
            "a=%EC%B4%88%EC%BD%94%ED%8C%8C%EC%9D%B4+1&b=3&c=%5B%22KB%22%2C%22BC%22%5D&e=%7B%22k%22%3A%22v%22%7D"
        );
    }
}
