//! The back office at `/admin`: log in with the admin password (or the API key), find payments,
//! read their history, refund them with a confirmation step, watch reconciliation.
//! Sessions are signed HttpOnly SameSite=Strict cookies; every form carries a CSRF token.

use super::i18n::{Lang, cookie};
use super::layout::{display_time, page, won};
use super::session::{COOKIE, SESSION_SECONDS, Sessions};
use crate::domain::PaymentStatus;
use crate::http::api::{ListQuery, list_filter};
use crate::reconciler::Reconciler;
use crate::service::{RefundInput, ServiceError, Services};
use crate::store::{ListFilter, PaymentRecord};
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use kakaopay::{Amount, Payload};
use maud::{Markup, PreEscaped, html};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// What the dashboard needs.
#[derive(Clone)]
pub struct AdminState {
    /// The use cases.
    pub services: Services,
    /// Session signing.
    pub sessions: Sessions,
    /// The login secret.
    pub secret: Arc<SecretString>,
    /// Reconciler interval (for the view).
    pub reconcile_interval: Duration,
    /// Whether cookies get `Secure` (public URL is https).
    pub secure_cookies: bool,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminState")
    }
}

/// The dashboard's routes.
pub fn routes(state: AdminState) -> Router {
    Router::new()
        .route("/admin/login", get(login_page).post(login))
        .route("/admin/logout", post(logout))
        .route("/admin", get(dashboard))
        .route("/admin/payments", get(payments))
        .route("/admin/payments/{id}", get(payment))
        .route("/admin/payments/{id}/refund", post(refund_confirm))
        .route("/admin/payments/{id}/refund/confirm", post(refund_do))
        .route("/admin/payments/{id}/sync", post(sync))
        .route("/admin/reconciliation", get(reconciliation))
        .route("/admin/reconcile", post(reconcile))
        .with_state(state)
}

/// A logged-in request: its language and CSRF token.
struct Admin {
    lang: Lang,
    csrf: String,
    nonce: String,
}

fn now_s() -> i64 {
    crate::service::now_ms() / 1000
}

impl axum::extract::FromRequestParts<AdminState> for Admin {
    type Rejection = Response;

    /// A request without a valid session goes to the login page.
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        s: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        let lang_q = parts.uri.query().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "lang")
                .map(|(_, v)| v.into_owned())
        });
        let lang = Lang::of(&parts.headers, lang_q.as_deref());
        let nonce = cookie(&parts.headers, COOKIE)
            .and_then(|c| s.sessions.verify(&c, now_s()).map(str::to_owned));
        match nonce {
            Some(nonce) => Ok(Admin {
                lang,
                csrf: s.sessions.csrf(&nonce),
                nonce,
            }),
            None => Err(Redirect::to("/admin/login").into_response()),
        }
    }
}

/// `Some(403 page)` when the form's CSRF token is not the session's.
fn csrf_refused(s: &AdminState, a: &Admin, form: &HashMap<String, String>) -> Option<Response> {
    match form.get("csrf") {
        Some(t) if s.sessions.check_csrf(&a.nonce, t) => None,
        _ => Some((StatusCode::FORBIDDEN, Html("<!doctype html><html lang=\"ko\"><meta charset=\"utf-8\"><title>403</title><p>요청이 만료되었습니다. 페이지를 새로 고쳐 주세요. (CSRF)</p></html>")).into_response()),
    }
}

