//! The buyer's side: the pages behind ready's `next_redirect_pc_url` (QR code and countdown),
//! `next_redirect_mobile_url` and `next_redirect_app_url`. Self-contained HTML (inline CSS, inline
//! SVG, a few lines of script), Korean labels as on KakaoPay's pages.

use crate::engine::{Redirect, with_pg_token};
use crate::state::Payment;
use crate::{Sandbox, SandboxError};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect as Go, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use kakaopay::{OrderStatus, PaymentMethodType};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;
use serde_json::json;

/// The page routes, under `/v1/{page token}/…` like KakaoPay's mockup pages.
pub fn routes() -> Router<Sandbox> {
    Router::new()
        .route("/v1/{token}/info", get(pc_page))
        .route("/v1/{token}/mInfo", get(mobile_page))
        .route("/v1/{token}/aInfo", get(app_page))
        .route("/v1/{token}/order", get(app_page))
        .route("/v1/{token}/status", get(status))
        .route("/v1/{token}/pay", post(pay))
        .route("/v1/{token}/quit", post(quit))
        .route("/v1/{token}/fail", post(fail))
}

const STYLE: &str = r#"
*{box-sizing:border-box}body{margin:0;font-family:-apple-system,"Apple SD Gothic Neo","Noto Sans KR","Malgun Gothic",sans-serif;background:#f4f4f4;color:#1e1e1e}
header{background:#ffeb00;padding:14px 20px;font-weight:800;font-size:20px;letter-spacing:-.5px}
header span{font-weight:400;font-size:13px;margin-left:8px;color:#3c1e1e}
main{max-width:440px;margin:24px auto;background:#fff;border-radius:14px;padding:24px;box-shadow:0 2px 10px rgba(0,0,0,.08)}
h1{font-size:19px;margin:0 0 6px}.amount{font-size:26px;font-weight:800;margin:4px 0 16px}
.muted{color:#666;font-size:14px}.qr{display:flex;justify-content:center;margin:16px 0}.qr svg{width:200px;height:200px}
.timer{font-variant-numeric:tabular-nums;font-weight:700;color:#d62d20}
fieldset{border:1px solid #ddd;border-radius:10px;margin:16px 0;padding:10px 14px}legend{font-size:14px;color:#444}
label.method{display:flex;align-items:center;gap:8px;padding:8px 0;font-size:16px}
button{width:100%;border:0;border-radius:10px;padding:15px;font-size:17px;font-weight:700;cursor:pointer;margin-top:8px}
button.pay{background:#ffeb00;color:#1e1e1e}button.cancel{background:#eee;color:#333}button.fail{background:#fff;color:#a33;border:1px solid #e0b4b4;font-size:14px;padding:10px}
button:focus-visible,a:focus-visible{outline:3px solid #1a73e8;outline-offset:2px}
.notice{background:#fff8cc;border-radius:10px;padding:12px;font-size:14px}
@media (max-width:480px){main{margin:0;border-radius:0;min-height:calc(100vh - 52px)}}
"#;

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="ko" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " | 카카오페이" }
                link rel="icon" href="data:,";
                style { (PreEscaped(STYLE)) }
            }
            body {
                header { "kakao" b { "pay" } span { "테스트 결제 (sandbox)" } }
                main { (body) }
            }
        }
    }
}

/// Whether the buyer can still act on the page (not yet authenticated, not expired).
fn payable(sb: &Sandbox, p: &Payment) -> bool {
    p.is_pending() && p.status != OrderStatus::AuthPassword && !p.is_expired(sb.clock().now())
}

fn remaining_seconds(sb: &Sandbox, p: &Payment) -> i64 {
    (p.expires_at - sb.clock().now()).num_seconds().max(0)
}

fn not_found() -> Response {
    let body = layout(
        "결제 정보 없음",
        html! {
            h1 { "결제 정보를 찾을 수 없습니다" }
            p.muted { "결제 요청이 만료되었거나 잘못된 주소입니다." }
        },
    );
    (StatusCode::NOT_FOUND, Html(body.into_string())).into_response()
}

/// The page for a payment that can no longer be paid here.
fn closed_page(sb: &Sandbox, p: &Payment) -> Response {
    let now = sb.clock().now();
    let (title, text, link): (&str, &str, Option<String>) = if p.is_expired(now) {
        (
            "결제 시간 만료",
            "결제 가능 시간(15분)이 지났습니다. 가맹점에서 다시 결제해 주세요.",
            Some(p.fail_url.clone()),
        )
    } else {
        match p.status {
            OrderStatus::AuthPassword => (
                "인증 완료",
                "결제 인증이 완료되었습니다. 가맹점 화면에서 계속 진행해 주세요.",
                p.pg_token
                    .as_deref()
                    .map(|t| with_pg_token(&p.approval_url, t)),
            ),
            OrderStatus::QuitPayment => (
                "결제 취소",
                "결제를 취소했습니다.",
                Some(p.cancel_url.clone()),
            ),
            OrderStatus::FailAuthPassword | OrderStatus::FailPayment => (
                "결제 실패",
                "결제에 실패했습니다.",
                Some(p.fail_url.clone()),
            ),
            _ => ("결제 완료", "이미 처리된 결제입니다.", None),
        }
    };
    let body = layout(
        title,
        html! {
            h1 { (title) }
            p.muted { (text) }
            @if let Some(link) = link {
                p { a href=(link) { "가맹점으로 돌아가기" } }
            }
        },
    );
    Html(body.into_string()).into_response()
}

fn summary(p: &Payment) -> Markup {
    html! {
        p.muted { "결제 상품" }
        h1 { (p.item_name) }
        @if p.quantity > 1 { p.muted { "수량 " (p.quantity) "개" } }
        p.amount { (p.amount.total) }
    }
}

fn pay_form(p: &Payment, qr: bool) -> Markup {
    let allow_card = p
        .allowed_method
        .as_ref()
        .is_none_or(|m| *m == PaymentMethodType::Card);
    let allow_money = p
        .allowed_method
        .as_ref()
        .is_none_or(|m| *m == PaymentMethodType::Money);
    html! {
        form method="post" action="pay" {
            @if qr { input type="hidden" name="qr" value="1"; }
            fieldset {
                legend { "결제 수단" }
                @if allow_card {
                    label.method { input type="radio" name="payment_method_type" value="CARD" checked; "신용/체크카드" }
                }
                @if allow_money {
                    label.method { input type="radio" name="payment_method_type" value="MONEY" checked[!allow_card]; "카카오페이머니" }
                }
            }
            button.pay type="submit" { "결제하기" }
        }
        form method="post" action="quit" { button.cancel type="submit" { "결제 취소" } }
        form method="post" action="fail" { button.fail type="submit" { "비밀번호 인증 실패 (테스트)" } }
    }
}

/// Counts down and follows the payment's status, so the PC page moves on when the buyer pays on
/// the phone (QR code) and shows the expiry when time runs out.
const SCRIPT: &str = r#"
(function(){var el=document.getElementById('timer');var left=parseInt(el.dataset.seconds,10);
function show(){var m=Math.floor(left/60),s=left%60;el.textContent=m+':'+(s<10?'0':'')+s;}
show();var t=setInterval(function(){left=Math.max(0,left-1);show();if(left===0){clearInterval(t);location.reload();}},1000);
if(document.body.dataset.poll){setInterval(function(){fetch('status').then(function(r){return r.json();}).then(function(j){if(j.redirect_url&&j.status!=='READY'&&j.status!=='OPEN_PAYMENT'){location.href=j.redirect_url;}}).catch(function(){});},2000);}})();
"#;

async fn pc_page(State(sb): State<Sandbox>, Path(token): Path<String>) -> Response {
    let Some(p) = sb.open_page(&token) else {
        return not_found();
    };
    if !payable(&sb, &p) {
        return closed_page(&sb, &p);
    }
    let mobile = format!("{}/v1/{}/mInfo?qr=1", sb.config().public_url, p.page_token);
    let qr = match qrcode::QrCode::new(mobile.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
        Err(_) => String::new(),
    };
    let body = layout(
        "카카오페이 결제",
        html! {
            (summary(&p))
            div.notice { "휴대폰 카메라나 카카오톡으로 QR코드를 스캔해 결제해 주세요." }
            div.qr role="img" aria-label="결제용 QR코드" data-url=(mobile) { (PreEscaped(qr)) }
            p.muted { "남은 시간 " span #timer .timer data-seconds=(remaining_seconds(&sb, &p)) {} }
            p.muted { "또는 이 화면에서 바로 결제할 수 있습니다." }
            (pay_form(&p, false))
            script { (PreEscaped(SCRIPT)) }
        },
    );
    let html = body
        .into_string()
        .replacen("<body>", "<body data-poll=\"1\">", 1);
    Html(html).into_response()
}

#[derive(Deserialize)]
struct PageQuery {
    #[serde(default)]
    qr: Option<String>,
}

async fn mobile_page(
    State(sb): State<Sandbox>,
    Path(token): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    mobile(&sb, &token, q.qr.is_some(), "카카오페이 결제")
}

async fn app_page(State(sb): State<Sandbox>, Path(token): Path<String>) -> Response {
    mobile(&sb, &token, false, "카카오톡에서 결제")
}

fn mobile(sb: &Sandbox, token: &str, qr: bool, title: &str) -> Response {
    let Some(p) = sb.open_page(token) else {
        return not_found();
    };
    if !payable(sb, &p) {
        return closed_page(sb, &p);
    }
    let body = layout(
        title,
        html! {
            (summary(&p))
            p.muted { "남은 시간 " span #timer .timer data-seconds=(remaining_seconds(sb, &p)) {} }
            (pay_form(&p, qr))
            script { (PreEscaped(SCRIPT)) }
        },
    );
    Html(body.into_string()).into_response()
}

async fn status(State(sb): State<Sandbox>, Path(token): Path<String>) -> Response {
    let Some(p) = sb.page_payment(&token) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"code": "not_found", "message": "unknown payment page"}})),
        )
            .into_response();
    };
    let now = sb.clock().now();
    let redirect = if p.is_expired(now) {
        Some(p.fail_url.clone())
    } else {
        match p.status {
            OrderStatus::AuthPassword => p
                .pg_token
                .as_deref()
                .map(|t| with_pg_token(&p.approval_url, t)),
            OrderStatus::QuitPayment => Some(p.cancel_url.clone()),
            OrderStatus::FailAuthPassword => Some(p.fail_url.clone()),
            _ => None,
        }
    };
    Json(json!({
        "status": p.status,
        "expired": p.is_expired(now),
        "remaining_seconds": remaining_seconds(&sb, &p),
        "redirect_url": redirect,
    }))
    .into_response()
}

#[derive(Deserialize)]
struct PayForm {
    #[serde(default)]
    payment_method_type: Option<PaymentMethodType>,
    #[serde(default)]
    qr: Option<String>,
}

fn after(sb: &Sandbox, token: &str, result: Result<Redirect, SandboxError>, qr: bool) -> Response {
    match result {
        Ok(r) if qr && r.status == OrderStatus::AuthPassword => {
            let body = layout(
                "인증 완료",
                html! {
                    h1 { "결제 인증이 완료되었습니다" }
                    p.muted { "PC 화면에서 결제가 계속 진행됩니다." }
                },
            );
            Html(body.into_string()).into_response()
        }
        Ok(r) => Go::to(&r.url).into_response(),
        Err(e) => match sb.page_payment(token) {
            Some(p) => closed_page(sb, &p),
            None => {
                tracing::debug!(error = %e, "payment page action on an unknown payment");
                not_found()
            }
        },
    }
}

fn tid_of(sb: &Sandbox, token: &str) -> Option<String> {
    sb.store().pages.get(token).map(|t| t.clone())
}

async fn pay(
    State(sb): State<Sandbox>,
    Path(token): Path<String>,
    Form(form): Form<PayForm>,
) -> Response {
    let Some(tid) = tid_of(&sb, &token) else {
        return not_found();
    };
    let result = sb.authorize(&tid, form.payment_method_type);
    after(&sb, &token, result, form.qr.is_some())
}

async fn quit(State(sb): State<Sandbox>, Path(token): Path<String>) -> Response {
    let Some(tid) = tid_of(&sb, &token) else {
        return not_found();
    };
    let result = sb.abandon(&tid, true);
    after(&sb, &token, result, false)
}

async fn fail(State(sb): State<Sandbox>, Path(token): Path<String>) -> Response {
    let Some(tid) = tid_of(&sb, &token) else {
        return not_found();
    };
    let result = sb.abandon(&tid, false);
    after(&sb, &token, result, false)
}
