//! The demo shop at `/`: the reference integration. Its server side computes amounts from its own
//! catalog, keeps its own orders, and creates payments through the merchant API over HTTP exactly as
//! a merchant's backend would (Bearer key, Idempotency-Key); the browser only ever gets redirect URLs.

use super::i18n::{Lang, cookie};
use super::layout::{page, won};
mod api;
mod hooks;
mod orders;
mod subscribe;

use crate::domain::PaymentStatus;
use api::ApiPayment;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, PreEscaped, html};
pub(crate) use orders::{ShopOrder, ShopOrders};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// A product of the catalog.
#[derive(Debug)]
pub(crate) struct Product {
    /// Stock keeping unit.
    pub(crate) sku: &'static str,
    /// Korean name.
    pub(crate) name: &'static str,
    /// English name.
    pub(crate) name_en: &'static str,
    /// Price in won.
    pub(crate) price: i64,
    /// Picture, inline SVG.
    pub(crate) svg: &'static str,
}

/// The catalog: the only source of prices.
pub(crate) const CATALOG: [Product; 4] = [
    Product {
        sku: "chocopie",
        name: "초코파이 12개입",
        name_en: "Choco Pie (12)",
        price: 4800,
        svg: r##"<svg viewBox="0 0 120 90" role="img" aria-hidden="true"><rect width="120" height="90" rx="10" fill="#f3e3c3"/><ellipse cx="60" cy="58" rx="40" ry="14" fill="#5a3218"/><rect x="20" y="36" width="80" height="22" fill="#6b3c1f"/><ellipse cx="60" cy="36" rx="40" ry="14" fill="#7b4525"/><rect x="20" y="44" width="80" height="5" fill="#f7efe3"/></svg>"##,
    },
    Product {
        sku: "tangerine",
        name: "제주 감귤 3kg",
        name_en: "Jeju tangerines 3 kg",
        price: 15900,
        svg: r##"<svg viewBox="0 0 120 90" role="img" aria-hidden="true"><rect width="120" height="90" rx="10" fill="#e6f3e0"/><circle cx="45" cy="52" r="24" fill="#f28c18"/><circle cx="78" cy="55" r="20" fill="#f5a030"/><path d="M45 28c6-10 16-10 20-6-8 2-14 6-20 6z" fill="#3c8d2f"/><circle cx="40" cy="46" r="3" fill="#fbc06a"/></svg>"##,
    },
    Product {
        sku: "coffee",
        name: "원두 커피 500g",
        name_en: "Coffee beans 500 g",
        price: 18000,
        svg: r##"<svg viewBox="0 0 120 90" role="img" aria-hidden="true"><rect width="120" height="90" rx="10" fill="#efe7dd"/><path d="M38 18h44l6 60H32z" fill="#3b2a20"/><rect x="44" y="38" width="32" height="20" rx="3" fill="#d9b38c"/><ellipse cx="56" cy="48" rx="5" ry="7" fill="#5b3a24"/><ellipse cx="66" cy="48" rx="5" ry="7" fill="#5b3a24"/></svg>"##,
    },
    Product {
        sku: "mug",
        name: "도자기 머그컵",
        name_en: "Ceramic mug",
        price: 9000,
        svg: r##"<svg viewBox="0 0 120 90" role="img" aria-hidden="true"><rect width="120" height="90" rx="10" fill="#e3ecf7"/><rect x="36" y="26" width="40" height="46" rx="6" fill="#fefefe" stroke="#2f5d9e" stroke-width="3"/><path d="M76 36h8a10 10 0 0 1 0 20h-8" fill="none" stroke="#2f5d9e" stroke-width="5"/><rect x="40" y="40" width="32" height="6" fill="#fee500"/></svg>"##,
    },
];

/// One line of an order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Line {
    /// SKU.
    pub(crate) sku: String,
    /// Name at the time of the order.
    pub(crate) name: String,
    /// Unit price.
    pub(crate) price: i64,
    /// How many.
    pub(crate) quantity: i64,
}

/// What the shop needs.
#[derive(Clone)]
pub(crate) struct ShopState {
    /// Its own orders.
    pub(crate) orders: ShopOrders,
    /// Calls the merchant API.
    pub(crate) http: reqwest::Client,
    /// The merchant API's base (this server).
    pub(crate) api_base: String,
    /// The merchant API key.
    pub(crate) api_key: Arc<SecretString>,
    /// Base URL browsers reach.
    pub(crate) public_url: String,
    /// What its webhook receiver verifies with.
    pub(crate) hook: Arc<hooks::ShopHook>,
}