fn admin_page(lang: Lang, title: &str, csrf: Option<&str>, body: Markup) -> Response {
    let brand = html! { a href="/admin" { "kpay " (lang.t("관리자", "admin")) } };
    let nav = html! {
        @if let Some(csrf) = csrf {
            a href="/admin" { (lang.t("대시보드", "Dashboard")) }
            a href="/admin/payments" { (lang.t("결제 내역", "Payments")) }
            a href="/admin/reconciliation" { (lang.t("대사", "Reconciliation")) }
            form method="post" action="/admin/logout" style="display:inline" {
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" style="background:none;border:0;color:#fff;font:inherit;font-weight:700;cursor:pointer;padding:0" { (lang.t("로그아웃", "Log out")) }
            }
        }
        a href="?lang=ko" lang="ko" { "한국어" }
        a href="?lang=en" lang="en" { "English" }
    };
    let mut resp = Html(page(lang.code(), title, brand, nav, body).into_string()).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[derive(Debug, Default, Deserialize)]
struct LangQuery {
    #[serde(default)]
    lang: Option<String>,
}

fn login_markup(lang: Lang, error: Option<&str>) -> Markup {
    html! {
        div.card.narrow {
            h1 { (lang.t("관리자 로그인", "Admin login")) }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/admin/login" {
                label for="password" { (lang.t("비밀번호 (또는 API 키)", "Password (or API key)")) }
                input #password type="password" name="password" autocomplete="current-password" required autofocus;
                p { button.btn.btn-dark type="submit" { (lang.t("로그인", "Log in")) } }
            }
        }
    }
}

async fn login_page(headers: HeaderMap, Query(q): Query<LangQuery>) -> Response {
    let lang = Lang::of(&headers, q.lang.as_deref());
    let mut resp = admin_page(
        lang,
        lang.t("관리자 로그인", "Admin login"),
        None,
        login_markup(lang, None),
    );
    if q.lang.is_some() {
        resp.headers_mut().append(header::SET_COOKIE, lang.cookie());
    }
    resp
}

async fn login(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let lang = Lang::of(&headers, None);
    let given = form.get("password").map(String::as_str).unwrap_or_default();
    let secret = s.secret.expose_secret();
    let equal = given.len() == secret.len()
        && given
            .bytes()
            .zip(secret.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !equal {
        tracing::warn!("admin login refused");
        let mut resp = admin_page(
            lang,
            lang.t("관리자 로그인", "Admin login"),
            None,
            login_markup(
                lang,
                Some(lang.t("비밀번호가 올바르지 않습니다.", "Wrong password.")),
            ),
        );
        *resp.status_mut() = StatusCode::UNAUTHORIZED;
        return resp;
    }
    let value = s.sessions.issue(now_s());
    let secure = if s.secure_cookies { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={value}; Path=/admin; Max-Age={SESSION_SECONDS}; HttpOnly; SameSite=Strict{secure}"
    );
    let mut resp = Redirect::to("/admin").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

async fn logout(
    State(s): State<AdminState>,
    a: Admin,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = csrf_refused(&s, &a, &form) {
        return r;
    }
    let mut resp = Redirect::to("/admin/login").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("kpay_admin=; Path=/admin; Max-Age=0; HttpOnly; SameSite=Strict"),
    );
    resp
}

fn status_badge(lang: Lang, status: &str) -> Markup {
    html! { span class={"status status-" (status)} { (status_label(lang, status)) } }
}

fn status_label(lang: Lang, status: &str) -> &'static str {
    match status {
        "ready" => lang.t("결제 대기", "ready"),
        "approving" => lang.t("승인 확인 중", "approving"),
        "approved" => lang.t("결제 완료", "approved"),
        "partially_canceled" => lang.t("부분 취소", "partially canceled"),
        "canceled" => lang.t("취소 완료", "canceled"),
        "quit" => lang.t("구매자 취소", "quit"),
        "failed" => lang.t("실패", "failed"),
        "expired" => lang.t("만료", "expired"),
        _ => "?",
    }
}

