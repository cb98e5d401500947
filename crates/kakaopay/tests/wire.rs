//! The exact wire form of both generations, checked against a local capture server: paths, auth
//! headers, content types, bodies; plus timeouts, retries, validation and secrecy.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use kakaopay::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
struct Captured {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: String,
}

/// What the capture server answers: the n-th request gets `replies[min(n, len-1)]`.
#[derive(Clone)]
struct Reply {
    status: u16,
    body: &'static str,
    delay: Duration,
}

struct Capture {
    base: String,
    seen: Arc<Mutex<Vec<Captured>>>,
}

impl Capture {
    async fn start(replies: Vec<Reply>) -> Capture {
        let seen: Arc<Mutex<Vec<Captured>>> = Arc::default();
        let log = Arc::clone(&seen);
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let log = Arc::clone(&log);
                let replies = replies.clone();
                async move {
                    let n = {
                        let mut log = log.lock().unwrap();
                        log.push(Captured {
                            method,
                            path: uri.path().to_owned(),
                            headers,
                            body: String::from_utf8(body.to_vec()).unwrap(),
                        });
                        log.len() - 1
                    };
                    let reply = replies[n.min(replies.len() - 1)].clone();
                    tokio::time::sleep(reply.delay).await;
                    (
                        StatusCode::from_u16(reply.status).unwrap(),
                        [("content-type", "application/json;charset=UTF-8")],
                        reply.body,
                    )
                        .into_response()
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Capture { base, seen }
    }
    fn requests(&self) -> Vec<Captured> {
        self.seen.lock().unwrap().clone()
    }
}

fn ok(body: &'static str) -> Reply {
    Reply {
        status: 200,
        body,
        delay: Duration::ZERO,
    }
}

const READY_OK: &str = r#"{"tid":"T1234567890123456789","next_redirect_pc_url":"http://x/info","created_at":"2024-01-01T00:00:00"}"#;
const APPROVE_OK: &str = r#"{"aid":"A1234567890123456789","tid":"T1234567890123456789","cid":"TC0ONETIME","partner_order_id":"order-1","partner_user_id":"user-1","payment_method_type":"MONEY","amount":{"total":2200,"tax_free":0,"vat":200,"point":0,"discount":0}}"#;
const ORDER_OK: &str = r#"{"tid":"T1234567890123456789","cid":"TC0ONETIME","status":"SUCCESS_PAYMENT","partner_order_id":"order-1","partner_user_id":"user-1"}"#;

const OPEN_KEY: &str = "DEV0123456789ABCDEF0123456789ABCDEF01234";
const ADMIN_KEY: &str = "0123456789abcdef0123456789abcdef";

fn ready_request() -> ReadyRequest {
    ReadyRequest::builder()
        .cid("TC0ONETIME")
        .partner_order_id("order-1")
        .partner_user_id("user-1")
        .item_name("초코파이 1+1")
        .quantity(1)
        .total_amount(2200)
        .vat_amount(200)
        .approval_url("https://shop.example/approve?o=1")
        .cancel_url("https://shop.example/cancel")
        .fail_url("https://shop.example/fail")
        .available_cards(vec!["KB".to_owned(), "BC".to_owned()])
        .custom_json(
            [("return_custom_url".to_owned(), "app://done".to_owned())]
                .into_iter()
                .collect::<std::collections::BTreeMap<_, _>>(),
        )
        .use_share_installment(false)
        .install_month(3)
        .build()
        .unwrap()
}

fn approve_request() -> ApproveRequest {
    ApproveRequest::new(
        "TC0ONETIME".parse().unwrap(),
        "T1234567890123456789".parse().unwrap(),
        "order-1".parse().unwrap(),
        "user-1".parse().unwrap(),
        PgToken::parse("ad950e97794abfef4ce0").unwrap(),
    )
}

fn client(base: &str, credentials: Credentials) -> Client {
    Client::builder(credentials).base_url(base).build().unwrap()
}

#[tokio::test]
async fn open_generation_sends_json_with_secret_key() {
    let cap = Capture::start(vec![ok(READY_OK)]).await;
    let c = client(&cap.base, Credentials::secret_key(OPEN_KEY));
    let r = c.ready(&ready_request()).await.unwrap();
    assert_eq!(r.tid.as_str(), "T1234567890123456789");
    let req = &cap.requests()[0];
    assert_eq!(req.method, Method::POST);
    assert_eq!(req.path, "/online/v1/payment/ready");
    assert_eq!(
        req.headers["authorization"],
        format!("SECRET_KEY {OPEN_KEY}").as_str()
    );
    assert_eq!(req.headers["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_str(&req.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "cid":"TC0ONETIME","partner_order_id":"order-1","partner_user_id":"user-1",
            "item_name":"초코파이 1+1","quantity":1,"total_amount":2200,"tax_free_amount":0,
            "vat_amount":200,"approval_url":"https://shop.example/approve?o=1",
            "cancel_url":"https://shop.example/cancel","fail_url":"https://shop.example/fail",
            "available_cards":["KB","BC"],"install_month":3,"use_share_installment":"N",
            "custom_json":{"return_custom_url":"app://done"}
        })
    );
}

