//! Webhooks in the admin: the endpoints (add one — its secret shown once —, disable, enable,
//! rotate the secret, remove), an endpoint's latest deliveries, and an event's page with every
//! attempt (status, latency, error, first bytes of the answer) and "redeliver". Every change
//! is a CSRF-checked POST answered with a redirect (POST-redirect-GET); a new secret is shown
//! once on the page redirected to ([`OnceSecrets`]).

use super::{Admin, AdminState, CsrfForm, admin_page, csrf_refused, unavailable};
use crate::domain::{
    Destination, EndpointStatus, EventId, EventSelection, Timestamp, WebhookEndpoint,
    WebhookEndpointId,
};
use crate::service::ServiceError;
use crate::store::DeliveryRecord;
use crate::web::i18n::Lang;
use crate::web::layout::display_time;
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

fn endpoint_id(id: &str) -> Result<WebhookEndpointId, ServiceError> {
    WebhookEndpointId::parse(id).map_err(|_| ServiceError::NotFound(id.to_owned()))
}

fn event_id(id: &str) -> Result<EventId, ServiceError> {
    EventId::parse(id).map_err(|_| ServiceError::NotFound(id.to_owned()))
}

fn endpoint_badge(lang: Lang, e: &WebhookEndpoint) -> Markup {
    match e.status {
        EndpointStatus::Enabled if e.failing_since.is_some() => {
            html! { span.status.status-partially_canceled { (lang.t("실패 중", "failing")) } }
        }
        EndpointStatus::Enabled => {
            html! { span.status.status-approved { (lang.t("사용 중", "enabled")) } }
        }
        EndpointStatus::Disabled => {
            html! { span.status.status-failed { (lang.t("중지됨", "disabled")) } }
        }
    }
}

fn delivery_label(lang: Lang, d: &DeliveryRecord) -> &'static str {
    use crate::domain::DeliveryStatus;
    match d.status {
        DeliveryStatus::Pending => lang.t("재시도 대기", "pending"),
        DeliveryStatus::Succeeded => lang.t("전달됨", "delivered"),
        DeliveryStatus::Failed => lang.t("실패", "failed"),
    }
}

fn delivery_class(d: &DeliveryRecord) -> &'static str {
    use crate::domain::DeliveryStatus;
    match d.status {
        DeliveryStatus::Pending => "status-ready",
        DeliveryStatus::Succeeded => "status-approved",
        DeliveryStatus::Failed => "status-failed",
    }
}

/// The add form.
#[derive(Debug, Default, Deserialize)]
pub(super) struct AddForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    url: String,
    /// Comma or space separated event types; empty: all.
    #[serde(default)]
    events: String,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct DoneQuery {
    #[serde(default)]
    done: Option<String>,
    /// A secret to show once (created or rotated): its one-time token.
    #[serde(default)]
    secret: Option<String>,
}

/// A secret waiting to be shown, whether it replaced another, and since when it waits.
type Waiting = (kpay_webhooks::Secret, bool, std::time::Instant);

/// Secrets waiting to be shown once after a create or rotate (POST-redirect-GET: a refresh
/// neither creates another endpoint nor shows the secret again). Each is taken by its first
/// view, or dropped after ten minutes.
#[derive(Clone, Debug, Default)]
pub(crate) struct OnceSecrets(
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Waiting>>>,
);

/// How long a secret waits for its view.
const ONCE_TTL: std::time::Duration = std::time::Duration::from_secs(600);

impl OnceSecrets {
    fn put(&self, secret: kpay_webhooks::Secret, rotated: bool) -> String {
        let token = crate::service::token();
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, (_, _, at)| at.elapsed() < ONCE_TTL);
        map.insert(token.clone(), (secret, rotated, std::time::Instant::now()));
        token
    }

    fn take(&self, token: &str) -> Option<(kpay_webhooks::Secret, bool)> {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(token)
            .filter(|(_, _, at)| at.elapsed() < ONCE_TTL)
            .map(|(s, r, _)| (s, r))
    }
}