impl std::fmt::Debug for ShopState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopState")
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

/// The shop's routes.
pub(crate) fn routes(state: ShopState) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/checkout", post(checkout))
        .route("/orders/{id}", get(order))
        .route(hooks::PATH, post(hooks::receive))
        .merge(subscribe::routes())
        .with_state(state)
}

#[derive(Debug, Default, Deserialize)]
struct LangQuery {
    #[serde(default)]
    lang: Option<String>,
}

fn shop_page(lang: Lang, title: &str, body: Markup) -> Markup {
    let brand = html! { a href="/" { "kpay " (lang.t("상점", "shop")) } };
    let nav = html! {
        a href="?lang=ko" lang="ko" { "한국어" }
        a href="?lang=en" lang="en" { "English" }
        a href="/admin" { (lang.t("관리자", "Admin")) }
    };
    page(lang.code(), title, brand, nav, body)
}

const SUBTOTAL_JS: &str = r#"(function(){var f=document.getElementById('cart');function upd(){var t=0,n=0;f.querySelectorAll('input[type=number]').forEach(function(i){var q=parseInt(i.value,10)||0;t+=q*parseInt(i.dataset.price,10);n+=q;});document.getElementById('subtotal').textContent=t.toLocaleString('ko-KR')+'원';document.getElementById('count').textContent=n;document.getElementById('pay').disabled=n===0;}f.addEventListener('input',upd);upd();document.getElementById('viewport').value=(window.matchMedia('(max-width: 768px)').matches?'mobile':'desktop');})();"#;

fn home_markup(lang: Lang, error: Option<&str>, quantities: &HashMap<String, String>) -> Markup {
    let body = html! {
        h1 { (lang.t("오늘의 상품", "Today's products")) }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form #cart method="post" action="/checkout" {
            input type="hidden" name="viewport" #viewport value="";
            div.grid style="display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:16px" {
                @for p in &CATALOG {
                    div.card {
                        (PreEscaped(p.svg))
                        h2 { (lang.t(p.name, p.name_en)) }
                        p.big style="font-size:20px" { (won(p.price)) }
                        label for={"qty_" (p.sku)} { (lang.t("수량", "Quantity")) }
                        input type="number" id={"qty_" (p.sku)} name={"qty_" (p.sku)} min="0" max="99" inputmode="numeric"
                            value=(quantities.get(p.sku).map(String::as_str).unwrap_or("0")) data-price=(p.price);
                    }
                }
            }
            div.card style="margin-top:16px" {
                h2 { (lang.t("장바구니", "Cart")) }
                p { (lang.t("상품 수량", "Items")) ": " span #count { "0" } " · " (lang.t("합계", "Total")) ": " strong #subtotal { "0원" } }
                p.muted { (lang.t("결제 금액은 주문 시 서버에서 다시 계산됩니다.", "The amount is computed again by the server when you order.")) }
                button.btn.btn-kakao #pay type="submit" { (lang.t("카카오페이로 결제", "Pay with KakaoPay")) }
            }
        }
        (subscribe::card(lang))
        script { (PreEscaped(SUBTOTAL_JS)) }
    };
    shop_page(lang, lang.t("kpay 상점", "kpay shop"), body)
}

async fn home(headers: HeaderMap, Query(q): Query<LangQuery>) -> Response {
    let lang = Lang::of(&headers, q.lang.as_deref());
    Html(home_markup(lang, None, &HashMap::new()).into_string()).into_response()
}

fn is_mobile(headers: &HeaderMap, viewport: Option<&str>) -> bool {
    if viewport == Some("mobile") {
        return true;
    }
    if viewport == Some("desktop") {
        return false;
    }
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    ["Mobi", "Android", "iPhone", "iPad"]
        .iter()
        .any(|m| ua.contains(m))
}