#[tokio::test]
async fn dev_secret_key_prefix() {
    let cap = Capture::start(vec![ok(ORDER_OK)]).await;
    let c = client(&cap.base, Credentials::dev_secret_key(OPEN_KEY));
    c.order(&OrderRequest::new(
        "TC0ONETIME".parse().unwrap(),
        "T1234567890123456789".parse().unwrap(),
    ))
    .await
    .unwrap();
    let req = &cap.requests()[0];
    assert_eq!(req.path, "/online/v1/payment/order");
    assert_eq!(
        req.headers["authorization"],
        format!("DEV_SECRET_KEY {OPEN_KEY}").as_str()
    );
    assert_eq!(
        req.body,
        r#"{"cid":"TC0ONETIME","tid":"T1234567890123456789"}"#
    );
}

#[tokio::test]
async fn legacy_generation_sends_a_form_with_kakaoak() {
    let cap = Capture::start(vec![ok(READY_OK)]).await;
    let c = client(&cap.base, Credentials::admin_key(ADMIN_KEY));
    c.ready(&ready_request()).await.unwrap();
    let req = &cap.requests()[0];
    assert_eq!(req.path, "/v1/payment/ready");
    assert_eq!(
        req.headers["authorization"],
        format!("KakaoAK {ADMIN_KEY}").as_str()
    );
    assert_eq!(
        req.headers["content-type"],
        "application/x-www-form-urlencoded;charset=utf-8"
    );
    // Fields in name order; arrays and maps as JSON strings; Hangul, '+' and '?' percent-encoded.
    assert_eq!(
        req.body,
        "approval_url=https%3A%2F%2Fshop.example%2Fapprove%3Fo%3D1\
         &available_cards=%5B%22KB%22%2C%22BC%22%5D\
         &cancel_url=https%3A%2F%2Fshop.example%2Fcancel&cid=TC0ONETIME\
         &custom_json=%7B%22return_custom_url%22%3A%22app%3A%2F%2Fdone%22%7D\
         &fail_url=https%3A%2F%2Fshop.example%2Ffail&install_month=3\
         &item_name=%EC%B4%88%EC%BD%94%ED%8C%8C%EC%9D%B4+1%2B1\
         &partner_order_id=order-1&partner_user_id=user-1&quantity=1&tax_free_amount=0\
         &total_amount=2200&use_share_installment=N&vat_amount=200"
    );
    let decoded: Vec<(String, String)> = serde_urlencoded::from_str(&req.body).unwrap();
    assert!(decoded.contains(&("item_name".into(), "초코파이 1+1".into())));
}

