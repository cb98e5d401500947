//! The merchant's payment server: orders, a persisted payment state machine, KakaoPay callbacks,
//! refunds, idempotency, reconciliation, metrics and pages.
//!
//! Direction of dependency: [`web`] (pages) → [`http`] (the merchant API, its errors) →
//! [`service`] (one use case per function) → [`domain`] (pure: what a payment is, and the one
//! function that changes its status), [`store`] (SQLite | PostgreSQL, speaking domain types) and
//! [`gateway`] (the KakaoPay client). [`service`]'s reconciler drives it in the background;
//! [`startup`] wires it all.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(missing_docs)]

pub mod config;
pub(crate) mod crashpoint;
pub mod domain;
pub(crate) mod gateway;
pub(crate) mod http;
pub(crate) mod metrics;
pub(crate) mod service;
pub(crate) mod startup;
pub mod store;
pub mod vault;
pub(crate) mod web;

pub use config::ServerConfig;
pub use service::reconciler::{Line, PassReport};
pub use startup::{Application, StartError, reconcile_once};