/// The order's lines from the form: quantities 0–99 of catalog products.
fn lines(form: &HashMap<String, String>, lang: Lang) -> Result<Vec<Line>, &'static str> {
    let mut out = Vec::new();
    for p in &CATALOG {
        let raw = form
            .get(&format!("qty_{}", p.sku))
            .map(|s| s.trim())
            .unwrap_or("0");
        let q: i64 = if raw.is_empty() {
            0
        } else {
            raw.parse().map_err(|_| {
                lang.t(
                    "수량은 0에서 99 사이의 숫자여야 합니다.",
                    "Quantities must be numbers from 0 to 99.",
                )
            })?
        };
        if !(0..=99).contains(&q) {
            return Err(lang.t(
                "수량은 0에서 99 사이의 숫자여야 합니다.",
                "Quantities must be numbers from 0 to 99.",
            ));
        }
        if q > 0 {
            out.push(Line {
                sku: p.sku.into(),
                name: p.name.into(),
                price: p.price,
                quantity: q,
            });
        }
    }
    if out.is_empty() {
        return Err(lang.t(
            "상품을 하나 이상 담아 주세요.",
            "Choose at least one product.",
        ));
    }
    Ok(out)
}

async fn checkout(
    State(s): State<ShopState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let lang = Lang::of(&headers, None);
    let fail = |status: StatusCode, msg: &str| {
        (
            status,
            Html(home_markup(lang, Some(msg), &form).into_string()),
        )
            .into_response()
    };
    let lines = match lines(&form, lang) {
        Ok(l) => l,
        Err(msg) => return fail(StatusCode::BAD_REQUEST, msg),
    };
    let total: i64 = lines.iter().map(|l| l.price * l.quantity).sum();
    let count: i64 = lines.iter().map(|l| l.quantity).sum();
    let first = &lines[0];
    let item_name = if lines.len() == 1 {
        first.name.clone()
    } else {
        format!("{} 외 {}건", first.name, lines.len() - 1)
    };
    let guest = cookie(&headers, "kpay_guest")
        .filter(|g| !g.is_empty() && g.len() <= 40 && g.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap_or_else(|| format!("guest{}", crate::service::token()));
    let order = ShopOrder {
        id: format!("ord_{}", crate::service::token()),
        payment_id: None,
        guest: guest.clone(),
        lines: serde_json::to_string(&lines).unwrap_or_else(|_| "[]".into()),
        total,
        created_at: crate::domain::Timestamp::now().millis(),
        fulfilled_at: None,
        fulfilled_by: None,
    };
    if let Err(e) = s.orders.insert(&order).await {
        tracing::error!(error = %e, "shop order not stored");
        return fail(
            StatusCode::SERVICE_UNAVAILABLE,
            lang.t(
                "잠시 후 다시 시도해 주세요.",
                "Please try again in a moment.",
            ),
        );
    }
    // The reference integration: the merchant API, with an Idempotency-Key per order.
    let body = serde_json::json!({
        "partner_order_id": order.id,
        "partner_user_id": guest,
        "item_name": item_name,
        "quantity": count,
        "total_amount": total,
        "channel": if is_mobile(&headers, form.get("viewport").map(String::as_str)) { "mobile" } else { "pc" },
        "return_url": format!("{}/orders/{}", s.public_url, order.id),
    });
    let resp = s
        .http
        .post(format!("{}/api/v1/payments", s.api_base))
        .bearer_auth(s.api_key.expose_secret())
        .header("Idempotency-Key", format!("shop-{}", order.id))
        .json(&body)
        .send()
        .await;
    let payment: Option<ApiPayment> = match resp {
        Ok(r) if r.status().as_u16() == 201 => r.json().await.ok(),
        Ok(r) => {
            tracing::warn!(status = %r.status(), "merchant API refused the shop's payment");
            return fail(
                StatusCode::BAD_GATEWAY,
                lang.t(
                    "결제를 시작하지 못했습니다. 잠시 후 다시 시도해 주세요.",
                    "The payment could not be started. Please try again.",
                ),
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "merchant API unreachable");
            return fail(
                StatusCode::BAD_GATEWAY,
                lang.t(
                    "결제를 시작하지 못했습니다. 잠시 후 다시 시도해 주세요.",
                    "The payment could not be started. Please try again.",
                ),
            );
        }
    };
    let Some(ApiPayment {
        id,
        redirect_url: url,
        ..
    }) = payment
    else {
        return fail(
            StatusCode::BAD_GATEWAY,
            lang.t(
                "결제를 시작하지 못했습니다.",
                "The payment could not be started.",
            ),
        );
    };
    if let Err(e) = s.orders.set_payment(&order.id, &id).await {
        tracing::error!(error = %e, "shop order not linked to its payment");
    }
    let mut resp = Redirect::to(&url).into_response();
    if let Ok(v) = header::HeaderValue::from_str(&format!(
        "kpay_guest={guest}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax"
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

const POLL_JS: &str = r#"(function(){var id=document.body.dataset.payment;setInterval(function(){fetch('/pay/'+id+'/status',{cache:'no-store'}).then(function(r){return r.json();}).then(function(j){if(j.status!=='approving'){location.reload();}}).catch(function(){});},1000);})();"#;

async fn order(
    State(s): State<ShopState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    let lang = Lang::of(&headers, q.lang.as_deref());
    let not_found = || {
        (StatusCode::NOT_FOUND, Html(shop_page(lang, "404", html! { div.card.narrow { h1 { (lang.t("주문을 찾을 수 없습니다", "Order not found")) } p { a href="/" { (lang.t("상점으로", "Back to the shop")) } } } }).into_string())).into_response()
    };
    let Ok(Some(order)) = s.orders.get(&id).await else {
        return not_found();
    };
    let Some(payment_id) = order.payment_id.clone() else {
        return not_found();
    };
    let payment: ApiPayment = match s
        .http
        .get(format!("{}/api/v1/payments/{payment_id}", s.api_base))
        .bearer_auth(s.api_key.expose_secret())
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => match r.json().await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "the merchant API's payment did not decode");
                return not_found();
            }
        },
        _ => return not_found(),
    };
    let lines: Vec<Line> = match serde_json::from_str(&order.lines) {
        Ok(lines) => lines,
        Err(e) => {
            // The receipt's amounts come from the merchant API; only the shop's own line list is
            // unreadable, and that is said loudly rather than shown as an empty order.
            tracing::error!(order = %order.id, error = %e, "the shop order's lines cannot be read");
            Vec::new()
        }
    };
    let status = payment.status;
    let again =
        html! { p { a.btn.btn-dark href="/" { (lang.t("다시 주문하기", "Order again")) } } };
    let (title, body): (&str, Markup) = match status {
        PaymentStatus::Approved | PaymentStatus::PartiallyCanceled | PaymentStatus::Canceled => (
            lang.t("결제 완료", "Paid"),
            receipt(lang, &order, &lines, &payment),
        ),
        PaymentStatus::Approving => (
            lang.t("결제 확인 중", "Confirming payment"),
            html! {
                div.card.narrow role="status" aria-live="polite" {
                    h1 { (lang.t("결제 확인 중", "Confirming your payment")) }
                    div.spinner aria-hidden="true" {}
                    p { (lang.t("카카오페이에 결제 결과를 확인하고 있습니다. 이 화면은 자동으로 갱신됩니다.", "We are confirming the result with KakaoPay. This page updates by itself.")) }
                    script { (PreEscaped(POLL_JS)) }
                }
            },
        ),
        PaymentStatus::Ready => (
            lang.t("결제 대기", "Waiting for payment"),
            html! { div.card.narrow { h1 { (lang.t("결제가 아직 완료되지 않았습니다", "The payment is not finished yet")) }
            p { a.btn.btn-kakao href=(payment.redirect_url) { (lang.t("카카오페이로 계속하기", "Continue with KakaoPay")) } } (again) } },
        ),
        PaymentStatus::Quit => (
            lang.t("결제 취소", "Payment cancelled"),
            html! { div.card.narrow { h1 { (lang.t("결제를 취소했습니다", "You cancelled the payment")) } p { (lang.t("결제가 이루어지지 않았습니다.", "Nothing was charged.")) } (again) } },
        ),
        PaymentStatus::Expired => (
            lang.t("결제 시간 만료", "Payment expired"),
            html! { div.card.narrow { h1 { (lang.t("결제 시간이 만료되었습니다", "The payment expired")) } p { (lang.t("15분 안에 결제가 완료되지 않았습니다. 다시 주문해 주세요.", "It was not completed within 15 minutes. Please order again.")) } (again) } },
        ),
        PaymentStatus::Failed => (
            lang.t("결제 실패", "Payment failed"),
            html! { div.card.narrow { h1 { (lang.t("결제에 실패했습니다", "The payment failed")) } p { (lang.t("결제가 이루어지지 않았습니다. 다시 시도해 주세요.", "Nothing was charged. Please try again.")) } (again) } },
        ),
    };
    let mut html = shop_page(lang, title, body).into_string();
    if status == PaymentStatus::Approving {
        html = html.replacen(
            "<body>",
            &format!("<body data-payment=\"{payment_id}\">"),
            1,
        );
    }
    Html(html).into_response()
}

