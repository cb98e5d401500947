//! The shop's subscription product (a monthly coffee subscription), through the merchant API like
//! any merchant backend: its own checkout (`POST /subscribe`), the return from KakaoPay, and a
//! "my subscription" page that shows the next charge and every charge, and cancels. The page's
//! URL carries the subscription's unguessable id, which stands for the buyer's login in this demo.

use super::{LangQuery, ShopState, shop_page};
use crate::web::i18n::{Lang, cookie};
use crate::web::layout::won;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;

/// The plan: its price is the shop's, never the browser's.
pub(crate) const PLAN_NAME: &str = "월간 원두 커피 구독";
const PLAN_NAME_EN: &str = "Monthly coffee subscription";
const PLAN_PRICE: i64 = 9900;

pub(super) fn routes() -> Router<ShopState> {
    Router::new()
        .route("/subscribe", post(subscribe))
        .route("/subscriptions/return", get(returned))
        .route("/subscriptions/{id}", get(mine))
        .route("/subscriptions/{id}/cancel", post(cancel))
}

/// The product's card on the home page.
pub(super) fn card(lang: Lang) -> Markup {
    html! {
        div.card style="margin-top:16px" {
            h2 { (lang.t(PLAN_NAME, PLAN_NAME_EN)) }
            p { (lang.t("매달 갓 볶은 원두 500g을 보내 드립니다. ", "Fresh beans every month. ")) strong { (won(PLAN_PRICE)) (lang.t(" / 월", " / month")) } }
            form method="post" action="/subscribe" {
                label { input type="checkbox" name="trial" value="14"; " " (lang.t("14일 무료 체험 후 결제", "14-day free trial first")) }
                " "
                button.btn.btn-kakao #subscribe type="submit" { (lang.t("카카오페이로 구독하기", "Subscribe with KakaoPay")) }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct SubscribeForm {
    #[serde(default)]
    trial: Option<String>,
}

async fn api(
    s: &ShopState,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let mut req = s
        .http
        .request(method, format!("{}{path}", s.api_base))
        .bearer_auth(s.api_key.expose_secret());
    if let Some(b) = body {
        req = req.json(&b);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            Some((status, r.json().await.unwrap_or(Value::Null)))
        }
        Err(e) => {
            tracing::warn!(error = %e, "merchant API unreachable");
            None
        }
    }
}

fn oops(lang: Lang, status: StatusCode) -> Response {
    let body = html! { div.card.narrow { h1 { (lang.t("잠시 후 다시 시도해 주세요", "Please try again shortly")) } p { a href="/" { (lang.t("상점으로", "Back to the shop")) } } } };
    (status, Html(shop_page(lang, "kpay", body).into_string())).into_response()
}

async fn subscribe(
    State(s): State<ShopState>,
    headers: HeaderMap,
    Form(f): Form<SubscribeForm>,
) -> Response {
    let lang = Lang::of(&headers, None);
    let guest = cookie(&headers, "kpay_guest")
        .filter(|g| !g.is_empty() && g.len() <= 40 && g.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap_or_else(|| format!("guest{}", crate::service::token()));
    let trial_days = if f.trial.as_deref() == Some("14") {
        14
    } else {
        0
    };
    let body = serde_json::json!({
        "partner_user_id": guest,
        "item_name": PLAN_NAME,
        "amount": PLAN_PRICE,
        "interval": "month",
        "trial_days": trial_days,
        "channel": "pc",
        "return_url": format!("{}/subscriptions/return", s.public_url),
    });
    let Some((201, sub)) = api(
        &s,
        reqwest::Method::POST,
        "/api/v1/subscriptions",
        Some(body),
    )
    .await
    else {
        return oops(lang, StatusCode::BAD_GATEWAY);
    };
    let Some(url) = sub["redirect_url"].as_str() else {
        return oops(lang, StatusCode::BAD_GATEWAY);
    };
    let mut resp = Redirect::to(url).into_response();
    if let Ok(v) = header::HeaderValue::from_str(&format!(
        "kpay_guest={guest}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax"
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Debug, Default, Deserialize)]
struct ReturnQuery {
    #[serde(default)]
    payment_id: Option<String>,
}

/// Back from KakaoPay (via the server's callback, which appends the registration payment's id):
/// to the subscription's page.
async fn returned(
    State(s): State<ShopState>,
    headers: HeaderMap,
    Query(q): Query<ReturnQuery>,
) -> Response {
    let lang = Lang::of(&headers, None);
    let Some(pid) = q
        .payment_id
        .filter(|p| p.starts_with("pay_") && p.len() < 40)
    else {
        return oops(lang, StatusCode::BAD_REQUEST);
    };
    match api(
        &s,
        reqwest::Method::GET,
        &format!("/api/v1/payments/{pid}"),
        None,
    )
    .await
    {
        Some((200, p)) => match p["subscription_id"].as_str() {
            Some(sub) => Redirect::to(&format!("/subscriptions/{sub}")).into_response(),
            None => oops(lang, StatusCode::NOT_FOUND),
        },
        _ => oops(lang, StatusCode::NOT_FOUND),
    }
}

fn status_text(lang: Lang, s: &str) -> &'static str {
    match s {
        "incomplete" => lang.t("등록 대기 중", "Waiting for registration"),
        "incomplete_expired" => lang.t("등록이 완료되지 않았습니다", "Registration not completed"),
        "active" => lang.t("구독 중", "Active"),
        "past_due" => lang.t("결제 재시도 중", "Payment being retried"),
        "unpaid" => lang.t("미납", "Unpaid"),
        "canceled" => lang.t("해지됨", "Canceled"),
        _ => "—",
    }
}

fn day(t: &Value) -> String {
    t.as_str()
        .and_then(|t| t.get(..10))
        .unwrap_or("—")
        .to_owned()
}

async fn mine(
    State(s): State<ShopState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    let lang = Lang::of(&headers, q.lang.as_deref());
    if !(id.starts_with("sub_") && id.len() < 40) {
        return oops(lang, StatusCode::NOT_FOUND);
    }
    let Some((200, sub)) = api(
        &s,
        reqwest::Method::GET,
        &format!("/api/v1/subscriptions/{id}"),
        None,
    )
    .await
    else {
        return oops(lang, StatusCode::NOT_FOUND);
    };
    let charges = api(
        &s,
        reqwest::Method::GET,
        &format!("/api/v1/subscriptions/{id}/charges"),
        None,
    )
    .await
    .and_then(|(st, c)| (st == 200).then_some(c))
    .and_then(|c| c["data"].as_array().cloned())
    .unwrap_or_default();
    let status = sub["status"].as_str().unwrap_or_default().to_owned();
    let live = matches!(status.as_str(), "active" | "past_due" | "unpaid");
    let body = html! {
        div.card.narrow {
            h1 { (lang.t("나의 구독", "My subscription")) }
            p.big #sub-status { (status_text(lang, &status)) }
            table {
                tbody {
                    tr { th scope="row" { (lang.t("상품", "Plan")) } td { (lang.t(PLAN_NAME, PLAN_NAME_EN)) } }
                    tr { th scope="row" { (lang.t("금액", "Price")) } td { (won(sub["amount"]["total"].as_i64().unwrap_or(0))) (lang.t(" / 월", " / month")) } }
                    @if sub["trial_end"].is_string() { tr { th scope="row" { (lang.t("무료 체험 종료", "Trial ends")) } td { (day(&sub["trial_end"])) } } }
                    tr { th scope="row" { (lang.t("다음 결제일", "Next charge")) } td #next-charge { (day(&sub["next_charge_at"])) } }
                    @if sub["cancel_at_period_end"] == true { tr { th scope="row" { (lang.t("해지 예정", "Ends on")) } td { (day(&sub["current_period_end"])) } } }
                }
            }
            h2 { (lang.t("결제 내역", "Charges")) }
            ul #charges {
                @for c in charges.iter().filter(|c| c["status"] == "succeeded") {
                    li { (day(&c["attempted_at"])) " · " (won(c["amount"]["total"].as_i64().unwrap_or(0))) }
                }
                @if !charges.iter().any(|c| c["status"] == "succeeded") { li { (lang.t("아직 결제된 내역이 없습니다.", "Nothing charged yet.")) } }
            }
            @if live {
                form method="post" action={"/subscriptions/" (id) "/cancel"} {
                    label { input type="checkbox" name="now" value="1"; " " (lang.t("지금 바로 해지 (선택하지 않으면 이번 기간이 끝날 때 해지)", "Cancel right away (otherwise at the end of this period)")) }
                    p { button.btn.btn-dark #cancel type="submit" { (lang.t("구독 해지", "Cancel subscription")) } }
                }
            }
            p { a href="/" { (lang.t("상점으로", "Back to the shop")) } }
        }
    };
    Html(shop_page(lang, lang.t("나의 구독", "My subscription"), body).into_string())
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
struct CancelForm {
    #[serde(default)]
    now: Option<String>,
}

async fn cancel(
    State(s): State<ShopState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CancelForm>,
) -> Response {
    let lang = Lang::of(&headers, None);
    if !(id.starts_with("sub_") && id.len() < 40) {
        return oops(lang, StatusCode::NOT_FOUND);
    }
    let body = serde_json::json!({ "at_period_end": f.now.as_deref() != Some("1") });
    match api(
        &s,
        reqwest::Method::POST,
        &format!("/api/v1/subscriptions/{id}/cancel"),
        Some(body),
    )
    .await
    {
        Some((200 | 409, _)) => Redirect::to(&format!("/subscriptions/{id}")).into_response(),
        _ => oops(lang, StatusCode::BAD_GATEWAY),
    }
}