async fn list_markup(
    s: &AdminState,
    a: &Admin,
    notice: Option<Markup>,
    error: Option<String>,
    form: &AddForm,
) -> Result<Markup, ServiceError> {
    let lang = a.lang;
    let endpoints = s.services.endpoints().await?;
    Ok(html! {
        h1 { (lang.t("웹훅", "Webhooks")) }
        @if let Some(n) = notice { (n) }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        div.card { table {
            thead { tr {
                th scope="col" { "URL" }
                th scope="col" { (lang.t("이벤트", "Events")) }
                th scope="col" { (lang.t("상태", "Status")) }
                th scope="col" { (lang.t("작업", "Actions")) }
            } }
            tbody {
                @for e in &endpoints {
                    tr {
                        td { a href={"/admin/webhooks/" (e.id)} { code { (e.url.as_str()) } } @if let Some(d) = &e.description { br; span.muted { (d) } } }
                        td { (e.events.names().join(", ")) }
                        td {
                            (endpoint_badge(lang, e))
                            @if let Some(r) = &e.disabled_reason { br; span.muted { (r) } }
                            @if let Some(f) = e.failing_since { br; span.muted { (lang.t("실패 시작 ", "failing since ")) (display_time(f)) } }
                        }
                        td { (actions(lang, a, e)) }
                    }
                }
                @if endpoints.is_empty() { tr { td colspan="4" { (lang.t("등록된 엔드포인트가 없습니다.", "No endpoint yet.")) } } }
            }
        } }
        div.card {
            h2 { (lang.t("엔드포인트 추가", "Add an endpoint")) }
            form method="post" action="/admin/webhooks" {
                input type="hidden" name="csrf" value=(a.csrf);
                label for="url" { "URL" }
                input #url type="url" name="url" value=(form.url) required placeholder="https://example.com/hooks/kakaopay";
                label for="events" { (lang.t("이벤트 (쉼표로 구분, 비우면 전체)", "Events (comma separated; empty: all)")) }
                input #events type="text" name="events" value=(form.events) placeholder="payment.approved, refund.succeeded";
                label for="description" { (lang.t("설명", "Description")) }
                input #description type="text" name="description" value=(form.description) maxlength="500";
                p { button.btn.btn-dark type="submit" { (lang.t("추가", "Add")) } }
            }
        }
    })
}

fn actions(lang: Lang, a: &Admin, e: &WebhookEndpoint) -> Markup {
    let post = |what: &str, label: &str| {
        html! {
            form method="post" action={"/admin/webhooks/" (e.id) "/" (what)} style="display:inline" {
                input type="hidden" name="csrf" value=(a.csrf);
                button.btn type="submit" { (label) }
            }
            " "
        }
    };
    html! {
        @if e.status == EndpointStatus::Enabled { (post("disable", lang.t("중지", "Disable"))) } @else { (post("enable", lang.t("다시 사용", "Enable"))) }
        (post("rotate", lang.t("비밀 키 교체", "Rotate secret")))
        (post("delete", lang.t("삭제", "Remove")))
    }
}

