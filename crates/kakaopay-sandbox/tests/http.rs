//! The sandbox's HTTP surface seen raw: auth headers, encodings, body shapes, nulls vs absent keys.

mod common;
use common::*;
use serde_json::{Value, json};

const OPEN_AUTH: &str = "SECRET_KEY DEV0123456789ABCDEF0123456789ABCDEF01234";

fn ready_json() -> Value {
    json!({"cid":"TC0ONETIME","partner_order_id":"o-1","partner_user_id":"u-1","item_name":"초코파이",
        "quantity":"1","total_amount":"2200","tax_free_amount":"0",
        "approval_url":"http://shop.example/a","cancel_url":"http://shop.example/c","fail_url":"http://shop.example/f"})
}

async fn post_json(
    env: &Env,
    path: &str,
    auth: Option<&str>,
    body: &Value,
) -> (u16, String, Value) {
    let mut req = env.http.post(format!("{}{path}", env.base())).json(body);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    (status, ct, resp.json().await.unwrap())
}

#[tokio::test]
async fn open_generation_accepts_numbers_as_strings_and_sends_explicit_nulls() {
    let env = env().await;
    let (status, ct, body) = post_json(
        &env,
        "/online/v1/payment/ready",
        Some(OPEN_AUTH),
        &ready_json(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ct, "application/json;charset=UTF-8");
    let tid = body["tid"].as_str().unwrap().to_owned();
    assert!(
        body["created_at"].as_str().unwrap().len() == 19,
        "KST without offset: {body}"
    );
    env.authorize(&tid.parse().unwrap(), "MONEY").await;
    let (_, _, order) = post_json(
        &env,
        "/online/v1/payment/order",
        Some(OPEN_AUTH),
        &json!({"cid":"TC0ONETIME","tid":tid}),
    )
    .await;
    assert_eq!(order["status"], "AUTH_PASSWORD");
    assert!(
        order["approved_at"].is_null(),
        "explicit null expected: {order}"
    );
    assert!(order.as_object().unwrap().contains_key("item_code"));
    assert_eq!(order["amount"]["total"], 2200, "amounts are JSON integers");
    assert_eq!(order["amount"]["vat"], 200);
}

#[tokio::test]
async fn legacy_generation_reads_form_and_query_and_omits_absent_keys() {
    let env = env().await;
    // Part of the parameters in the query string, the rest in the form body; '+' and Hangul decoded.
    let resp = env
        .http
        .post(format!("{}/v1/payment/ready?cid=TC0ONETIME&quantity=1", env.base()))
        .header("Authorization", "KakaoAK 0123456789abcdef0123456789abcdef")
        .header("Content-Type", "application/x-www-form-urlencoded;charset=utf-8")
        .body("partner_order_id=o-1&partner_user_id=u-1&item_name=%EC%B4%88%EC%BD%94%ED%8C%8C%EC%9D%B4+2%EA%B0%9C\
               &total_amount=2200&tax_free_amount=0&approval_url=http%3A%2F%2Fshop.example%2Fa\
               &cancel_url=http%3A%2F%2Fshop.example%2Fc&fail_url=http%3A%2F%2Fshop.example%2Ff\
               &available_cards=%5B%22KB%22%5D")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["tms_result"], false);
    let tid = body["tid"].as_str().unwrap().to_owned();
    let resp = env
        .http
        .get(format!(
            "{}/v1/payment/order?cid=TC0ONETIME&tid={tid}",
            env.base()
        ))
        .header("Authorization", "KakaoAK 0123456789abcdef0123456789abcdef")
        .send()
        .await
        .unwrap();
    let order: Value = resp.json().await.unwrap();
    assert_eq!(order["item_name"], "초코파이 2개");
    assert!(
        !order.as_object().unwrap().contains_key("approved_at"),
        "legacy omits absent keys: {order}"
    );
    assert!(!order.as_object().unwrap().contains_key("item_code"));
}

