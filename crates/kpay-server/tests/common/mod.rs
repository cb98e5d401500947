//! Test harness: spawns the real server (built-in sandbox, real SQLite file or a fresh PostgreSQL
//! database on this machine) on a free port and talks to it over HTTP.
#![allow(dead_code)]

use kakaopay::Generation;
use kpay_server::{Application, ServerConfig};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::oneshot;

pub const API_KEY: &str = "kpay_sk_test_0123456789abcdefghij";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one test per backend (and per KakaoPay generation with `generations`).
#[macro_export]
macro_rules! both_backends {
    ($scenario:ident) => {
        mod $scenario {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario(Backend::Sqlite, kakaopay::Generation::Open).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$scenario(Backend::Postgres, kakaopay::Generation::Open).await
            }
        }
    };
    ($scenario:ident, generations) => {
        mod $scenario {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_open() {
                super::$scenario(Backend::Sqlite, kakaopay::Generation::Open).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_legacy() {
                super::$scenario(Backend::Sqlite, kakaopay::Generation::Legacy).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_open() {
                super::$scenario(Backend::Postgres, kakaopay::Generation::Open).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_legacy() {
                super::$scenario(Backend::Postgres, kakaopay::Generation::Legacy).await
            }
        }
    };
}

fn random(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| (b'a' + rng.random_range(0..26)) as char)
        .collect()
}

/// A fresh database (dropped afterwards) and a scratch data directory (removed afterwards).
pub struct Scratch {
    pub url: String,
    pub data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

pub fn admin_url() -> String {
    std::env::var("KPAY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

impl Scratch {
    pub async fn new(backend: Backend) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("kpay-test-")
            .tempdir()
            .unwrap();
        let data_dir = dir.path().to_owned();
        match backend {
            Backend::Sqlite => Scratch {
                url: format!("sqlite://{}", data_dir.join("kpay.db").display()),
                data_dir,
                _dir: Some(dir),
                pg_name: None,
            },
            Backend::Postgres => {
                use sqlx::Connection;
                let name = format!("kpay_t_{}", random(16));
                let mut conn = sqlx::PgConnection::connect(&admin_url())
                    .await
                    .expect("PostgreSQL on 127.0.0.1:5432 (see README)");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let mut url = url::Url::parse(&admin_url()).unwrap();
                url.set_path(&name);
                Scratch {
                    url: url.to_string(),
                    data_dir,
                    _dir: Some(dir),
                    pg_name: Some(name),
                }
            }
        }
    }
}

impl Scratch {
    /// Runs `sql` on the database behind the store's back (to break a row on purpose).
    #[allow(dead_code)]
    pub async fn execute(&self, sql: &str) {
        use sqlx::Connection;
        if self.url.starts_with("sqlite:") {
            let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        } else {
            let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
    }
}

impl Scratch {
    /// The first column of the first row of `sql`, as text.
    #[allow(dead_code)]
    pub async fn query_text(&self, sql: &str) -> String {
        use sqlx::Connection;
        if self.url.starts_with("sqlite:") {
            let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
        } else {
            let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
        }
    }

    /// The same database with a data directory of its own (a second instance); the database
    /// stays the first scratch's to drop.
    #[allow(dead_code)]
    pub fn sibling(&self) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("kpay-test-")
            .tempdir()
            .unwrap();
        Scratch {
            url: self.url.clone(),
            data_dir: dir.path().to_owned(),
            _dir: Some(dir),
            pg_name: None,
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url()).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut conn)
                                .await;
                    }
                });
            })
            .join();
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub scratch: Scratch,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), kpay_server::StartError>>>,
}

pub fn config(scratch: &Scratch, generation: Generation) -> ServerConfig {
    let mut c = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    c.database_url = Some(scratch.url.clone());
    c.data_dir = scratch.data_dir.clone();
    c.kakaopay_api = generation;
    c.api_key = Some(SecretString::from(API_KEY));
    c.unknown_grace = Duration::from_millis(800);
    c.reconcile_interval = Duration::from_millis(300);
    // Short, so that the grace period (never shorter than the timeout) stays short too.
    c.kakaopay_timeout = Duration::from_secs(2);
    c.shutdown_timeout = Duration::from_secs(5);
    c
}

impl TestApp {
    pub async fn spawn(backend: Backend, generation: Generation) -> TestApp {
        Self::spawn_with(backend, generation, |_| {}).await
    }