fn receipt(lang: Lang, order: &ShopOrder, lines: &[Line], p: &ApiPayment) -> Markup {
    let (total, vat, tax_free) = (p.amount.total, p.amount.vat, p.amount.tax_free);
    let method = match p.payment_method_type.as_deref() {
        Some("CARD") => lang.t("카드", "Card"),
        Some("MONEY") => lang.t("카카오페이머니", "KakaoPay Money"),
        _ => "-",
    };
    let approved_at = p
        .approved_at
        .as_deref()
        .and_then(|t| t.get(..19))
        .unwrap_or("-")
        .replace('T', " ");
    html! {
        div.card.narrow {
            h1 { (lang.t("결제가 완료되었습니다", "Thank you — payment complete")) }
            @if p.status == PaymentStatus::Canceled { p.ok { (lang.t("이 주문은 전액 환불되었습니다.", "This order was fully refunded.")) } }
            @if p.status == PaymentStatus::PartiallyCanceled { p.ok { (lang.t("일부 환불: ", "Partly refunded: ")) (won(p.canceled_amount)) } }
            table aria-label=(lang.t("주문 내역", "Order")) {
                thead { tr { th scope="col" { (lang.t("상품", "Item")) } th.num scope="col" { (lang.t("수량", "Qty")) } th.num scope="col" { (lang.t("금액", "Amount")) } } }
                tbody {
                    @for l in lines { tr { td { (l.name) } td.num { (l.quantity) } td.num { (won(l.price * l.quantity)) } } }
                }
            }
            table aria-label=(lang.t("결제 정보", "Payment")) style="margin-top:12px" {
                tbody {
                    tr { th scope="row" { (lang.t("결제 금액", "Total")) } td.num { strong { (won(total)) } } }
                    tr { th scope="row" { (lang.t("공급가액", "Net")) } td.num { (won(total - vat - tax_free)) } }
                    tr { th scope="row" { (lang.t("부가세", "VAT")) } td.num { (won(vat)) } }
                    tr { th scope="row" { (lang.t("결제 수단", "Method")) } td { "카카오페이 · " (method) } }
                    tr { th scope="row" { (lang.t("승인 시각", "Approved at")) } td { (approved_at) } }
                    tr { th scope="row" { (lang.t("승인번호 (AID)", "Approval id (AID)")) } td { code { (p.aid.as_deref().unwrap_or("-")) } } }
                    tr { th scope="row" { (lang.t("주문번호", "Order")) } td { code { (order.id) } } }
                }
            }
            (fulfilment(lang, order))
            p { a.btn.btn-dark href="/" { (lang.t("쇼핑 계속하기", "Keep shopping")) } }
        }
    }
}