#[tokio::test]
async fn json_sent_to_the_legacy_api_is_a_parameter_error() {
    let env = env().await;
    let (status, _, body) =
        post_json(&env, "/v1/payment/ready", Some("KakaoAK k"), &ready_json()).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], -2);
    assert!(body["msg"].as_str().unwrap().contains("cid"), "{body}");
}

#[tokio::test]
async fn parameter_errors_name_the_field() {
    let env = env().await;
    let mut bad = ready_json();
    bad["install_month"] = json!(13);
    let (status, _, body) =
        post_json(&env, "/online/v1/payment/ready", Some(OPEN_AUTH), &bad).await;
    assert_eq!(status, 400);
    assert_eq!(body["error_code"], -2);
    assert!(
        body["error_message"]
            .as_str()
            .unwrap()
            .contains("install_month"),
        "{body}"
    );
    let mut bad = ready_json();
    bad["tax_free_amount"] = json!(3000);
    let (_, _, body) = post_json(&env, "/online/v1/payment/ready", Some(OPEN_AUTH), &bad).await;
    assert!(
        body["error_message"]
            .as_str()
            .unwrap()
            .contains("tax_free_amount"),
        "{body}"
    );
    let mut bad = ready_json();
    bad.as_object_mut().unwrap().remove("partner_user_id");
    let (_, _, body) = post_json(&env, "/online/v1/payment/ready", Some(OPEN_AUTH), &bad).await;
    assert!(
        body["error_message"]
            .as_str()
            .unwrap()
            .contains("partner_user_id"),
        "{body}"
    );
    // Not JSON at all.
    let resp = env
        .http
        .post(format!("{}/online/v1/payment/ready", env.base()))
        .header("Authorization", OPEN_AUTH)
        .header("Content-Type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn authentication_errors_in_both_shapes() {
    let env = env().await;
    let (status, _, body) = post_json(&env, "/online/v1/payment/ready", None, &ready_json()).await;
    assert_eq!((status, body["error_code"].as_i64()), (400, Some(-400)));
    let (status, _, body) = post_json(
        &env,
        "/online/v1/payment/ready",
        Some("KakaoAK wrong-scheme"),
        &ready_json(),
    )
    .await;
    assert_eq!((status, body["error_code"].as_i64()), (401, Some(-401)));
    let (status, _, body) = post_json(
        &env,
        "/online/v1/payment/ready",
        Some("SECRET_KEY "),
        &ready_json(),
    )
    .await;
    assert_eq!((status, body["error_code"].as_i64()), (401, Some(-401)));
    let (status, _, body) = post_json(&env, "/v1/payment/ready", None, &ready_json()).await;
    assert_eq!((status, body["code"].as_i64()), (401, Some(-401)));
    assert!(body.get("msg").is_some());
    let (status, _, body) = post_json(
        &env,
        "/v1/payment/ready",
        Some("SECRET_KEY x"),
        &ready_json(),
    )
    .await;
    assert_eq!((status, body["code"].as_i64()), (401, Some(-401)));
}

#[tokio::test]
async fn configured_keys_are_enforced() {
    let env = env_with(kakaopay_sandbox::SandboxConfig {
        secret_keys: vec!["the-right-key".into()],
        admin_keys: vec!["admin-right".into()],
        ..Default::default()
    })
    .await;
    let (status, _, _) = post_json(
        &env,
        "/online/v1/payment/ready",
        Some("SECRET_KEY other"),
        &ready_json(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _, _) = post_json(
        &env,
        "/online/v1/payment/ready",
        Some("DEV_SECRET_KEY the-right-key"),
        &ready_json(),
    )
    .await;
    assert_eq!(status, 200);
    let client = kakaopay::Client::builder(kakaopay::Credentials::admin_key("admin-wrong"))
        .base_url(env.base())
        .build()
        .unwrap();
    let e = client
        .ready(&ready_req("TC0ONETIME", "o", "u", 1000).build().unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(kakaopay::ErrorCode::InvalidKey));
    assert_eq!(e.api().unwrap().status, 401);
}