fn secret_notice(lang: Lang, secret: &kpay_webhooks::Secret, rotated: bool) -> Markup {
    html! {
        div.card role="status" {
            h2 { @if rotated { (lang.t("새 서명 비밀 키", "New signing secret")) } @else { (lang.t("엔드포인트가 추가되었습니다", "Endpoint added")) } }
            p { (lang.t("서명 비밀 키는 지금 한 번만 표시됩니다. 수신 서버에 저장하세요:", "The signing secret is shown only now. Keep it on your receiver:")) }
            p { code #secret { (secret.expose()) } }
            @if rotated { p.muted { (lang.t("이전 키도 24시간 동안 함께 서명합니다.", "The previous secret keeps signing alongside for 24 hours.")) } }
        }
    }
}

pub(super) async fn list(
    State(s): State<AdminState>,
    a: Admin,
    Query(q): Query<DoneQuery>,
) -> Response {
    let lang = a.lang;
    if let Some((secret, rotated)) = q.secret.as_deref().and_then(|t| s.once.take(t)) {
        let notice = secret_notice(lang, &secret, rotated);
        return match list_markup(&s, &a, Some(notice), None, &AddForm::default()).await {
            Ok(body) => admin_page(lang, lang.t("웹훅", "Webhooks"), Some(&a.csrf), body),
            Err(e) => unavailable(lang, &a, &e),
        };
    }
    let notice = q.done.as_deref().map(|d| {
        let text = match d {
            "disabled" => lang.t("중지했습니다", "Disabled"),
            "enabled" => lang.t("다시 사용합니다", "Enabled"),
            "deleted" => lang.t("삭제했습니다", "Removed"),
            _ => lang.t("완료했습니다", "Done"),
        };
        html! { p.ok role="status" { (text) } }
    });
    match list_markup(&s, &a, notice, None, &AddForm::default()).await {
        Ok(body) => admin_page(lang, lang.t("웹훅", "Webhooks"), Some(&a.csrf), body),
        Err(e) => unavailable(lang, &a, &e),
    }
}

pub(super) async fn add(
    State(s): State<AdminState>,
    a: Admin,
    Form(form): Form<AddForm>,
) -> Response {
    if let Some(r) = csrf_refused(&s, &a, &form.csrf) {
        return r;
    }
    let lang = a.lang;
    let created = async {
        let url =
            Destination::parse(form.url.trim(), s.services.webhooks_local()).map_err(|e| {
                ServiceError::Invalid {
                    field: "url",
                    message: e.to_string(),
                }
            })?;
        let names: Vec<&str> = form
            .events
            .split([',', ' '])
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        let events = if names.is_empty() {
            EventSelection::All
        } else {
            EventSelection::parse(&names).map_err(|m| ServiceError::Invalid {
                field: "events",
                message: m,
            })?
        };
        let description = Some(form.description.trim().to_owned()).filter(|d| {
            !d.is_empty() && d.chars().count() <= 500 && !d.chars().any(char::is_control)
        });
        s.services.create_endpoint(url, events, description).await
    }
    .await;
    let error = match created {
        Ok((_, secret)) => {
            let token = s.once.put(secret, false);
            return Redirect::to(&format!("/admin/webhooks?secret={token}")).into_response();
        }
        Err(e) => e.to_string(),
    };
    match list_markup(&s, &a, None, Some(error), &form).await {
        Ok(body) => admin_page(lang, lang.t("웹훅", "Webhooks"), Some(&a.csrf), body),
        Err(e) => unavailable(lang, &a, &e),
    }
}

/// Disable, enable, rotate or remove an endpoint.
pub(super) async fn act(
    State(s): State<AdminState>,
    a: Admin,
    Path((id, what)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(r) = csrf_refused(&s, &a, &form.csrf) {
        return r;
    }
    let lang = a.lang;
    let id = match endpoint_id(&id) {
        Ok(id) => id,
        Err(e) => return unavailable(lang, &a, &e),
    };
    let done = match what.as_str() {
        "disable" => s
            .services
            .set_endpoint_enabled(&id, false)
            .await
            .map(|_| "disabled"),
        "enable" => s
            .services
            .set_endpoint_enabled(&id, true)
            .await
            .map(|_| "enabled"),
        "delete" => s.services.delete_endpoint(&id).await.map(|()| "deleted"),
        "rotate" => {
            return match s.services.rotate_endpoint_secret(&id).await {
                Ok((_, secret)) => {
                    let token = s.once.put(secret, true);
                    Redirect::to(&format!("/admin/webhooks?secret={token}")).into_response()
                }
                Err(e) => unavailable(lang, &a, &e),
            };
        }
        _ => Err(ServiceError::NotFound(what.clone())),
    };
    match done {
        Ok(d) => Redirect::to(&format!("/admin/webhooks?done={d}")).into_response(),
        Err(e) => match list_markup(&s, &a, None, Some(e.to_string()), &AddForm::default()).await {
            Ok(body) => admin_page(lang, lang.t("웹훅", "Webhooks"), Some(&a.csrf), body),
            Err(e) => unavailable(lang, &a, &e),
        },
    }
}

fn deliveries_table(lang: Lang, list: &[DeliveryRecord], by_event: bool) -> Markup {
    html! {
        table {
            thead { tr {
                th scope="col" { @if by_event { (lang.t("엔드포인트", "Endpoint")) } @else { (lang.t("이벤트", "Event")) } }
                th scope="col" { (lang.t("상태", "Status")) }
                th.num scope="col" { (lang.t("시도", "Attempts")) }
                th scope="col" { (lang.t("마지막 결과", "Last result")) }
                th scope="col" { (lang.t("다음 시도", "Next attempt")) }
            } }
            tbody {
                @for d in list {
                    tr {
                        td { @if by_event { a href={"/admin/webhooks/" (d.endpoint_id)} { code { (d.endpoint_id) } } } @else { a href={"/admin/events/" (d.event_id)} { code { (d.event_id) } } } }
                        td { span class={"status " (delivery_class(d))} { (delivery_label(lang, d)) } }
                        td.num { (d.attempts) }
                        td { @if let Some(c) = d.last_status_code { code { (c) } " " } @if let Some(e) = &d.last_error { span.muted { (e) } } }
                        td { (d.next_attempt_at.map(display_time).unwrap_or_else(|| "—".into())) }
                    }
                }
                @if list.is_empty() { tr { td colspan="5" { (lang.t("전달 기록이 없습니다.", "No delivery yet.")) } } }
            }
        }
    }
}

pub(super) async fn endpoint(
    State(s): State<AdminState>,
    a: Admin,
    Path(id): Path<String>,
) -> Response {
    let lang = a.lang;
    let body = async {
        let id = endpoint_id(&id)?;
        let e = s.services.endpoint(&id).await?;
        let list = s.services.endpoint_deliveries(&id, 100).await?;
        Ok::<_, ServiceError>(html! {
            h1 { (lang.t("엔드포인트 ", "Endpoint ")) code { (e.id) } " " (endpoint_badge(lang, &e)) }
            div.card {
                dl {
                    dt { "URL" } dd { code { (e.url.as_str()) } }
                    dt { (lang.t("이벤트", "Events")) } dd { (e.events.names().join(", ")) }
                    @if let Some(d) = &e.description { dt { (lang.t("설명", "Description")) } dd { (d) } }
                    @if let Some(r) = &e.disabled_reason { dt { (lang.t("중지 사유", "Disabled because")) } dd { (r) } }
                    @if let Some(f) = e.failing_since { dt { (lang.t("실패 시작", "Failing since")) } dd { (display_time(f)) (lang.t(" (5일 동안 실패하면 중지)", " (disabled after 5 days)")) } }
                    @if let Some((_, until)) = &e.previous_secret { dt { (lang.t("이전 키 서명 종료", "Previous secret signs until")) } dd { (display_time(*until)) } }
                    dt { (lang.t("생성", "Created")) } dd { (display_time(e.created_at)) }
                }
                p { (actions(lang, &a, &e)) }
            }
            div.card {
                h2 { (lang.t("최근 전달 (최대 100건)", "Latest deliveries (up to 100)")) }
                (deliveries_table(lang, &list, false))
            }
        })
    }
    .await;
    match body {
        Ok(body) => admin_page(lang, lang.t("웹훅", "Webhooks"), Some(&a.csrf), body),
        Err(e) => unavailable(lang, &a, &e),
    }
}

pub(super) async fn event(
    State(s): State<AdminState>,
    a: Admin,
    Path(id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Response {
    let lang = a.lang;
    let body = async {
        let id = event_id(&id)?;
        let e = s.services.feed_event(&id).await?;
        let list = s.services.event_deliveries(&id).await?;
        let pretty = serde_json::from_str::<serde_json::Value>(&e.to_json())
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_default();
        Ok::<_, ServiceError>(html! {
            h1 { (lang.t("이벤트 ", "Event ")) code { (e.id) } }
            @if q.done.as_deref() == Some("redeliver") { p.ok role="status" { (lang.t("다시 보내는 중입니다", "Sending again")) } }
            div.card {
                dl {
                    dt { (lang.t("종류", "Type")) } dd { code { (e.kind.to_string()) } }
                    dt { (lang.t("대상", "Object")) } dd { code { (e.object_id) } " v" (e.object_version) }
                    dt { (lang.t("발생", "Happened")) } dd { (display_time(e.created_at)) }
                }
                form method="post" action={"/admin/events/" (e.id) "/redeliver"} {
                    input type="hidden" name="csrf" value=(a.csrf);
                    button.btn type="submit" { (lang.t("다시 보내기", "Redeliver")) }
                }
            }
            div.card {
                h2 { (lang.t("전달", "Deliveries")) }
                (deliveries_table(lang, &list, true))
                @for d in &list {
                    h3 { code { (d.endpoint_id) } }
                    ol { @for h in &d.history {
                        li {
                            (Timestamp::from_millis(h.started_at).map(display_time).unwrap_or_default())
                            " · #" (h.attempt) " · "
                            @if let Some(c) = h.status_code { code { (c) } } @else { (lang.t("응답 없음", "no answer")) }
                            " · " (h.latency_ms) " ms"
                            @if let Some(err) = &h.error { " · " span.muted { (err) } }
                            @if let Some(r) = &h.response { br; code.muted { (r.chars().take(200).collect::<String>()) } }
                        }
                    } }
                }
            }
            div.card { h2 { (lang.t("본문", "Body")) } pre { (pretty) } }
        })
    }
    .await;
    match body {
        Ok(body) => admin_page(lang, lang.t("웹훅", "Webhooks"), Some(&a.csrf), body),
        Err(e) => unavailable(lang, &a, &e),
    }
}

pub(super) async fn redeliver(
    State(s): State<AdminState>,
    a: Admin,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(r) = csrf_refused(&s, &a, &form.csrf) {
        return r;
    }
    let done = match event_id(&id) {
        Ok(eid) => s.services.redeliver(&eid).await.map(|_| eid),
        Err(e) => Err(e),
    };
    match done {
        Ok(eid) => Redirect::to(&format!("/admin/events/{eid}?done=redeliver")).into_response(),
        Err(e) => unavailable(a.lang, &a, &e),
    }
}
