//! Webhooks to the merchant's backend: the event types (contract §6), an endpoint and what it
//! wants, and which URLs may receive deliveries. Pure: the store keeps endpoints, the service
//! seals their secrets.

use super::{Timestamp, WebhookEndpointId};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use url::{Host, Url};

/// What happened, as the merchant subscribes to it.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
    strum::EnumIter,
)]
pub enum EventType {
    /// Paid.
    #[strum(serialize = "payment.approved")]
    PaymentApproved,
    /// KakaoPay refused for good (or authentication failed).
    #[strum(serialize = "payment.failed")]
    PaymentFailed,
    /// The buyer quit on KakaoPay's page.
    #[strum(serialize = "payment.quit")]
    PaymentQuit,
    /// Never paid in time.
    #[strum(serialize = "payment.expired")]
    PaymentExpired,
    /// Fully refunded.
    #[strum(serialize = "payment.canceled")]
    PaymentCanceled,
    /// Partly refunded.
    #[strum(serialize = "payment.partially_canceled")]
    PaymentPartiallyCanceled,
    /// KakaoPay approved another amount; cancelled at once.
    #[strum(serialize = "payment.amount_mismatch")]
    PaymentAmountMismatch,
    /// A refund went through.
    #[strum(serialize = "refund.succeeded")]
    RefundSucceeded,
    /// A refund was refused.
    #[strum(serialize = "refund.failed")]
    RefundFailed,
    /// Registered and active.
    #[strum(serialize = "subscription.activated")]
    SubscriptionActivated,
    /// A period was charged.
    #[strum(serialize = "subscription.renewed")]
    SubscriptionRenewed,
    /// A renewal was refused.
    #[strum(serialize = "subscription.payment_failed")]
    SubscriptionPaymentFailed,
    /// Dunning began.
    #[strum(serialize = "subscription.past_due")]
    SubscriptionPastDue,
    /// Dunning ended unpaid.
    #[strum(serialize = "subscription.unpaid")]
    SubscriptionUnpaid,
    /// Canceled.
    #[strum(serialize = "subscription.canceled")]
    SubscriptionCanceled,
}

impl EventType {
    /// The event a payment's status change tells of, if any (claims and retryable refusals
    /// are steps of one approval, not news for the merchant).
    pub fn of_payment(event: super::Event) -> Option<Self> {
        use super::Event as E;
        match event {
            E::Approved => Some(Self::PaymentApproved),
            E::ApproveFailed | E::AuthFailed => Some(Self::PaymentFailed),
            E::BuyerQuit => Some(Self::PaymentQuit),
            E::Expired => Some(Self::PaymentExpired),
            E::MismatchCanceled => Some(Self::PaymentAmountMismatch),
            E::PartlyRefunded => Some(Self::PaymentPartiallyCanceled),
            E::FullyRefunded => Some(Self::PaymentCanceled),
            E::ApproveClaimed | E::ApproveRetryable => None,
        }
    }
}

/// The events a subscription's change tells of: `event` as the machine took it (`None` when
/// it refused or there was none), from `from` to `to`.
pub fn subscription_events(
    from: super::SubscriptionStatus,
    to: super::SubscriptionStatus,
    event: Option<super::SubscriptionEvent>,
) -> Vec<EventType> {
    use super::SubscriptionEvent as E;
    use super::SubscriptionStatus as S;
    let mut out = Vec::new();
    match event {
        Some(E::Registered) if from != to => out.push(EventType::SubscriptionActivated),
        Some(E::ChargedCurrent | E::ChargedEarlier) => out.push(EventType::SubscriptionRenewed),
        Some(E::RenewalFailed) => {
            out.push(EventType::SubscriptionPaymentFailed);
            if to == S::PastDue && from != S::PastDue {
                out.push(EventType::SubscriptionPastDue);
            }
        }
        Some(E::RetriesExhausted) => {
            out.push(EventType::SubscriptionPaymentFailed);
            if to == S::Unpaid && from != S::Unpaid {
                out.push(EventType::SubscriptionUnpaid);
            }
        }
        Some(E::Canceled) if from != to => out.push(EventType::SubscriptionCanceled),
        _ => {}
    }
    out
}

