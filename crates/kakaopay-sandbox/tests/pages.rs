//! The buyer's pages: the PC page with its QR code and countdown, the mobile page, and the forms
//! that lead to approval_url (with pg_token), cancel_url and fail_url.

mod common;
use common::*;
use kakaopay::*;

async fn get(env: &Env, url: &str) -> (u16, String) {
    let resp = env.http.get(url).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn post_form(env: &Env, url: &str, form: &[(&str, &str)]) -> (u16, Option<String>, String) {
    let resp = env.http.post(url).form(form).send().await.unwrap();
    let location = resp
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    (resp.status().as_u16(), location, resp.text().await.unwrap())
}

fn page_base(url: &str) -> String {
    url.rsplit_once('/').unwrap().0.to_owned()
}

#[tokio::test]
async fn pc_page_pay_form_leads_to_approval_url_with_pg_token() {
    let env = env().await;
    let client = env.client(Generation::Open);
    let ready = client
        .ready(
            &ready_req("TC0ONETIME", "order-1", "user-1", 12_000)
                .item_name("<b>수제 쿠키</b>")
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let pc = ready.next_redirect_pc_url.clone().unwrap();
    assert!(pc.ends_with("/info"));
    let (status, html) = get(&env, &pc).await;
    assert_eq!(status, 200);
    assert!(html.contains("<svg"), "a QR code is drawn inline");
    assert!(html.contains("QR코드"));
    assert!(html.contains("남은 시간"));
    assert!(
        html.contains("data-seconds=\"900\"") || html.contains("data-seconds=\"899\""),
        "15-minute countdown"
    );
    assert!(html.contains("12,000원"));
    assert!(
        html.contains("&lt;b&gt;수제 쿠키&lt;/b&gt;"),
        "item names are escaped"
    );
    assert!(html.contains("결제하기") && html.contains("결제 취소"));
    assert!(
        !html.contains("http://cdn") && !html.contains("https://"),
        "no external assets"
    );
    assert_eq!(
        order(&client, &ready.tid).await.status,
        OrderStatus::OpenPayment
    );

    let (status, location, _) = post_form(
        &env,
        &format!("{}/pay", page_base(&pc)),
        &[("payment_method_type", "MONEY")],
    )
    .await;
    assert_eq!(status, 303);
    let location = location.unwrap();
    let prefix = "https://shop.example/pay/approve?order=1&lang=ko&pg_token=";
    assert!(location.starts_with(prefix), "{location}");
    let token = PgToken::parse(&location[prefix.len()..]).unwrap();
    let approved = client
        .approve(&approve_req(&ready.tid, token))
        .await
        .unwrap();
    assert_eq!(approved.payment_method_type, Some(PaymentMethodType::Money));
    // The page of a finished payment says so.
    let (_, html) = get(&env, &pc).await;
    assert!(html.contains("이미 처리된 결제"));
}

#[tokio::test]
async fn mobile_page_and_qr_flow() {
    let env = env().await;
    let client = env.client(Generation::Legacy);
    let ready = client
        .ready(
            &ready_req("TC0ONETIME", "order-1", "user-1", 5000)
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let mobile = ready.next_redirect_mobile_url.clone().unwrap();
    let (status, html) = get(&env, &mobile).await;
    assert_eq!(status, 200);
    assert!(html.contains("name=\"viewport\""));
    assert!(html.contains("신용/체크카드") && html.contains("카카오페이머니"));
    // Paid on the phone after scanning the PC page's QR code: the phone shows a confirmation, the
    // PC page learns the redirect from its status poll.
    let (status, location, html) = post_form(
        &env,
        &format!("{}/pay", page_base(&mobile)),
        &[("payment_method_type", "CARD"), ("qr", "1")],
    )
    .await;
    assert_eq!((status, location), (200, None));
    assert!(html.contains("PC 화면"));
    let status: serde_json::Value = env
        .http
        .get(format!("{}/status", page_base(&mobile)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["status"], "AUTH_PASSWORD");
    assert!(
        status["redirect_url"]
            .as_str()
            .unwrap()
            .contains("pg_token=")
    );
    let (_, app_html) = get(&env, ready.next_redirect_app_url.as_deref().unwrap()).await;
    assert!(app_html.contains("인증 완료"));
}

#[tokio::test]
async fn quit_and_fail_forms() {
    let env = env().await;
    let client = env.client(Generation::Open);
    let a = client
        .ready(&ready_req("TC0ONETIME", "o", "u", 1000).build().unwrap())
        .await
        .unwrap();
    let (status, location, _) = post_form(
        &env,
        &format!(
            "{}/quit",
            page_base(a.next_redirect_pc_url.as_deref().unwrap())
        ),
        &[],
    )
    .await;
    assert_eq!(
        (status, location.as_deref()),
        (303, Some("https://shop.example/pay/cancel?order=1"))
    );
    assert_eq!(
        order(&client, &a.tid).await.status,
        OrderStatus::QuitPayment
    );
    let b = client
        .ready(&ready_req("TC0ONETIME", "o", "u", 1000).build().unwrap())
        .await
        .unwrap();
    let (status, location, _) = post_form(
        &env,
        &format!(
            "{}/fail",
            page_base(b.next_redirect_mobile_url.as_deref().unwrap())
        ),
        &[],
    )
    .await;
    assert_eq!(
        (status, location.as_deref()),
        (303, Some("https://shop.example/pay/fail?order=1"))
    );
    assert_eq!(
        order(&client, &b.tid).await.status,
        OrderStatus::FailAuthPassword
    );
}

#[tokio::test]
async fn expired_page_says_so_and_leads_to_fail_url() {
    let env = env().await;
    let client = env.client(Generation::Open);
    let ready = client
        .ready(&ready_req("TC0ONETIME", "o", "u", 1000).build().unwrap())
        .await
        .unwrap();
    env.helper(
        "/test/v1/clock/advance",
        Some(serde_json::json!({"seconds": 901})),
    )
    .await;
    let pc = ready.next_redirect_pc_url.unwrap();
    let (status, html) = get(&env, &pc).await;
    assert_eq!(status, 200);
    assert!(html.contains("만료"));
    assert!(html.contains("href=\"https://shop.example/pay/fail?order=1\""));
    // Paying an expired payment shows the same page; no redirect to approval_url.
    let (status, location, html) = post_form(&env, &format!("{}/pay", page_base(&pc)), &[]).await;
    assert_eq!((status, location), (200, None));
    assert!(html.contains("만료"));
    let (_, body) = get(&env, &format!("{}/status", page_base(&pc))).await;
    assert!(body.contains("\"expired\":true"));
}

#[tokio::test]
async fn unknown_page_is_404() {
    let env = env().await;
    let (status, html) = get(&env, &format!("{}/v1/{}/info", env.base(), "0".repeat(64))).await;
    assert_eq!(status, 404);
    assert!(html.contains("찾을 수 없습니다"));
}