/// Bars of the last seven days' approved amounts, drawn on the server.
fn chart(lang: Lang, days: &[(String, i64)]) -> Markup {
    let max = days.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let bar_w = 40;
    let gap = 14;
    let h = 140;
    let width = days.len() as i64 * (bar_w + gap) + gap;
    let mut svg = format!(
        "<svg viewBox=\"0 0 {width} {}\" width=\"100%\" role=\"img\" aria-labelledby=\"chart-title\"><title id=\"chart-title\">{}</title>",
        h + 40,
        lang.t("최근 7일 결제 금액", "Approved amounts, last 7 days")
    );
    for (i, (label, v)) in days.iter().enumerate() {
        let bh = (*v * h / max).max(if *v > 0 { 2 } else { 0 });
        let x = gap + i as i64 * (bar_w + gap);
        svg.push_str(&format!(
            "<rect x=\"{x}\" y=\"{}\" width=\"{bar_w}\" height=\"{bh}\" rx=\"4\" fill=\"#1d1d1f\"><title>{label}: {}</title></rect><text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#5f6368\">{label}</text>",
            h - bh + 10,
            won(*v),
            x + bar_w / 2,
            h + 28
        ));
    }
    svg.push_str("</svg>");
    PreEscaped(svg)
}

async fn dashboard(State(s): State<AdminState>, a: Admin) -> Response {
    let lang = a.lang;
    let offset = chrono::FixedOffset::east_opt(9 * 3600).unwrap_or_else(|| unreachable!());
    let today = chrono::Utc::now().with_timezone(&offset).date_naive();
    let day_start = |d: chrono::NaiveDate| {
        kakaopay::KstDateTime(d.and_hms_opt(0, 0, 0).unwrap_or_default())
            .to_utc()
            .timestamp_millis()
    };
    let week_start = today - chrono::Days::new(6);
    let rows = s
        .services
        .store
        .daily_totals(day_start(week_start))
        .await
        .unwrap_or_default();
    let mut days = Vec::new();
    let (mut today_n, mut today_sum, mut week_n, mut week_sum, mut week_refunds) = (0, 0, 0, 0, 0);
    for i in 0..7 {
        let d = week_start + chrono::Days::new(i);
        let start = day_start(d);
        let (n, sum, refunded) = rows
            .iter()
            .find(|r| r.0 == start)
            .map_or((0, 0, 0), |r| (r.1, r.2, r.3));
        week_n += n;
        week_sum += sum;
        week_refunds += refunded;
        if d == today {
            today_n = n;
            today_sum = sum;
        }
        days.push((d.format("%m/%d").to_string(), sum));
    }
    let body = html! {
        h1 { (lang.t("대시보드", "Dashboard")) }
        div.row {
            div.card { p.muted { (lang.t("오늘 결제", "Today")) } p.big { (won(today_sum)) } p.muted { (today_n) (lang.t("건", " payments")) } }
            div.card { p.muted { (lang.t("이번 주 (7일) 결제", "This week (7 days)")) } p.big { (won(week_sum)) } p.muted { (week_n) (lang.t("건 · 환불 ", " payments · refunds ")) (won(week_refunds)) } }
        }
        div.card { h2 { (lang.t("최근 7일", "Last 7 days")) } (chart(lang, &days)) }
        p { a.btn.btn-dark href="/admin/payments" { (lang.t("결제 내역 보기", "See payments")) } }
    };
    admin_page(lang, lang.t("대시보드", "Dashboard"), Some(&a.csrf), body)
}

