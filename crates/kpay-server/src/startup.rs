//! Building and running the server: configuration checks, the store, the API key, KakaoPay (or
//! the built-in sandbox), the reconciler, graceful shutdown.

use crate::config::ServerConfig;
use crate::gateway::Gateway;
use crate::http::{self, AppState, auth};
use crate::metrics::Metrics;
use crate::service::reconciler::{PassReport, Reconciler};
use crate::service::{Clock, Services, Settings, token};
use crate::store::{Store, StoreError};
use axum::Router;
use kakaopay::{Client, Credentials, Generation};
use secrecy::ExposeSecret;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error("{0}")]
    Config(String),
    /// The address is taken.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The data directory.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
}

/// Mounts the built-in sandbox at `/sandbox` (developer builds: the `sandbox` feature).
#[cfg(feature = "sandbox")]
fn mount_sandbox(router: Router, public_url: &str) -> Result<Router, StartError> {
    let sandbox = kakaopay_sandbox::Sandbox::new(kakaopay_sandbox::SandboxConfig {
        public_url: format!("{public_url}/sandbox"),
        // Paid payments stay refundable for a month in the built-in sandbox.
        retention: Duration::from_secs(30 * 24 * 3600),
        ..Default::default()
    });
    let _eviction = sandbox.start_eviction();
    Ok(router.nest("/sandbox", kakaopay_sandbox::router(sandbox)))
}

/// A production build has no built-in sandbox (its test helpers let anyone "pay"): without a
/// KakaoPay key or URL it does not start.
#[cfg(not(feature = "sandbox"))]
fn mount_sandbox(_router: Router, _public_url: &str) -> Result<Router, StartError> {
    Err(StartError::Config(
        "this build has no built-in KakaoPay sandbox: set KAKAOPAY_SECRET_KEY (or KAKAOPAY_ADMIN_KEY), or --kakaopay-url".into(),
    ))
}

/// The database URL: the configured one or SQLite in the data directory.
pub fn database_url(config: &ServerConfig) -> String {
    config.database_url()
}

/// The KakaoPay client for `config`, calling `builtin_base` when the built-in sandbox serves.
fn kakaopay_client(config: &ServerConfig, builtin_base: &str) -> Result<Client, StartError> {
    let key_for = |key: &Option<secrecy::SecretString>, name: &str| -> Result<String, StartError> {
        match (key, &config.kakaopay_url) {
            (Some(k), _) => Ok(k.expose_secret().to_owned()),
            (None, None) => Ok("kpay-builtin-sandbox".to_owned()),
            (None, Some(url)) if crate::config::is_loopback(url) => {
                Ok("kpay-local-sandbox".to_owned())
            }
            (None, Some(url)) => Err(StartError::Config(format!(
                "{name} is required to call KakaoPay at {url}"
            ))),
        }
    };
    let credentials = match config.kakaopay_api {
        Generation::Open => {
            if config.secret_key.is_none() && config.admin_key.is_some() {
                return Err(StartError::Config("KAKAOPAY_ADMIN_KEY is for the legacy API: add --kakaopay-api legacy, or set KAKAOPAY_SECRET_KEY".into()));
            }
            Credentials::secret_key(key_for(&config.secret_key, "KAKAOPAY_SECRET_KEY")?)
        }
        Generation::Legacy => {
            if config.admin_key.is_none() && config.secret_key.is_some() {
                return Err(StartError::Config("KAKAOPAY_SECRET_KEY is for the current API: drop --kakaopay-api legacy, or set KAKAOPAY_ADMIN_KEY".into()));
            }
            Credentials::admin_key(key_for(&config.admin_key, "KAKAOPAY_ADMIN_KEY")?)
        }
    };
    let mut builder = Client::builder(credentials).timeout(config.kakaopay_timeout);
    match (&config.kakaopay_url, config.uses_builtin_sandbox()) {
        (Some(url), _) => builder = builder.base_url(url),
        (None, true) => builder = builder.base_url(builtin_base),
        (None, false) => {}
    }
    builder
        .build()
        .map_err(|e| StartError::Config(e.to_string()))
}

