//! A production build (`--no-default-features`): no built-in sandbox to mount. Without a KakaoPay
//! key or URL it refuses to start, with a line that says what to set; `/sandbox` does not exist.

mod common;
use common::*;
use kpay_server::{Application, ServerConfig, StartError};

#[tokio::test]
#[cfg_attr(
    feature = "sandbox",
    ignore = "the production build's test: cargo test --no-default-features"
)]
async fn a_production_build_cannot_mount_the_sandbox() {
    let scratch = Scratch::new(Backend::Sqlite).await;
    let mut c = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    c.database_url = Some(scratch.url.clone());
    c.data_dir = scratch.data_dir.clone();
    match Application::build(c).await {
        Err(StartError::Config(msg)) => assert!(
            msg.contains("no built-in KakaoPay sandbox") && msg.contains("KAKAOPAY_SECRET_KEY"),
            "{msg}"
        ),
        Err(other) => panic!("failed for another reason: {other}"),
        Ok(_) => panic!("a production build served the built-in sandbox"),
    }
}