#[tokio::test]
async fn approve_and_cancel_wire_forms() {
    let cap = Capture::start(vec![ok(APPROVE_OK), ok(r#"{}"#)]).await;
    let legacy = client(&cap.base, Credentials::admin_key(ADMIN_KEY));
    legacy
        .approve(&approve_request().payload(Payload::parse("주문 1").unwrap()))
        .await
        .unwrap();
    let req = &cap.requests()[0];
    assert_eq!(req.path, "/v1/payment/approve");
    assert_eq!(
        req.body,
        "cid=TC0ONETIME&partner_order_id=order-1&partner_user_id=user-1\
         &payload=%EC%A3%BC%EB%AC%B8+1&pg_token=ad950e97794abfef4ce0&tid=T1234567890123456789"
    );
    let open = client(&cap.base, Credentials::secret_key(OPEN_KEY));
    let cancel = CancelRequest::new(
        "TC0ONETIME".parse().unwrap(),
        "T1234567890123456789".parse().unwrap(),
        Amount::new(1100).unwrap(),
        Amount::ZERO,
    )
    .expect_available(Amount::new(2200).unwrap());
    // The answer `{}` lacks required fields: a decode error that may have applied.
    let err = open.cancel(&cancel).await.unwrap_err();
    assert!(matches!(err, Error::Decode { status: 200, .. }), "{err}");
    assert!(err.may_have_applied());
    let req = &cap.requests()[1];
    assert_eq!(req.path, "/online/v1/payment/cancel");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&req.body).unwrap(),
        serde_json::json!({"cid":"TC0ONETIME","tid":"T1234567890123456789","cancel_amount":1100,
            "cancel_tax_free_amount":0,"cancel_available_amount":2200})
    );
}

#[tokio::test]
async fn subscription_paths() {
    let cap = Capture::start(vec![ok(
        r#"{"cid":"TCSUBSCRIP","sid":"S1234567890987654321","status":"ACTIVE","available":true}"#,
    )])
    .await;
    let c = client(&cap.base, Credentials::admin_key(ADMIN_KEY));
    let req = SidRequest::new(
        "TCSUBSCRIP".parse().unwrap(),
        "S1234567890987654321".parse().unwrap(),
    );
    let s = c.subscription_status(&req).await.unwrap();
    assert_eq!(s.status, SubscriptionStatus::Active);
    assert_eq!(
        cap.requests()[0].path,
        "/v1/payment/manage/subscription/status"
    );
    assert_eq!(
        cap.requests()[0].body,
        "cid=TCSUBSCRIP&sid=S1234567890987654321"
    );
}

#[tokio::test]
async fn both_error_shapes_become_api_errors() {
    let cap = Capture::start(vec![
        Reply { status: 400, body: r#"{"error_code":-780,"error_message":"approval failure!","extras":{"method_result_code":"USER_LOCKED","method_result_message":"진행중인 거래가 있습니다."}}"#, delay: Duration::ZERO },
        Reply { status: 400, body: r#"{"code":-708,"msg":"invalid pg_token","extras":{}}"#, delay: Duration::ZERO },
    ])
    .await;
    let c = client(&cap.base, Credentials::secret_key(OPEN_KEY));
    let e = c.approve(&approve_request()).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::ApprovalFailed));
    assert_eq!(
        e.api().unwrap().method_result_code.as_deref(),
        Some("USER_LOCKED")
    );
    assert!(e.may_have_applied());
    assert!(!e.is_retryable());
    let e = c.approve(&approve_request()).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InvalidPgToken));
    assert!(!e.may_have_applied());
    assert_eq!(e.api().unwrap().status, 400);
}

#[tokio::test]
async fn approve_timeout_is_unclear_and_not_retried() {
    let cap = Capture::start(vec![Reply {
        status: 200,
        body: APPROVE_OK,
        delay: Duration::from_secs(3),
    }])
    .await;
    let c = Client::builder(Credentials::secret_key(OPEN_KEY))
        .base_url(&cap.base)
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let e = c.approve(&approve_request()).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Transport {
                kind: TransportKind::Timeout,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.may_have_applied());
    assert!(!e.is_retryable());
    assert_eq!(cap.requests().len(), 1, "approve must never be retried");
}

#[tokio::test]
async fn lookups_retry_with_backoff_and_approve_does_not() {
    let fail = Reply {
        status: 500,
        body: r#"{"error_code":-500,"error_message":"internal"}"#,
        delay: Duration::ZERO,
    };
    let cap = Capture::start(vec![fail.clone(), fail.clone(), ok(ORDER_OK)]).await;
    let c = Client::builder(Credentials::secret_key(OPEN_KEY))
        .base_url(&cap.base)
        .retry_policy(RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
        })
        .build()
        .unwrap();
    let o = c
        .order(&OrderRequest::new(
            "TC0ONETIME".parse().unwrap(),
            "T1234567890123456789".parse().unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(o.status, OrderStatus::SuccessPayment);
    assert_eq!(cap.requests().len(), 3);

    let cap = Capture::start(vec![fail]).await;
    let c = Client::builder(Credentials::secret_key(OPEN_KEY))
        .base_url(&cap.base)
        .build()
        .unwrap();
    let e = c.approve(&approve_request()).await.unwrap_err();
    assert!(e.may_have_applied());
    assert_eq!(cap.requests().len(), 1);
}

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = Client::builder(Credentials::secret_key(OPEN_KEY))
        .base_url(format!("http://{addr}"))
        .retry_policy(RetryPolicy::NONE)
        .build()
        .unwrap();
    let e = c.approve(&approve_request()).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Transport {
                kind: TransportKind::Connect,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.may_have_applied());
    assert!(e.is_retryable());
}

