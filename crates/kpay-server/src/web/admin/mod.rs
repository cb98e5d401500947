//! The back office at `/admin`: log in with the admin password (or the API key), find payments,
//! read their history, refund them with a confirmation step, watch reconciliation, manage webhook
//! endpoints and their deliveries. One file per page ([`dashboard`], [`payments`], [`refund`],
//! [`reconcile`], [`subscriptions`], [`webhooks`]); what they show comes from the
//! services, and the rules behind it from the domain.
//! Sessions are signed HttpOnly SameSite=Strict cookies; every form carries a CSRF token.

mod dashboard;
mod payments;
mod reconcile;
mod refund;
mod subscriptions;
mod webhooks;

pub(crate) use reconcile::ManualRun;

use super::i18n::{Lang, cookie};
use super::layout::{display_time, page, won};
use super::session::{COOKIE, SESSION_SECONDS, Sessions};
use crate::domain::{Payment, PaymentStatus};
use crate::service::Services;
use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// What the dashboard needs.
#[derive(Clone)]
pub(crate) struct AdminState {
    /// The reconciliation started from the page, if any (its progress and result).
    pub(crate) manual_run: reconcile::ManualRun,
    /// The use cases.
    pub(crate) services: Services,
    /// Session signing.
    pub(crate) sessions: Sessions,
    /// The login secret.
    pub(crate) secret: Arc<SecretString>,
    /// Reconciler interval (for the view).
    pub(crate) reconcile_interval: Duration,
    /// Whether cookies get `Secure` (public URL is https).
    pub(crate) secure_cookies: bool,
    /// Webhook secrets to show once.
    pub(crate) once: webhooks::OnceSecrets,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminState")
    }
}

/// The dashboard's routes.
pub(crate) fn routes(state: AdminState) -> Router {
    Router::new()
        .route("/admin/login", get(login_page).post(login))
        .route("/admin/logout", post(logout))
        .route("/admin", get(dashboard::dashboard))
        .route("/admin/payments", get(payments::payments))
        .route("/admin/payments/{id}", get(payments::payment))
        .route("/admin/payments/{id}/refund", post(refund::refund_confirm))
        .route(
            "/admin/payments/{id}/refund/confirm",
            post(refund::refund_do),
        )
        .route("/admin/payments/{id}/sync", post(payments::sync))
        .route("/admin/subscriptions", get(subscriptions::list))
        .route("/admin/subscriptions/{id}", get(subscriptions::page))
        .route(
            "/admin/subscriptions/{id}/cancel",
            post(subscriptions::cancel),
        )
        .route("/admin/subscriptions/{id}/sync", post(subscriptions::sync))
        .route("/admin/webhooks", get(webhooks::list).post(webhooks::add))
        .route("/admin/webhooks/{id}", get(webhooks::endpoint))
        .route("/admin/webhooks/{id}/{what}", post(webhooks::act))
        .route("/admin/events/{id}", get(webhooks::event))
        .route("/admin/events/{id}/redeliver", post(webhooks::redeliver))
        .route("/admin/reconciliation", get(reconcile::reconciliation))
        .route("/admin/reconcile", post(reconcile::reconcile))
        .with_state(state)
}

/// A logged-in request: its language and CSRF token.
pub(super) struct Admin {
    lang: Lang,
    csrf: String,
    nonce: String,
}

/// Seconds since the epoch by the machine's clock: sessions are people's time, not the test
/// clock's (moving it must not log the operator out).
fn now_s() -> i64 {
    crate::domain::Timestamp::now().millis() / 1000
}

/// A form that carries only the CSRF token (log out, sync, run now).
#[derive(Debug, Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// The login form.
#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    password: String,
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
fn csrf_refused(s: &AdminState, a: &Admin, token: &str) -> Option<Response> {
    match token {
        t if s.sessions.check_csrf(&a.nonce, t) => None,
        _ => Some((StatusCode::FORBIDDEN, Html("<!doctype html><html lang=\"ko\"><meta charset=\"utf-8\"><title>403</title><p>요청이 만료되었습니다. 페이지를 새로 고쳐 주세요. (CSRF)</p></html>")).into_response()),
    }
}

fn admin_page(lang: Lang, title: &str, csrf: Option<&str>, body: Markup) -> Response {
    let brand = html! { a href="/admin" { "kpay " (lang.t("관리자", "admin")) } };
    let nav = html! {
        @if let Some(csrf) = csrf {
            a href="/admin" { (lang.t("대시보드", "Dashboard")) }
            a href="/admin/payments" { (lang.t("결제 내역", "Payments")) }
            a href="/admin/subscriptions" { (lang.t("정기 결제", "Subscriptions")) }
            a href="/admin/webhooks" { (lang.t("웹훅", "Webhooks")) }
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
pub(super) struct LangQuery {
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
    Form(form): Form<LoginForm>,
) -> Response {
    use subtle::ConstantTimeEq;
    let lang = Lang::of(&headers, None);
    let equal: bool = form
        .password
        .as_bytes()
        .ct_eq(s.secret.expose_secret().as_bytes())
        .into();
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

async fn logout(State(s): State<AdminState>, a: Admin, Form(form): Form<CsrfForm>) -> Response {
    if let Some(r) = csrf_refused(&s, &a, &form.csrf) {
        return r;
    }
    let mut resp = Redirect::to("/admin/login").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("kpay_admin=; Path=/admin; Max-Age=0; HttpOnly; SameSite=Strict"),
    );
    resp
}

fn status_badge(lang: Lang, status: PaymentStatus) -> Markup {
    html! { span class={"status status-" (status.as_str())} { (status_label(lang, status)) } }
}

fn status_label(lang: Lang, status: PaymentStatus) -> &'static str {
    match status {
        PaymentStatus::Ready => lang.t("결제 대기", "ready"),
        PaymentStatus::Approving => lang.t("승인 확인 중", "approving"),
        PaymentStatus::Approved => lang.t("결제 완료", "approved"),
        PaymentStatus::PartiallyCanceled => lang.t("부분 취소", "partially canceled"),
        PaymentStatus::Canceled => lang.t("취소 완료", "canceled"),
        PaymentStatus::Quit => lang.t("구매자 취소", "quit"),
        PaymentStatus::Failed => lang.t("실패", "failed"),
        PaymentStatus::Expired => lang.t("만료", "expired"),
    }
}

fn payment_rows(lang: Lang, rows: &[Payment]) -> Markup {
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
                        td { a href={"/admin/payments/" (p.id)} { (p.partner_order_id.as_str()) } }
                        td.hide-sm { (p.item_name.as_str()) }
                        td.num { (won(p.amounts.total.won())) }
                        td { (status_badge(lang, p.status)) }
                    }
                }
                @if rows.is_empty() { tr { td colspan="5" { (lang.t("조건에 맞는 결제가 없습니다.", "No payments match.")) } } }
            }
        }
    }
}

/// The page for a failure to read what a page shows (the database is down): 503, never zeros.
fn unavailable(lang: Lang, a: &Admin, e: &crate::service::ServiceError) -> Response {
    tracing::error!(error = %e, "admin page could not be read");
    let mut r = admin_page(
        lang,
        "503",
        Some(&a.csrf),
        html! { div.card { h1 { (lang.t("잠시 후 다시 시도해 주세요", "Please try again shortly")) } p { (e.to_string()) } } },
    );
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    r
}
