//! The merchant's payment server.
pub mod config;
pub mod domain;
pub mod gateway;
pub mod metrics;
pub mod service;
pub mod store;

pub use config::ServerConfig;