#[tokio::test]
async fn invalid_requests_never_leave_the_process() {
    let cap = Capture::start(vec![ok(READY_OK)]).await;
    let c = client(&cap.base, Credentials::secret_key(OPEN_KEY));
    let mut bad = ready_request();
    bad.tax_free_amount = Amount::new(3000).unwrap();
    let e = c.ready(&bad).await.unwrap_err();
    assert!(
        matches!(&e, Error::Validation(v) if v.field() == "tax_free_amount"),
        "{e}"
    );
    let mut bad = ready_request();
    bad.vat_amount = Some(Amount::new(2201).unwrap());
    assert!(matches!(c.ready(&bad).await, Err(Error::Validation(_))));
    let zero = CancelRequest::new(
        "TC0ONETIME".parse().unwrap(),
        "T1".parse().unwrap(),
        Amount::ZERO,
        Amount::ZERO,
    );
    assert!(matches!(c.cancel(&zero).await, Err(Error::Validation(_))));
    let over_guard = CancelRequest::new(
        "TC0ONETIME".parse().unwrap(),
        "T1".parse().unwrap(),
        Amount::new(10).unwrap(),
        Amount::ZERO,
    )
    .expect_available(Amount::new(5).unwrap());
    assert!(matches!(
        c.cancel(&over_guard).await,
        Err(Error::Validation(_))
    ));
    assert!(cap.requests().is_empty(), "nothing may be sent");
}

#[test]
fn builder_validation_names_the_field() {
    let base = || {
        ReadyRequest::builder()
            .cid("TC0ONETIME")
            .partner_order_id("o")
            .partner_user_id("u")
            .item_name("i")
            .quantity(1)
            .total_amount(1000)
            .approval_url("http://a.example/")
            .cancel_url("http://a.example/")
            .fail_url("http://a.example/")
    };
    assert!(base().build().is_ok());
    let field = |b: ReadyRequestBuilder| b.build().unwrap_err().field();
    assert_eq!(field(ReadyRequest::builder()), "cid");
    assert_eq!(field(base().cid("SHORT")), "cid");
    assert_eq!(field(base().install_month(13)), "install_month");
    assert_eq!(field(base().install_month(-1)), "install_month");
    assert_eq!(field(base().total_amount(-1)), "total_amount");
    assert_eq!(field(base().tax_free_amount(1001)), "tax_free_amount");
    assert_eq!(field(base().vat_amount(1001)), "vat_amount");
    assert_eq!(field(base().quantity(0)), "quantity");
    assert_eq!(
        field(base().approval_url(format!("http://a.example/{}", "x".repeat(240)))),
        "approval_url"
    );
    assert_eq!(field(base().fail_url("not a url")), "fail_url");
    assert_eq!(
        field(base().partner_order_id("x".repeat(101))),
        "partner_order_id"
    );
    assert_eq!(field(base().item_name("")), "item_name");
    assert_eq!(
        field(base().cid_secret("UPPERCASE0000000000000000")),
        "cid_secret"
    );
    assert_eq!(
        field(base().payment_method_type(PaymentMethodType::Unknown("POINT".into()))),
        "payment_method_type"
    );
    assert_eq!(field(base().green_deposit(1001)), "green_deposit");
    let r = base().total_amount(0).build().unwrap();
    assert_eq!(r.effective_vat(), Some(Amount::ZERO));
    assert!(Payload::parse("x".repeat(200)).is_ok());
    assert!(Payload::parse("x".repeat(201)).is_err());
}

/// Keys and pg_tokens never show in Debug output, error texts or log lines.
#[tokio::test]
async fn secrets_stay_out_of_logs_and_errors() {
    use std::io::Write;
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let cap = Capture::start(vec![
        ok(APPROVE_OK),
        Reply {
            status: 401,
            body: r#"{"error_code":-401,"error_message":"invalid secret key"}"#,
            delay: Duration::ZERO,
        },
        Reply {
            status: 200,
            body: "not json",
            delay: Duration::ZERO,
        },
    ])
    .await;
    let c = client(&cap.base, Credentials::secret_key(OPEN_KEY));
    c.approve(&approve_request()).await.unwrap();
    let e1 = c.approve(&approve_request()).await.unwrap_err();
    let e2 = c.approve(&approve_request()).await.unwrap_err();
    let text = format!(
        "{}\n{e1}\n{e1:?}\n{e2}\n{e2:?}\n{c:?}\n{:?}",
        String::from_utf8_lossy(&buf.0.lock().unwrap()),
        approve_request()
    );
    assert!(text.contains("kakaopay"), "spans should be logged: {text}");
    assert!(
        text.contains("T1234567890123456789"),
        "tid should be logged"
    );
    assert!(!text.contains(OPEN_KEY), "key leaked: {text}");
    assert!(
        !text.contains("ad950e97794abfef4ce0"),
        "pg_token leaked: {text}"
    );
}
