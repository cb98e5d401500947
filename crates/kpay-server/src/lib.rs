//! The merchant's payment server: orders, a persisted payment state machine, KakaoPay callbacks,
//! refunds, idempotency, reconciliation, metrics and pages.
//!
//! Direction of dependency: [`http`] (handlers, pages) → [`service`] (one use case per function)
//! → [`domain`] (pure), [`store`] (SQLite | PostgreSQL) and [`gateway`] (the KakaoPay client).
//! [`reconciler`] drives [`service`] in the background; [`startup`] wires it all.

pub mod config;
pub mod crashpoint;
pub mod domain;
pub mod gateway;
pub mod http;
pub mod metrics;
pub mod reconciler;
pub mod service;
pub mod startup;
pub mod store;
pub mod web;

pub use config::ServerConfig;
pub use startup::{Application, StartError, reconcile_once};
