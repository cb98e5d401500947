//! `kpay sandbox`: the sandbox alone, at KakaoPay's paths from the root.

use kakaopay_sandbox::{Sandbox, SandboxConfig};
use std::net::SocketAddr;
use std::time::Duration;

/// Flags of `kpay sandbox`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, env = "KPAY_SANDBOX_LISTEN", default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// Base URL browsers use to reach the sandbox (payment page links, QR codes). Default: http://<listen>.
    #[arg(long, env = "KPAY_SANDBOX_PUBLIC_URL")]
    public_url: Option<String>,
    /// Accepted current-generation secret key (repeatable). None given: any non-empty key.
    #[arg(
        long = "secret-key",
        env = "KPAY_SANDBOX_SECRET_KEYS",
        value_delimiter = ','
    )]
    secret_keys: Vec<String>,
    /// Accepted legacy admin key (repeatable). None given: any non-empty key.
    #[arg(
        long = "admin-key",
        env = "KPAY_SANDBOX_ADMIN_KEYS",
        value_delimiter = ','
    )]
    admin_keys: Vec<String>,
    /// Seconds settled payments (paid, cancelled, failed, expired) are kept before eviction.
    #[arg(long, env = "KPAY_SANDBOX_RETENTION", default_value_t = 86_400)]
    retention: u64,
}

/// Why the sandbox could not run.
#[derive(Debug, thiserror::Error)]
pub enum SandboxRunError {
    /// The listen address is taken or not allowed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The public URL is not an http(s) URL.
    #[error("--public-url {0:?} must be an http(s) URL like http://127.0.0.1:9090")]
    PublicUrl(String),
    /// The server failed while running.
    #[error("the sandbox server failed: {0}")]
    Serve(std::io::Error),
}

/// Runs until SIGINT/SIGTERM, then finishes in-flight requests.
pub async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", args.listen));
    match url_ok(&public_url) {
        true => {}
        false => return Err(SandboxRunError::PublicUrl(public_url).into()),
    }
    let config = SandboxConfig {
        public_url: public_url.clone(),
        secret_keys: args
            .secret_keys
            .iter()
            .filter(|k| !k.is_empty())
            .cloned()
            .collect(),
        admin_keys: args
            .admin_keys
            .iter()
            .filter(|k| !k.is_empty())
            .cloned()
            .collect(),
        retention: Duration::from_secs(args.retention.max(1)),
        ..SandboxConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| SandboxRunError::Bind {
            addr: args.listen,
            source,
        })?;
    let sandbox = Sandbox::new(config);
    let _eviction = sandbox.start_eviction();
    let app = kakaopay_sandbox::router(sandbox);
    println!("kpay sandbox listening on http://{}", args.listen);
    println!(
        "  current API : {public_url}/online/v1/payment/{{ready,approve,cancel,order,subscription}}"
    );
    println!("  legacy API  : {public_url}/v1/payment/{{ready,approve,cancel,order,subscription}}");
    println!(
        "  test helpers: {public_url}/test/v1/{{payments/{{tid}}/authorize,clock/advance,faults}}"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(SandboxRunError::Serve)?;
    println!("kpay sandbox stopped");
    Ok(())
}

fn url_ok(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
