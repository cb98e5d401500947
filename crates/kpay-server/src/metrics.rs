//! Prometheus metrics: payments by status (read from the store at scrape time), KakaoPay call
//! latency by operation, KakaoPay errors by operation and code, HTTP requests by route and status.

use kakaopay::{Error, Operation};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    operation: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    status: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 11.0, 15.0,
    ])
}

/// The server's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    kakaopay_latency: Family<OpLabels, Histogram, fn() -> Histogram>,
    kakaopay_errors: Family<ErrorLabels, Counter>,
    payments: Family<StatusLabels, Gauge>,
    http_requests: Family<HttpLabels, Counter>,
    subscriptions: Family<StatusLabels, Gauge>,
    renewals: Family<OutcomeLabels, Counter>,
    unknown_charges: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let kakaopay_latency =
            Family::<OpLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let kakaopay_errors = Family::<ErrorLabels, Counter>::default();
        let payments = Family::<StatusLabels, Gauge>::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "kpay_kakaopay_request_duration_seconds",
            "KakaoPay call latency",
            kakaopay_latency.clone(),
        );
        registry.register(
            "kpay_kakaopay_errors",
            "KakaoPay call failures by code",
            kakaopay_errors.clone(),
        );
        registry.register("kpay_payments", "Payments by status", payments.clone());
        registry.register(
            "kpay_http_requests",
            "HTTP requests by route and status",
            http_requests.clone(),
        );
        let subscriptions = Family::<StatusLabels, Gauge>::default();
        let renewals = Family::<OutcomeLabels, Counter>::default();
        let unknown_charges = Gauge::default();
        registry.register(
            "kpay_subscriptions",
            "Subscriptions by status",
            subscriptions.clone(),
        );
        registry.register(
            "kpay_subscription_charges",
            "Subscription charge outcomes (succeeded, failed, retry_scheduled: a dunning retry planned)",
            renewals.clone(),
        );
        registry.register(
            "kpay_subscription_charges_open",
            "Subscription charges pending or unknown (lost answers awaiting a status lookup)",
            unknown_charges.clone(),
        );
        Self {
            registry,
            kakaopay_latency,
            kakaopay_errors,
            payments,
            http_requests,
            subscriptions,
            renewals,
            unknown_charges,
        }
    }
}

impl Metrics {
    /// Records one KakaoPay call.
    pub(crate) fn observe_kakaopay(&self, op: Operation, took: Duration, error: Option<&Error>) {
        let operation = op.path_tail().replace('/', "_");
        self.kakaopay_latency
            .get_or_create(&OpLabels {
                operation: operation.clone(),
            })
            .observe(took.as_secs_f64());
        if let Some(e) = error {
            let code = match e {
                Error::Api { error, .. } => error.code.code().to_string(),
                Error::Transport { kind, .. } => format!("{kind:?}").to_lowercase(),
                Error::Decode { .. } => "decode".into(),
                _ => "other".into(),
            };
            self.kakaopay_errors
                .get_or_create(&ErrorLabels { operation, code })
                .inc();
        }
    }

    /// Records one HTTP request.
    pub(crate) fn observe_http(&self, route: &str, status: u16) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                status: status.to_string(),
            })
            .inc();
    }

    /// Sets the payments-by-status gauge.
    pub(crate) fn set_payment_counts(&self, counts: &[(crate::domain::PaymentStatus, u64)]) {
        for status in crate::domain::PaymentStatus::ALL {
            let n = counts
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(0, |(_, n)| i64::try_from(*n).unwrap_or(i64::MAX));
            self.payments
                .get_or_create(&StatusLabels {
                    status: status.as_str().to_owned(),
                })
                .set(n);
        }
    }

    /// Counts one subscription charge outcome.
    pub(crate) fn renewal(&self, outcome: &str) {
        self.renewals
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Sets the subscriptions-by-status gauge and the open charges.
    pub(crate) fn set_subscription_counts(&self, counts: &[(String, i64)], open: i64) {
        use strum::VariantArray;
        for status in crate::domain::SubscriptionStatus::VARIANTS {
            let name: &str = status.into();
            let n = counts
                .iter()
                .find(|(s, _)| s == name)
                .map_or(0, |(_, n)| *n);
            self.subscriptions
                .get_or_create(&StatusLabels {
                    status: name.to_owned(),
                })
                .set(n);
        }
        self.unknown_charges.set(open);
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