/// The event types an endpoint receives: all (`["*"]`) or a set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventSelection {
    /// Every type, including ones added later.
    All,
    /// These.
    Only(BTreeSet<EventType>),
}

impl EventSelection {
    /// From the API's list: `["*"]`, or type names. An empty list, an unknown name or `*`
    /// mixed with names is refused, naming the entry.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        if names.is_empty() {
            return Err("events: give at least one event type, or [\"*\"] for all".into());
        }
        if names.iter().any(|n| n.as_ref() == "*") {
            return if names.len() == 1 {
                Ok(Self::All)
            } else {
                Err("events: \"*\" means every type; give it alone".into())
            };
        }
        let mut set = BTreeSet::new();
        for n in names {
            let t = n
                .as_ref()
                .parse::<EventType>()
                .map_err(|_| format!("events: unknown event type {:?}", n.as_ref()))?;
            set.insert(t);
        }
        Ok(Self::Only(set))
    }

    /// Whether `t` is delivered.
    pub fn wants(&self, t: EventType) -> bool {
        match self {
            Self::All => true,
            Self::Only(s) => s.contains(&t),
        }
    }

    /// The API's (and the store's) list.
    pub fn names(&self) -> Vec<&'static str> {
        match self {
            Self::All => vec!["*"],
            Self::Only(s) => s.iter().map(|t| <&str>::from(*t)).collect(),
        }
    }
}

/// Whether an endpoint receives deliveries.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr, strum::Display,
)]
#[strum(serialize_all = "snake_case")]
pub enum EndpointStatus {
    /// Receives deliveries.
    Enabled,
    /// Receives none (by the merchant, a `410 Gone`, or days of failures).
    Disabled,
}

/// A merchant's webhook endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Its id.
    pub id: WebhookEndpointId,
    /// Where deliveries go.
    pub url: Destination,
    /// What it receives.
    pub events: EventSelection,
    /// For people.
    pub description: Option<String>,
    /// Enabled or not.
    pub status: EndpointStatus,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// The signing secret, sealed.
    pub secret_sealed: String,
    /// The secret before the last rotation, sealed, and until when it still signs.
    pub previous_secret: Option<(String, Timestamp)>,
    /// Since when every attempt to it failed (none since the last success: `None`).
    pub failing_since: Option<Timestamp>,
    /// Created.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// A URL deliveries may be sent to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination(Url);

/// Why a URL may not receive deliveries.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    /// Not an absolute http(s) URL.
    #[error("url: not an absolute http or https URL")]
    NotHttp,
    /// Longer than 2,048 characters.
    #[error("url: longer than 2048 characters")]
    TooLong,
    /// Carries a user name or password.
    #[error("url: must not carry a user name or password")]
    Credentials,
    /// Plain http outside local development.
    #[error(
        "url: https is required (http only with --webhook-allow-private or a sandbox KakaoPay)"
    )]
    PlainHttp,
    /// A loopback, private, link-local or otherwise internal address outside local development.
    #[error(
        "url: {0} is a private or internal address (allowed only with --webhook-allow-private or a sandbox KakaoPay)"
    )]
    Private(String),
}

impl Destination {
    /// Parses and checks `text`. `local` (development: `--webhook-allow-private`, or KakaoPay
    /// is a sandbox) also allows http and private or loopback hosts; otherwise only https to a
    /// public host, so the server cannot be made to probe its own network. Host names are
    /// checked again, resolved, when a delivery connects.
    pub fn parse(text: &str, local: bool) -> Result<Self, DestinationError> {
        if text.len() > MAX_URL {
            return Err(DestinationError::TooLong);
        }
        let url = Url::parse(text.trim()).map_err(|_| DestinationError::NotHttp)?;
        // The limit holds for what is stored and sent: the percent-encoded form.
        if url.as_str().len() > MAX_URL {
            return Err(DestinationError::TooLong);
        }
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(DestinationError::NotHttp);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(DestinationError::Credentials);
        }
        if local {
            return Ok(Self(url));
        }
        if url.scheme() != "https" {
            return Err(DestinationError::PlainHttp);
        }
        let internal = match url.host() {
            Some(Host::Ipv4(ip)) => is_internal(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => is_internal(IpAddr::V6(ip)),
            Some(Host::Domain(d)) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                d == "localhost" || d.ends_with(".localhost") || d.ends_with(".internal")
            }
            None => true,
        };
        if internal {
            return Err(DestinationError::Private(
                url.host_str().unwrap_or_default().to_owned(),
            ));
        }
        Ok(Self(url))
    }

    /// A URL as stored (checked when it was created, by the rules then in force): only
    /// parsed, never judged again here — the sender re-checks it for the mode it runs in.
    pub fn stored(text: &str) -> Option<Self> {
        Url::parse(text).ok().map(Self)
    }

    /// The URL.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// The longest destination, as stored (percent-encoded).