/// Makes sure an API key exists: the configured one, the one kept in the data directory, or a new
/// one. Returns the key when it was generated now (to print it once).
async fn ensure_api_key(
    config: &ServerConfig,
    services: &Services,
) -> Result<(String, bool), StartError> {
    let add = |key: String| async move {
        services
            .add_api_key(
                &format!("key_{}", token()),
                &auth::hash_key(&key),
                &key.chars().take(12).collect::<String>(),
            )
            .await
            .map_err(|e| match e {
                crate::service::ServiceError::Store(s) => StartError::Store(s),
                other => StartError::Config(other.to_string()),
            })?;
        Ok::<_, StartError>(key)
    };
    if let Some(key) = &config.api_key {
        let key = key.expose_secret().trim().to_owned();
        if key.len() < 16 {
            return Err(StartError::Config(
                "--api-key / KPAY_API_KEY must be at least 16 characters".into(),
            ));
        }
        return Ok((add(key).await?, false));
    }
    let file = config.data_dir.join("api-key");
    let dir_err = |source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&file) {
        Ok(key) if !key.trim().is_empty() => Ok((add(key.trim().to_owned()).await?, false)),
        _ => {
            std::fs::create_dir_all(&config.data_dir).map_err(dir_err)?;
            let key = auth::generate_key();
            write_secret(&file, &key).map_err(dir_err)?;
            Ok((add(key).await?, true))
        }
    }
}

fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    writeln!(f, "{secret}")
}

/// A built server, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    public_url: String,
    router: Router,
    state: AppState,
    reconciler: Reconciler,
    deliveries: Option<crate::service::delivery::DeliveryWorker>,
    /// The demo shop, to register its webhook endpoint once serving.
    shop: Option<crate::web::shop::ShopState>,
    api_key: String,
    api_key_generated: bool,
    builtin_sandbox: bool,
    shutdown_timeout: Duration,
}

/// Builds the services for `config`; `builtin_base` is where the built-in sandbox would be.
async fn services(
    config: &ServerConfig,
    public_url: &str,
    builtin_base: &str,
    metrics: Arc<Metrics>,
) -> Result<Services, StartError> {
    let store = Store::connect_with(&database_url(config), config.database_max_connections)
        .await?
        .with_renderer(crate::http::views::event_renderer());
    let client = kakaopay_client(config, builtin_base)?;
    let test_clock = config.kakaopay_is_sandbox();
    Ok(Services::new(
        store,
        Gateway::new(
            client,
            (config.cid.clone(), config.subscription_cid.clone()),
            metrics,
            test_clock,
        ),
        Settings {
            public_url: public_url.to_owned(),
            unknown_grace: config.unknown_grace,
            kakaopay_timeout: config.kakaopay_timeout,
            payment_ttl: config.payment_ttl,
            instance: format!("inst_{}", token()),
            vault: crate::vault::Vault::load(config.encryption_key.as_ref(), &config.data_dir)
                .map_err(|e| StartError::Config(e.to_string()))?,
            dunning_schedule: config.dunning_schedule.clone(),
            dunning_final: config.dunning_final,
            renewal_concurrency: config.renewal_concurrency,
            webhooks_local: config.webhook_allow_private || config.kakaopay_is_sandbox(),
            webhook_retry_schedule: config.webhook_retry_schedule.clone(),
        },
        // A clock that tests can move exists only while KakaoPay is a sandbox.
        if test_clock {
            Clock::test()
        } else {
            Clock::system()
        },
    ))
}