/// Reloads the receipt until the webhook arrived (a minute at most).
const AWAIT_HOOK_JS: &str = r#"(function(){var n=+(sessionStorage.getItem('kpay_hook_wait')||0);if(n<60){sessionStorage.setItem('kpay_hook_wait',n+1);setTimeout(function(){location.reload();},1000);}})();"#;

/// Whether the shop's webhook receiver fulfilled the order: the shop ships on the verified
/// event, not on the buyer's redirect.
fn fulfilment(lang: Lang, order: &ShopOrder) -> Markup {
    match (&order.fulfilled_by, order.fulfilled_at) {
        (Some(event), Some(at)) => html! {
            p.ok #fulfilment role="status" {
                (lang.t("주문 확정: 서명이 확인된 결제 승인 웹훅을 받았습니다", "Order confirmed: a verified payment.approved webhook arrived"))
                " (" code { (event) } " · "
                (crate::domain::Timestamp::from_millis(at).map(super::layout::display_time).unwrap_or_default()) ")"
            }
            script { "sessionStorage.removeItem('kpay_hook_wait');" }
        },
        _ => html! {
            p.muted #fulfilment role="status" aria-live="polite" {
                (lang.t("주문 처리 대기 중: 결제 승인 웹훅을 기다리고 있습니다…", "Waiting for the payment.approved webhook to confirm the order…"))
            }
            script { (PreEscaped(AWAIT_HOOK_JS)) }
        },
    }
}