    pub async fn spawn_with(
        backend: Backend,
        generation: Generation,
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> TestApp {
        let scratch = Scratch::new(backend).await;
        let mut c = config(&scratch, generation);
        adjust(&mut c);
        Self::start(scratch, c).await
    }

    pub async fn start(scratch: Scratch, config: ServerConfig) -> TestApp {
        let app = Application::build(config).await.expect("server starts");
        let base = app.public_url().to_owned();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        TestApp {
            base,
            http,
            scratch,
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    /// Stops gracefully and waits.
    pub async fn stop(mut self) -> Scratch {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
        std::mem::replace(
            &mut self.scratch,
            Scratch {
                url: String::new(),
                data_dir: PathBuf::new(),
                _dir: None,
                pg_name: None,
            },
        )
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body), Some(API_KEY))
            .await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None, Some(API_KEY))
            .await
    }

    pub async fn create(&self, total: i64) -> Value {
        let (status, body) = self
            .post("/api/v1/payments", json!({"partner_user_id": "user-1", "item_name": "수제 쿠키 세트", "quantity": 1, "total_amount": total}))
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    pub async fn payment(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/api/v1/payments/{id}")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn events(&self, id: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/api/v1/payments/{id}/events")).await;
        assert_eq!(status, 200, "{body}");
        body["data"].as_array().unwrap().clone()
    }

    /// The causes of a payment's events, oldest first.
    pub async fn causes(&self, id: &str) -> Vec<String> {
        self.events(id)
            .await
            .iter()
            .map(|e| e["cause"].as_str().unwrap().to_owned())
            .collect()
    }

    /// POSTs to a sandbox test helper (`/sandbox/test/v1/…`).
    pub async fn sandbox(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        self.send(
            reqwest::Method::POST,
            &format!("/sandbox/test/v1{path}"),
            body,
            None,
        )
        .await
    }

    /// The buyer authenticates; returns the approval callback URL with its pg_token.
    pub async fn authorize(&self, payment: &Value) -> String {
        let tid = payment["tid"].as_str().unwrap();
        let (status, body) = self
            .sandbox(&format!("/payments/{tid}/authorize"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        body["redirect_url"].as_str().unwrap().to_owned()
    }

    pub async fn fault(&self, spec: Value) {
        let (status, body) = self.sandbox("/faults", Some(spec)).await;
        assert_eq!(status, 200, "{body}");
    }

    /// GETs a browser URL; returns (status, Location, body).
    pub async fn browse(&self, url: &str) -> (u16, Option<String>, String) {
        let resp = self.http.get(url).send().await.unwrap();
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        (status, location, resp.text().await.unwrap())
    }

    /// A paid payment of `total`.
    pub async fn paid(&self, total: i64) -> Value {
        let p = self.create(total).await;
        let callback = self.authorize(&p).await;
        let (status, _, _) = self.browse(&callback).await;
        assert_eq!(status, 200);
        let p = self.payment(p["id"].as_str().unwrap()).await;
        assert_eq!(p["status"], "approved", "{p}");
        p
    }

    /// Polls until the payment has `status` (or fails after 15 s).
    pub async fn wait_for(&self, id: &str, status: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let p = self.payment(id).await;
            if p["status"] == status {
                return p;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "payment {id} never became {status}: {p}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// KakaoPay's view of a payment, through the sandbox (order lookup).
    pub async fn kakaopay_order(
        &self,
        tid: &str,
        generation: Generation,
    ) -> kakaopay::OrderResponse {
        let credentials = match generation {
            Generation::Open => kakaopay::Credentials::secret_key("test"),
            Generation::Legacy => kakaopay::Credentials::admin_key("test"),
        };
        let client = kakaopay::Client::builder(credentials)
            .base_url(format!("{}/sandbox", self.base))
            .build()
            .unwrap();
        client
            .order(&kakaopay::OrderRequest::new(
                "TC0ONETIME".parse().unwrap(),
                tid.parse().unwrap(),
            ))
            .await
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

impl TestApp {
    /// KakaoPay's own record of a payment (sandbox helper): status, actions, calls.
    /// GETs a sandbox helper.
    #[allow(dead_code)]
    pub async fn sandbox_get(&self, path: &str) -> (u16, Value) {
        self.send(
            reqwest::Method::GET,
            &format!("/sandbox/test/v1{path}"),
            None,
            None,
        )
        .await
    }

    pub async fn kakaopay_record(&self, tid: &str) -> Value {
        let (status, body) = self
            .send(
                reqwest::Method::GET,
                &format!("/sandbox/test/v1/payments/{tid}"),
                None,
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// POSTs with an Idempotency-Key.
    pub async fn post_keyed(&self, path: &str, key: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(API_KEY)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}