impl Application {
    /// Checks the configuration, binds, opens the database (migrating it) and wires everything.
    pub async fn build(config: ServerConfig) -> Result<Self, StartError> {
        if let Some(url) = &config.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(StartError::Config(format!(
                "--public-url {url:?} must be an http(s) URL"
            )));
        }
        if let Some(url) = &config.kakaopay_url
            && url::Url::parse(url).map_or(true, |u| !matches!(u.scheme(), "http" | "https"))
        {
            return Err(StartError::Config(format!(
                "--kakaopay-url {url:?} must be an http(s) URL"
            )));
        }
        if let Some(point) = &config.crash_at {
            if !config.kakaopay_is_sandbox() {
                return Err(StartError::Config(
                    "--test-crash-at is for tests against a sandbox only".into(),
                ));
            }
            if !crate::crashpoint::arm(point) {
                return Err(StartError::Config(format!(
                    "--test-crash-at {point:?}: not a crash point (one of {})",
                    crate::crashpoint::POINTS.join(", ")
                )));
            }
        }
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let reachable = if addr.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        } else {
            addr
        };
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{reachable}"))
            .trim_end_matches('/')
            .to_owned();
        let builtin_base = format!("http://{reachable}/sandbox");
        let metrics = Arc::new(Metrics::default());
        let services = services(&config, &public_url, &builtin_base, Arc::clone(&metrics)).await?;
        let (api_key, api_key_generated) = ensure_api_key(&config, &services).await?;
        let state = AppState {
            services: services.clone(),
            metrics,
            api_keys: Arc::default(),
            http: reqwest::Client::builder()
                .build()
                .map_err(|e| StartError::Config(e.to_string()))?,
        };
        let mut router = http::router(state.clone(), crate::web::callbacks::routes());
        let internal_base = format!("http://{reachable}");
        let secret = config
            .admin_password
            .as_ref()
            .map_or_else(|| api_key.clone(), |p| p.expose_secret().to_owned());
        router = router.merge(crate::web::admin::routes(crate::web::admin::AdminState {
            manual_run: crate::web::admin::ManualRun::default(),
            services: services.clone(),
            sessions: crate::web::session::Sessions::new(&secret),
            secret: Arc::new(secrecy::SecretString::from(secret)),
            reconcile_interval: config.reconcile_interval,
            secure_cookies: public_url.starts_with("https://"),
            once: Default::default(),
        }));
        let mut shop = None;
        if config.demo_shop {
            let orders =
                crate::web::shop::ShopOrders::open(&database_url(&config), &config.data_dir)
                    .await
                    .map_err(|e| StartError::Config(format!("the demo shop's orders: {e}")))?;
            let shop_state = crate::web::shop::ShopState {
                orders,
                http: state.http.clone(),
                api_base: internal_base,
                api_key: Arc::new(secrecy::SecretString::from(api_key.clone())),
                public_url: public_url.clone(),
                hook: Arc::default(),
            };
            // With a sandbox KakaoPay the shop is a reference receiver of webhooks too.
            if config.kakaopay_is_sandbox() {
                shop = Some(shop_state.clone());
            }
            router = router.merge(crate::web::shop::routes(shop_state));
        }
        let builtin_sandbox = config.uses_builtin_sandbox();
        if builtin_sandbox {
            router = mount_sandbox(router, &public_url)?;
        }
        let router = router
            .layer(axum::middleware::from_fn(crate::web::i18n::remember))
            // Spans name the path only: callback queries carry pg_tokens, which are never logged.
            .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &axum::extract::Request| {
                let request_id = req
                    .headers()
                    .get(&http::request_id::HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("http", request_id, method = %req.method(), path = %req.uri().path())
            }))
            // Outermost: the id exists before the span is made.
            .layer(axum::middleware::from_fn(http::request_id::assign));
        Ok(Self {
            listener,
            addr,
            public_url,
            router,
            deliveries: if config.webhook_delivery {
                Some(
                    crate::service::delivery::DeliveryWorker::new(services.clone())
                        .map_err(StartError::Config)?,
                )
            } else {
                None
            },
            reconciler: Reconciler::new(services, config.reconcile_interval),
            shop,
            state,
            api_key,
            api_key_generated,
            builtin_sandbox,
            shutdown_timeout: config.shutdown_timeout,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// The base URL browsers use.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }
    /// The merchant API key in force.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }
    /// Whether the key was generated by this start (print it once).
    pub fn api_key_generated(&self) -> bool {
        self.api_key_generated
    }
    /// Whether the built-in sandbox serves as KakaoPay.
    pub fn builtin_sandbox(&self) -> bool {
        self.builtin_sandbox
    }

    /// Serves until `shutdown` resolves, then stops taking requests, finishes in-flight ones and
    /// background lookups (bounded by the shutdown timeout) and closes the database.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let stop = CancellationToken::new();
        let reconciler = tokio::spawn(self.reconciler.clone().run(stop.clone()));
        // The listener is bound: the shop's requests wait in its backlog until serving starts.
        if let Some(shop) = self.shop {
            tokio::spawn(shop.register_webhook());
        }
        let deliveries = self.deliveries.map(|w| tokio::spawn(w.run(stop.clone())));
        let stopping = self.state.services.stopping.clone();
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                // Long polls answer now instead of holding the shutdown for their wait.
                stopping.cancel();
            })
            .await;
        stop.cancel();
        let tasks = self.state.services.tasks.clone();
        tasks.close();
        if tokio::time::timeout(self.shutdown_timeout, async {
            let _ = reconciler.await;
            if let Some(d) = deliveries {
                let _ = d.await;
            }
            tasks.wait().await;
        })
        .await
        .is_err()
        {
            tracing::warn!(
                "shutdown timeout: some background lookups were left to the next start's reconciler"
            );
        }
        self.state.services.close().await;
        served.map_err(StartError::Serve)
    }
}

/// `kpay reconcile`: one pass with a report, without serving. With the default configuration it
/// talks to the built-in sandbox of the server running at `--listen`.
pub async fn reconcile_once(
    config: ServerConfig,
    since: Duration,
) -> Result<PassReport, StartError> {
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen));
    let builtin_base = format!("http://{}/sandbox", config.listen);
    let services = services(
        &config,
        &public_url,
        &builtin_base,
        Arc::new(Metrics::default()),
    )
    .await?;
    let report = Reconciler::new(services.clone(), config.reconcile_interval)
        .full_report(since)
        .await;
    services.tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), services.tasks.wait()).await;
    services.close().await;
    Ok(report)
}
