//! Shared set-up for the sandbox's HTTP tests: a sandbox on a free port and typed clients of both
//! generations pointed at it.
#![allow(dead_code)]

use kakaopay::*;
use kakaopay_sandbox::{SandboxConfig, SpawnedSandbox, spawn};
use serde_json::Value;

pub const GENERATIONS: [Generation; 2] = [Generation::Open, Generation::Legacy];

pub struct Env {
    pub sandbox: SpawnedSandbox,
    pub http: reqwest::Client,
}

pub async fn env() -> Env {
    env_with(SandboxConfig::default()).await
}

pub async fn env_with(config: SandboxConfig) -> Env {
    let sandbox = spawn(config).await.expect("sandbox starts");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Env { sandbox, http }
}

impl Env {
    pub fn base(&self) -> String {
        self.sandbox.base_url()
    }

    pub fn client(&self, generation: Generation) -> Client {
        let credentials = match generation {
            Generation::Open => Credentials::secret_key("DEV0123456789ABCDEF0123456789ABCDEF01234"),
            Generation::Legacy => Credentials::admin_key("0123456789abcdef0123456789abcdef"),
        };
        Client::builder(credentials)
            .base_url(self.base())
            .retry_policy(RetryPolicy::NONE)
            .build()
            .unwrap()
    }

    /// POSTs a JSON body to a test helper path and returns (status, body).
    pub async fn helper(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.base()));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    pub async fn authorize(&self, tid: &Tid, method: &str) -> PgToken {
        let (status, body) = self
            .helper(
                &format!("/test/v1/payments/{tid}/authorize"),
                Some(serde_json::json!({"payment_method_type": method})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        PgToken::parse(body["pg_token"].as_str().unwrap()).unwrap()
    }

    pub async fn fault(&self, spec: Value) {
        let (status, body) = self.helper("/test/v1/faults", Some(spec)).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["id"].as_u64().is_some());
    }
}

pub fn won(n: i64) -> Amount {
    Amount::new(n).unwrap()
}

pub fn cid() -> Cid {
    "TC0ONETIME".parse().unwrap()
}

pub fn ready_req(cid: &str, order: &str, user: &str, total: i64) -> ReadyRequestBuilder {
    ReadyRequest::builder()
        .cid(cid)
        .partner_order_id(order)
        .partner_user_id(user)
        .item_name("초코파이")
        .quantity(1)
        .total_amount(total)
        .approval_url("https://shop.example/pay/approve?order=1&lang=ko")
        .cancel_url("https://shop.example/pay/cancel?order=1")
        .fail_url("https://shop.example/pay/fail?order=1")
}

/// A payment of `total` won, authorized with `method` and approved; returns (tid, approve answer).
pub async fn paid(env: &Env, client: &Client, total: i64, method: &str) -> (Tid, ApproveResponse) {
    let req = ready_req("TC0ONETIME", "order-1", "user-1", total)
        .build()
        .unwrap();
    let ready = client.ready(&req).await.unwrap();
    let token = env.authorize(&ready.tid, method).await;
    let approved = client
        .approve(&approve_req(&ready.tid, token))
        .await
        .unwrap();
    (ready.tid, approved)
}

pub fn approve_req(tid: &Tid, token: PgToken) -> ApproveRequest {
    ApproveRequest::new(
        cid(),
        tid.clone(),
        "order-1".parse().unwrap(),
        "user-1".parse().unwrap(),
        token,
    )
}

pub fn cancel_req(tid: &Tid, amount: i64, tax_free: i64) -> CancelRequest {
    CancelRequest::new(cid(), tid.clone(), won(amount), won(tax_free))
}

pub async fn order(client: &Client, tid: &Tid) -> OrderResponse {
    client
        .order(&OrderRequest::new(cid(), tid.clone()))
        .await
        .unwrap()
}

pub fn code(e: &Error) -> i64 {
    e.code()
        .map(|c| c.code())
        .unwrap_or_else(|| panic!("expected an API error, got {e}"))
}