const MAX_URL: usize = 2048;

/// Loopback, private, link-local, unique-local, shared, documentation, unspecified, multicast
/// or broadcast: nothing a merchant's public endpoint lives at.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_v4(v4);
            }
            let seg = v6.segments();
            let o = v6.octets();
            let v4_at = |i: usize| Ipv4Addr::new(o[i], o[i + 1], o[i + 2], o[i + 3]);
            // Forms that carry an IPv4 address reach what that address reaches.
            if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
                return internal_v4(v4_at(12)); // NAT64 64:ff9b::/96
            }
            if seg[0] == 0x2002 {
                return internal_v4(v4_at(2)); // 6to4 2002::/16
            }
            if seg[..6] == [0, 0, 0, 0, 0, 0] && !v6.is_loopback() && !v6.is_unspecified() {
                return true; // IPv4-compatible ::a.b.c.d (deprecated; never a public endpoint)
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg[0] & 0xffc0) == 0xfe80 // link local fe80::/10
                || (seg[0] & 0xffc0) == 0xfec0 // site local fec0::/10
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
                || (seg[0] == 0x2001 && seg[1] == 0) // Teredo 2001::/32 (tunnels to anywhere)
                || (seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1) // local NAT64 64:ff9b:1::/48
        }
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared 100.64.0.0/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF 192.0.0.0/24
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18.0.0/15
        || o[0] >= 240
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use strum::IntoEnumIterator;

    #[test]
    fn v6_forms_that_reach_v4_or_local_networks_are_internal() {
        for text in [
            "64:ff9b::a00:5",         // NAT64 of 10.0.0.5
            "64:ff9b:1::a00:5",       // local-use NAT64
            "::a00:5",                // IPv4-compatible
            "2002:a00:5::1",          // 6to4 of 10.0.0.5
            "2001:0:4136:e378::1",    // Teredo
            "fec0::1",                // site-local
            "::ffff:169.254.169.254", // v4-mapped metadata address
        ] {
            let ip: IpAddr = text.parse().expect("an address");
            assert!(is_internal(ip), "{text}");
        }
        // Public ones stay public, also behind NAT64 and 6to4.
        for text in ["2606:4700::1111", "64:ff9b::808:808", "2002:808:808::1"] {
            let ip: IpAddr = text.parse().expect("an address");
            assert!(!is_internal(ip), "{text}");
        }
    }

    #[test]
    fn the_length_limit_is_on_the_stored_form() {
        // 1,000 é: 2,018 characters as typed, about 6,000 once percent-encoded.
        let long = format!("https://a.example/{}", "é".repeat(1000));
        assert_eq!(
            Destination::parse(&long, false),
            Err(DestinationError::TooLong)
        );
        let ok = Destination::parse("https://a.example/hooks", false).expect("valid");
        assert_eq!(
            Destination::stored(ok.as_str()).map(|d| d.as_str().to_owned()),
            Some(ok.as_str().to_owned())
        );
    }

    #[test]
    fn every_event_type_round_trips_by_its_contract_name() {
        for t in EventType::iter() {
            let name: &str = t.into();
            assert_eq!(name.parse::<EventType>(), Ok(t));
            assert!(name.contains('.'), "{name}");
        }
        assert_eq!(EventType::iter().count(), 15);
    }

    #[test]
    fn subscription_changes_map_to_the_contracts_events() {
        use crate::domain::{SubscriptionEvent as E, SubscriptionStatus as S};
        assert_eq!(
            subscription_events(S::Incomplete, S::Active, Some(E::Registered)),
            [EventType::SubscriptionActivated]
        );
        assert_eq!(
            subscription_events(S::Active, S::PastDue, Some(E::RenewalFailed)),
            [
                EventType::SubscriptionPaymentFailed,
                EventType::SubscriptionPastDue
            ]
        );
        assert_eq!(
            subscription_events(S::PastDue, S::PastDue, Some(E::RenewalFailed)),
            [EventType::SubscriptionPaymentFailed]
        );
        assert_eq!(
            subscription_events(S::PastDue, S::Unpaid, Some(E::RetriesExhausted)),
            [
                EventType::SubscriptionPaymentFailed,
                EventType::SubscriptionUnpaid
            ]
        );
        assert_eq!(
            subscription_events(S::PastDue, S::Active, Some(E::ChargedCurrent)),
            [EventType::SubscriptionRenewed]
        );
        assert_eq!(
            subscription_events(S::Active, S::Canceled, Some(E::Canceled)),
            [EventType::SubscriptionCanceled]
        );
        assert!(subscription_events(S::Active, S::Active, None).is_empty());
        assert!(
            subscription_events(
                S::Incomplete,
                S::IncompleteExpired,
                Some(E::RegistrationExpired)
            )
            .is_empty()
        );
    }

    #[test]
    fn selections_parse_with_errors_that_name_the_entry() {
        assert_eq!(EventSelection::parse(&["*"]), Ok(EventSelection::All));
        let s = EventSelection::parse(&["payment.approved", "refund.succeeded"]).unwrap();
        assert!(s.wants(EventType::PaymentApproved) && !s.wants(EventType::PaymentQuit));
        assert_eq!(s.names(), vec!["payment.approved", "refund.succeeded"]);
        assert!(
            EventSelection::parse(&["payment.paid"])
                .unwrap_err()
                .contains("\"payment.paid\"")
        );
        assert!(EventSelection::parse::<&str>(&[]).is_err());
        assert!(EventSelection::parse(&["*", "payment.approved"]).is_err());
    }

    #[test]
    fn production_destinations_are_public_https_only() {
        let ok = |u: &str| Destination::parse(u, false).map(|d| d.as_str().to_owned());
        assert!(ok("https://shop.example.com/hooks/kakaopay").is_ok());
        assert_eq!(
            ok("http://shop.example.com/hooks"),
            Err(DestinationError::PlainHttp)
        );
        for bad in [
            "https://127.0.0.1/h",
            "https://10.1.2.3/h",
            "https://192.168.0.10/h",
            "https://172.16.5.4/h",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/h",
            "https://[fd00::1]/h",
            "https://[fe80::1]/h",
            "https://[::ffff:10.0.0.1]/h",
            "https://100.64.0.1/h",
            "https://0.0.0.0/h",
            "https://localhost/h",
            "https://api.localhost/h",
        ] {
            assert!(
                matches!(ok(bad), Err(DestinationError::Private(_))),
                "{bad}: {:?}",
                ok(bad)
            );
        }
        assert_eq!(
            ok("https://user:pw@shop.example.com/h"),
            Err(DestinationError::Credentials)
        );
        assert_eq!(
            ok("ftp://shop.example.com/h"),
            Err(DestinationError::NotHttp)
        );
        assert_eq!(ok("/hooks"), Err(DestinationError::NotHttp));
        // Local development: http and loopback are fine, credentials still not.
        assert!(Destination::parse("http://127.0.0.1:3000/hooks", true).is_ok());
        assert_eq!(
            Destination::parse("http://u:p@127.0.0.1/h", true),
            Err(DestinationError::Credentials)
        );
    }

    proptest! {
        /// Every address of the private ranges is refused in production, and a public one
        /// (outside every internal range) is accepted.
        #[test]
        fn private_ranges_are_refused(b in 0u8..=255, c in 0u8..=255, d in 1u8..=254) {
            for ip in [format!("10.{b}.{c}.{d}"), format!("192.168.{c}.{d}"), format!("127.{b}.{c}.{d}"), format!("172.{}.{c}.{d}", 16 + b % 16)] {
                let u = format!("https://{ip}/h");
                prop_assert!(matches!(Destination::parse(&u, false), Err(DestinationError::Private(_))), "{}", u);
            }
            let public = format!("https://8.{b}.{c}.{d}/h");
            prop_assert!(Destination::parse(&public, false).is_ok());
        }
    }
}
