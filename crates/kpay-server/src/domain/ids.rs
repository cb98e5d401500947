//! The server's own ids: a prefix naming the kind (`pay_`, `rfd_`) and 20 random lower-case
//! letters and digits. KakaoPay's ids (TID, AID, CID, order and user ids) are the client's types.

use serde::Serialize;
use std::fmt;

/// An id that does not have its kind's form.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a {kind} id: expected {prefix} followed by 20 lower-case letters or digits")]
pub struct IdError {
    /// What was expected.
    pub kind: &'static str,
    /// Its prefix.
    pub prefix: &'static str,
}

const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
const TAIL: usize = 20;

/// 20 random lower-case letters and digits (ids, and the server's other random tokens).
pub(crate) fn random_tail() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..TAIL)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

fn well_formed(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .is_some_and(|tail| tail.len() == TAIL && tail.bytes().all(|b| ALPHABET.contains(&b)))
}

macro_rules! server_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix of this kind of id.
            pub const PREFIX: &'static str = $prefix;

            /// A new random id.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, random_tail()))
            }

            /// Parses an id of this kind.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                if well_formed(s, $prefix) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(IdError { kind: $kind, prefix: $prefix })
                }
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
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
    };
}

server_id!(
    /// A payment of this server (`pay_…`).
    PaymentId, "pay_", "payment"
);
server_id!(
    /// A refund of this server (`rfd_…`).
    RefundId, "rfd_", "refund"
);
server_id!(
    /// A subscription of this server (`sub_…`).
    SubscriptionId, "sub_", "subscription"
);
server_id!(
    /// An event (`evt_…`): the `webhook-id` of its deliveries.
    EventId, "evt_", "event"
);
server_id!(
    /// A webhook endpoint of the merchant (`we_…`).
    WebhookEndpointId, "we_", "webhook endpoint"
);
server_id!(
    /// A charge attempt of a subscription (`sch_…`).
    ChargeId, "sch_", "subscription charge"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_ids_parse_and_other_text_does_not() {
        let id = PaymentId::generate();
        assert_eq!(PaymentId::parse(id.as_str()), Ok(id.clone()));
        assert!(RefundId::parse(id.as_str()).is_err());
        for bad in [
            "",
            "pay_",
            "pay_ABCDEFGHIJKLMNOPQRST",
            "pay_0123456789abcdefghij0",
            "x",
        ] {
            assert!(PaymentId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            PaymentId::parse("nope").unwrap_err().to_string(),
            "not a payment id: expected pay_ followed by 20 lower-case letters or digits"
        );
    }

    proptest! {
        #[test]
        fn parsing_never_accepts_a_wrong_length(tail in "[0-9a-z]{0,40}") {
            let s = format!("rfd_{tail}");
            prop_assert_eq!(RefundId::parse(&s).is_ok(), tail.len() == 20);
        }
    }
}