fn payment_rows(lang: Lang, rows: &[PaymentRecord]) -> Markup {
    html! {
        table {
            thead { tr {
                th scope="col" { (lang.t("생성 시각", "Created")) }
                th scope="col" { (lang.t("주문번호", "Order")) }
                th scope="col" class="hide-sm" { (lang.t("상품", "Item")) }
                th.num scope="col" { (lang.t("금액", "Amount")) }
                th scope="col" { (lang.t("상태", "Status")) }
            } }
            tbody {
                @for p in rows {
                    tr {
                        td { (display_time(p.created_at).get(5..16).unwrap_or_default()) }
                        td { a href={"/admin/payments/" (p.id)} { (p.partner_order_id) } }
                        td.hide-sm { (p.item_name) }
                        td.num { (won(p.amount_total)) }
                        td { (status_badge(lang, &p.status)) }
                    }
                }
                @if rows.is_empty() { tr { td colspan="5" { (lang.t("조건에 맞는 결제가 없습니다.", "No payments match.")) } } }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct AdminListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

async fn payments(
    State(s): State<AdminState>,
    a: Admin,
    Query(q): Query<AdminListQuery>,
) -> Response {
    let lang = a.lang;
    let lq = ListQuery {
        status: q.status.clone(),
        limit: Some(25),
        cursor: q.cursor.clone(),
        q: q.q.clone(),
        from: q.from.clone(),
        to: q.to.clone(),
    };
    let (rows, next, error) = match list_filter(&lq) {
        Ok(f) => match s.services.store.page(&f).await {
            Ok((rows, next)) => (rows, next, None),
            Err(e) => (Vec::new(), None, Some(e.to_string())),
        },
        Err(e) => (Vec::new(), None, Some(e.message)),
    };
    let keep = |cursor: &str| {
        let mut u = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("status", &q.status),
            ("q", &q.q),
            ("from", &q.from),
            ("to", &q.to),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                u.append_pair(k, v);
            }
        }
        u.append_pair("cursor", cursor);
        format!("/admin/payments?{}", u.finish())
    };
    let body = html! {
        h1 { (lang.t("결제 내역", "Payments")) }
        form.card method="get" action="/admin/payments" role="search" {
            div.row {
                div {
                    label for="status" { (lang.t("상태", "Status")) }
                    select #status name="status" {
                        option value="" { (lang.t("전체", "All")) }
                        @for st in PaymentStatus::ALL {
                            option value=(st.as_str()) selected[q.status.as_deref() == Some(st.as_str())] { (status_label(lang, st.as_str())) }
                        }
                    }
                }
                div { label for="from" { (lang.t("시작일", "From")) } input #from type="date" name="from" value=(q.from.clone().unwrap_or_default()); }
                div { label for="to" { (lang.t("종료일", "To")) } input #to type="date" name="to" value=(q.to.clone().unwrap_or_default()); }
                div { label for="q" { (lang.t("주문번호 / TID 검색", "Order id / TID")) } input #q type="search" name="q" value=(q.q.clone().unwrap_or_default()); }
                div { button.btn.btn-dark type="submit" { (lang.t("검색", "Search")) } }
            }
        }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        div.card { (payment_rows(lang, &rows)) }
        @if let Some(c) = next { p { a href=(keep(&c)) { (lang.t("다음 페이지 →", "Next page →")) } } }
    };
    admin_page(lang, lang.t("결제 내역", "Payments"), Some(&a.csrf), body)
}

#[derive(Debug, Default, Deserialize)]
struct PaymentQuery {
    #[serde(default)]
    done: Option<String>,
}

async fn payment_markup(
    s: &AdminState,
    a: &Admin,
    id: &str,
    notice: Option<Markup>,
    form_error: Option<&str>,
    form_values: (&str, &str),
) -> Result<Markup, Response> {
    let lang = a.lang;
    let p = match s.services.payment(id).await {
        Ok(p) => p,
        Err(ServiceError::NotFound(_)) => {
            return Err(admin_page(
                lang,
                "404",
                Some(&a.csrf),
                html! { div.card { h1 { (lang.t("결제를 찾을 수 없습니다", "Payment not found")) } } },
            ));
        }
        Err(e) => return Err((StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()),
    };
    let refunds = s.services.store.refunds(id).await.unwrap_or_default();
    let events = s.services.store.events(id).await.unwrap_or_default();
    let amounts = p.amounts();
    let cancelable = p.cancelable().won();
    Ok(html! {
        p { a href="/admin/payments" { (lang.t("← 결제 내역", "← Payments")) } }
        @if let Some(n) = notice { (n) }
        div.card {
            h1 { (p.item_name) " " (status_badge(lang, &p.status)) }
            p.big { (won(p.amount_total)) }
            table aria-label=(lang.t("결제 정보", "Payment")) {
                tbody {
                    tr { th scope="row" { (lang.t("결제 ID", "Payment id")) } td { code { (p.id) } } }
                    tr { th scope="row" { (lang.t("주문번호", "Order id")) } td { (p.partner_order_id) } }
                    tr { th scope="row" { "TID" } td { code { (p.tid) } } }
                    tr { th scope="row" { "AID" } td { code { (p.aid.as_deref().unwrap_or("-")) } } }
                    tr { th scope="row" { (lang.t("부가세 / 면세", "VAT / tax-free")) } td.num { (won(amounts.vat.won())) " / " (won(amounts.tax_free.won())) } }
                    tr { th scope="row" { (lang.t("환불된 금액", "Refunded")) } td.num { (won(p.canceled_total)) } }
                    tr { th scope="row" { (lang.t("환불 가능 금액", "Refundable")) } td.num { strong { (won(cancelable)) } } }
                    tr { th scope="row" { (lang.t("결제 수단", "Method")) } td { (p.payment_method_type.as_deref().unwrap_or("-")) } }
                    tr { th scope="row" { (lang.t("생성 / 승인", "Created / approved")) } td { (display_time(p.created_at)) " / " (p.approved_at.map(display_time).unwrap_or_else(|| "-".into())) } }
                    @if let Some(code) = &p.failure_code { tr { th scope="row" { (lang.t("실패 사유", "Failure")) } td { (code) ": " (p.failure_message.as_deref().unwrap_or("")) } } }
                }
            }
            form method="post" action={"/admin/payments/" (p.id) "/sync"} style="margin-top:12px" {
                input type="hidden" name="csrf" value=(a.csrf);
                button.btn.btn-light type="submit" { (lang.t("카카오페이와 대조 (주문 조회)", "Check with KakaoPay (order lookup)")) }
            }
        }
        @if p.status().is_refundable() && p.refund_in_flight.is_none() {
            div.card {
                h2 { (lang.t("환불", "Refund")) }
                @if let Some(e) = form_error { p.error role="alert" id="refund-error" { (e) } }
                form method="post" action={"/admin/payments/" (p.id) "/refund"} {
                    input type="hidden" name="csrf" value=(a.csrf);
                    div.row {
                        div {
                            label for="amount" { (lang.t("환불 금액 (원)", "Amount (won)")) }
                            input #amount type="number" name="amount" min="1" max=(cancelable) required value=(form_values.0) aria-describedby="amount-help";
                            p.muted #amount-help { (lang.t("최대 ", "At most ")) (won(cancelable)) }
                        }
                        div {
                            label for="reason" { (lang.t("사유 (선택)", "Reason (optional)")) }
                            input #reason type="text" name="reason" maxlength="200" value=(form_values.1);
                        }
                        div { button.btn.btn-danger type="submit" { (lang.t("환불하기…", "Refund…")) } }
                    }
                }
            }
        }
        @if p.refund_in_flight.is_some() { p.card role="status" { (lang.t("환불 결과를 카카오페이에 확인하고 있습니다.", "A refund's result is being confirmed with KakaoPay.")) } }
        div.card {
            h2 { (lang.t("환불 내역", "Refunds")) }
            table {
                thead { tr { th scope="col" { (lang.t("시각", "When")) } th.num scope="col" { (lang.t("금액", "Amount")) } th scope="col" { (lang.t("상태", "Status")) } th scope="col" class="hide-sm" { "AID" } th scope="col" class="hide-sm" { (lang.t("사유", "Reason")) } } }
                tbody {
                    @for r in &refunds {
                        tr { td { (display_time(r.created_at).get(5..19).unwrap_or_default()) } td.num { (won(r.amount)) } td { (match r.status.as_str() { "succeeded" => lang.t("완료", "succeeded"), "pending" => lang.t("확인 중", "pending"), _ => lang.t("실패", "failed") }) } td.hide-sm { code { (r.aid.as_deref().unwrap_or("-")) } } td.hide-sm { (r.reason.as_deref().unwrap_or("")) } }
                    }
                    @if refunds.is_empty() { tr { td colspan="5" { (lang.t("환불 내역이 없습니다.", "No refunds.")) } } }
                }
            }
        }
        div.card {
            h2 { (lang.t("이력", "Timeline")) }
            ol #timeline {
                @for e in &events {
                    li {
                        time { (display_time(e.at).get(5..19).unwrap_or_default()) } " · "
                        strong { (e.cause) } " "
                        span.muted { (e.from_status.as_deref().unwrap_or("—")) " → " (e.to_status) }
                        @if let Some(c) = e.upstream_code { " (KakaoPay " (c) ")" }
                        @if let Some(d) = &e.detail { br; span.muted { (d) } }
                    }
                }
            }
        }
    })
}

async fn payment(
    State(s): State<AdminState>,
    a: Admin,
    Path(id): Path<String>,
    Query(q): Query<PaymentQuery>,
) -> Response {
    let lang = a.lang;
    let notice = q.done.as_deref().map(|d| match d {
        "refunded" => html! { p.ok role="status" { (lang.t("환불했습니다.", "Refunded.")) } },
        "pending" => html! { p.ok role="status" { (lang.t("환불을 요청했습니다. 결과를 확인하고 있습니다.", "Refund sent; its result is being confirmed.")) } },
        _ => html! { p.ok role="status" { (lang.t("카카오페이와 대조했습니다.", "Checked with KakaoPay.")) } },
    });
    match payment_markup(&s, &a, &id, notice, None, ("", "")).await {
        Ok(body) => admin_page(lang, lang.t("결제 상세", "Payment"), Some(&a.csrf), body),
        Err(r) => r,
    }
}

/// Parses the refund form; a message for the operator when it is wrong.
fn refund_form(
    lang: Lang,
    form: &HashMap<String, String>,
) -> Result<(Amount, Option<Payload>), &'static str> {
    let amount = form
        .get("amount")
        .and_then(|a| a.trim().parse::<i64>().ok())
        .filter(|a| *a >= 1)
        .and_then(|a| Amount::new(a).ok())
        .ok_or(lang.t(
            "환불 금액은 1원 이상의 정수여야 합니다.",
            "The amount must be a whole number of won, at least 1.",
        ))?;
    let reason = match form
        .get("reason")
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
    {
        Some(r) => Some(Payload::parse(r).map_err(|_| {
            lang.t(
                "사유는 200자 이하여야 합니다.",
                "The reason must be at most 200 characters.",
            )
        })?),
        None => None,
    };
    Ok((amount, reason))
}

async fn refund_confirm(
    State(s): State<AdminState>,
    a: Admin,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = csrf_refused(&s, &a, &form) {
        return r;
    }
    let lang = a.lang;
    let raw_amount = form.get("amount").cloned().unwrap_or_default();
    let raw_reason = form.get("reason").cloned().unwrap_or_default();
    let p = match s.services.payment(&id).await {
        Ok(p) => p,
        Err(e) => {
            return refund_error(&s, &a, &id, &e.to_string(), (&raw_amount, &raw_reason)).await;
        }
    };
    let error = match refund_form(lang, &form) {
        Err(msg) => Some(msg.to_owned()),
        Ok((amount, _)) if amount.won() > p.cancelable().won() => Some(format!(
            "{}{}",
            lang.t(
                "환불 가능 금액을 넘었습니다: 최대 ",
                "More than can be refunded: at most "
            ),
            won(p.cancelable().won())
        )),
        Ok(_) => None,
    };
    if let Some(e) = error {
        return refund_error(&s, &a, &id, &e, (&raw_amount, &raw_reason)).await;
    }
    let amount: i64 = raw_amount.trim().parse().unwrap_or(0);
    let full = amount == p.cancelable().won();
    let body = html! {
        div.card.narrow {
            h1 { (lang.t("환불 확인", "Confirm the refund")) }
            p { (p.item_name) " · " code { (p.partner_order_id) } }
            p.big { (won(amount)) }
            p { @if full { (lang.t("남은 금액 전액을 환불합니다.", "This refunds everything that is left.")) } @else { (lang.t("부분 환불 후 남는 금액: ", "Left after this partial refund: ")) (won(p.cancelable().won() - amount)) } }
            @if !raw_reason.trim().is_empty() { p.muted { (lang.t("사유: ", "Reason: ")) (raw_reason) } }
            form method="post" action={"/admin/payments/" (p.id) "/refund/confirm"} {
                input type="hidden" name="csrf" value=(a.csrf);
                input type="hidden" name="amount" value=(amount);
                input type="hidden" name="reason" value=(raw_reason);
                input type="hidden" name="expected_cancelable" value=(p.cancelable().won());
                div.row {
                    button.btn.btn-danger type="submit" { (lang.t("환불 확정", "Confirm refund")) }
                    a.btn.btn-light href={"/admin/payments/" (p.id)} { (lang.t("돌아가기", "Back")) }
                }
            }
        }
    };
    admin_page(
        lang,
        lang.t("환불 확인", "Confirm the refund"),
        Some(&a.csrf),
        body,
    )
}

async fn refund_do(
    State(s): State<AdminState>,
    a: Admin,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = csrf_refused(&s, &a, &form) {
        return r;
    }
    let lang = a.lang;
    let raw_amount = form.get("amount").cloned().unwrap_or_default();
    let raw_reason = form.get("reason").cloned().unwrap_or_default();
    let (amount, reason) = match refund_form(lang, &form) {
        Ok(v) => v,
        Err(msg) => return refund_error(&s, &a, &id, msg, (&raw_amount, &raw_reason)).await,
    };
    // The confirmation was for a balance; if another refund changed it meanwhile, ask again.
    if let (Some(expected), Ok(p)) = (
        form.get("expected_cancelable")
            .and_then(|e| e.parse::<i64>().ok()),
        s.services.payment(&id).await,
    ) && p.cancelable().won() != expected
    {
        let msg = lang.t(
            "확인하는 동안 환불 가능 금액이 바뀌었습니다. 다시 확인해 주세요.",
            "The refundable amount changed meanwhile; please check again.",
        );
        return refund_error(&s, &a, &id, msg, (&raw_amount, &raw_reason)).await;
    }
    match s
        .services
        .refund(
            &id,
            RefundInput {
                amount: Some(amount),
                tax_free: None,
                vat: None,
                reason,
            },
            // The confirmed balance above guards against a double submit.
            None,
        )
        .await
    {
        Ok(r) => {
            let done = if r.refund.status == "pending" {
                "pending"
            } else {
                "refunded"
            };
            Redirect::to(&format!("/admin/payments/{id}?done={done}")).into_response()
        }
        Err(e) => refund_error(&s, &a, &id, &e.to_string(), (&raw_amount, &raw_reason)).await,
    }
}

/// The payment page again, with the refund form's error (422).
async fn refund_error(
    s: &AdminState,
    a: &Admin,
    id: &str,
    msg: &str,
    values: (&str, &str),
) -> Response {
    match payment_markup(s, a, id, None, Some(msg), values).await {
        Ok(body) => {
            let mut r = admin_page(
                a.lang,
                a.lang.t("결제 상세", "Payment"),
                Some(&a.csrf),
                body,
            );
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            r
        }
        Err(r) => r,
    }
}

async fn sync(
    State(s): State<AdminState>,
    a: Admin,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = csrf_refused(&s, &a, &form) {
        return r;
    }
    match s.services.sync(&id).await {
        Ok(_) => Redirect::to(&format!("/admin/payments/{id}?done=synced")).into_response(),
        Err(e) => match payment_markup(
            &s,
            &a,
            &id,
            Some(html! { p.error role="alert" { (e.to_string()) } }),
            None,
            ("", ""),
        )
        .await
        {
            Ok(body) => admin_page(a.lang, "kpay", Some(&a.csrf), body),
            Err(r) => r,
        },
    }
}

async fn reconciliation_markup(s: &AdminState, a: &Admin, report: Option<Markup>) -> Markup {
    let lang = a.lang;
    let approving = s
        .services
        .store
        .list(&ListFilter {
            status: Some(PaymentStatus::Approving),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    let mismatched = s
        .services
        .store
        .list(&ListFilter {
            status: Some(PaymentStatus::Canceled),
            limit: 200,
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    let mismatched: Vec<_> = mismatched
        .into_iter()
        .filter(|p| p.failure_code.as_deref() == Some("amount_mismatch"))
        .collect();
    let last = s.services.store.last_run().await.ok().flatten();
    html! {
        h1 { (lang.t("대사 (Reconciliation)", "Reconciliation")) }
        @if let Some(r) = report { (r) }
        div.card {
            h2 { (lang.t("마지막 대사 실행", "Last reconciler run")) }
            @match &last {
                Some(r) => p { (display_time(r.finished_at)) " · " (lang.t("확인 ", "checked ")) (r.checked) " · " (lang.t("변경 ", "changed ")) (r.changed) " · " (lang.t("불일치 ", "mismatches ")) (r.mismatches) " · " (r.instance) },
                None => p.muted { (lang.t("아직 실행 기록이 없습니다.", "No run yet.")) },
            }
            p.muted { (lang.t("자동 대사 주기: ", "Automatic every ")) (s.reconcile_interval.as_secs()) (lang.t("초", " s")) }
            form method="post" action="/admin/reconcile" {
                input type="hidden" name="csrf" value=(a.csrf);
                button.btn.btn-dark type="submit" { (lang.t("지금 대사 실행", "Run now")) }
            }
        }
        div.card { h2 { (lang.t("승인 확인 중인 결제", "Payments being confirmed (approving)")) } (payment_rows(lang, &approving)) }
        div.card { h2 { (lang.t("금액 불일치로 취소된 결제", "Cancelled for amount mismatch")) } (payment_rows(lang, &mismatched)) }
    }
}

async fn reconciliation(State(s): State<AdminState>, a: Admin) -> Response {
    let body = reconciliation_markup(&s, &a, None).await;
    admin_page(
        a.lang,
        a.lang.t("대사", "Reconciliation"),
        Some(&a.csrf),
        body,
    )
}

async fn reconcile(
    State(s): State<AdminState>,
    a: Admin,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = csrf_refused(&s, &a, &form) {
        return r;
    }
    let lang = a.lang;
    let report = Reconciler::new(s.services.clone(), s.reconcile_interval)
        .full_report(Duration::from_secs(24 * 3600))
        .await;
    let summary = html! {
        div.card role="status" {
            h2 { (lang.t("대사 결과", "Result")) }
            p { (lang.t("확인 ", "Checked ")) (report.checked) " · " (lang.t("변경 ", "changed ")) (report.changed()) " · " (lang.t("불일치 ", "mismatches ")) (report.mismatches()) }
            ul {
                @for l in &report.lines {
                    li {
                        a href={"/admin/payments/" (l.id)} { code { (l.id) } } " "
                        @if let Some(c) = &l.change { (c) " " }
                        @if let Some(m) = &l.mismatch { strong { (lang.t("불일치: ", "MISMATCH: ")) } (m) }
                        @if let Some(e) = &l.error { span.muted { (e) } }
                    }
                }
            }
        }
    };
    let body = reconciliation_markup(&s, &a, Some(summary)).await;
    admin_page(lang, lang.t("대사", "Reconciliation"), Some(&a.csrf), body)
}
