//! Subscriptions in the admin: a list (status filter, search by subscription id or buyer) and a
//! subscription's page (plan, periods, every charge attempt with KakaoPay's codes, next charge,
//! dunning, its log; cancel now or at the period's end, each behind a confirmation; the charges'
//! payments link to their pages, where they are refunded).

use super::{Admin, AdminState, CsrfForm, admin_page, unavailable};
use crate::domain::{ChargeStatus, Subscription, SubscriptionStatus};
use crate::http::subscriptions::{SubscriptionQuery, subscription_filter};
use crate::service::subscription_id;
use crate::web::i18n::Lang;
use crate::web::layout::display_time;
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

fn status_label(lang: Lang, s: SubscriptionStatus) -> &'static str {
    match s {
        SubscriptionStatus::Incomplete => lang.t("등록 대기", "incomplete"),
        SubscriptionStatus::IncompleteExpired => lang.t("등록 만료", "incomplete_expired"),
        SubscriptionStatus::Active => lang.t("이용 중", "active"),
        SubscriptionStatus::PastDue => lang.t("결제 재시도 중", "past_due"),
        SubscriptionStatus::Unpaid => lang.t("미납", "unpaid"),
        SubscriptionStatus::Canceled => lang.t("해지", "canceled"),
    }
}

use crate::web::layout::won;

/// The list's query.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListForm {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

pub(super) async fn list(
    State(s): State<AdminState>,
    a: Admin,
    Query(f): Query<ListForm>,
) -> Response {
    let lang = a.lang;
    let query = SubscriptionQuery {
        status: f.status.clone(),
        limit: Some(50),
        cursor: f.cursor.clone(),
        q: f.q.clone(),
    };
    let filter = match subscription_filter(&query) {
        Ok(f) => f,
        Err(e) => {
            let body = html! { div.card { p.error role="alert" { (e.message) } } };
            return admin_page(lang, "kpay", Some(&a.csrf), body);
        }
    };
    let page = match s.services.subscriptions(&filter).await {
        Ok(p) => p,
        Err(e) => return unavailable(lang, &a, &e),
    };
    let body = html! {
        h1 { (lang.t("정기 결제", "Subscriptions")) }
        form.card method="get" action="/admin/subscriptions" {
            label { (lang.t("상태 ", "Status ")) select name="status" {
                option value="" { (lang.t("전체", "all")) }
                @for st in <SubscriptionStatus as strum::VariantArray>::VARIANTS {
                    option value=(st.to_string()) selected[f.status.as_deref() == Some(<&str>::from(*st))] { (status_label(lang, *st)) }
                }
            } }
            " "
            label { (lang.t("검색 ", "Search ")) input type="search" name="q" value=(f.q.clone().unwrap_or_default()) placeholder=(lang.t("구독 ID 또는 회원 ID", "subscription id or user id")); }
            " " button.btn type="submit" { (lang.t("조회", "Filter")) }
        }
        div.card { table {
            thead { tr {
                th scope="col" { (lang.t("생성", "Created")) }
                th scope="col" { (lang.t("구독", "Subscription")) }
                th scope="col" { (lang.t("회원", "User")) }
                th scope="col" class="hide-sm" { (lang.t("상품", "Item")) }
                th.num scope="col" { (lang.t("금액", "Amount")) }
                th scope="col" { (lang.t("다음 결제", "Next charge")) }
                th scope="col" { (lang.t("상태", "Status")) }
            } }
            tbody {
                @for sub in &page.subscriptions {
                    tr {
                        td { (display_time(sub.created_at).get(5..16).unwrap_or_default()) }
                        td { a href={"/admin/subscriptions/" (sub.id)} { code { (sub.id) } } }
                        td { (sub.partner_user_id.as_str()) }
                        td.hide-sm { (sub.item_name.as_str()) }
                        td.num { (won(sub.amounts.total.won())) }
                        td { (next_charge(sub).map(display_time).unwrap_or_else(|| "—".into())) }
                        td { span.badge { (status_label(lang, sub.status)) } }
                    }
                }
                @if page.subscriptions.is_empty() { tr { td colspan="7" { (lang.t("조건에 맞는 구독이 없습니다.", "No subscriptions match.")) } } }
            }
        } }
        @if let Some((at, id)) = &page.next {
            p { a href={"/admin/subscriptions?status=" (f.status.clone().unwrap_or_default()) "&q=" (f.q.clone().unwrap_or_default()) "&cursor=" (at.millis()) "_" (id)} { (lang.t("다음 페이지 →", "Next page →")) } }
        }
    };
    admin_page(
        lang,
        lang.t("정기 결제", "Subscriptions"),
        Some(&a.csrf),
        body,
    )
}

fn next_charge(s: &Subscription) -> Option<crate::domain::Timestamp> {
    matches!(
        s.status,
        SubscriptionStatus::Active | SubscriptionStatus::PastDue
    )
    .then_some(s.next_charge_at)
    .flatten()
    .filter(|_| !s.cancel_at_period_end)
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct PageQuery {
    #[serde(default)]
    confirm: Option<String>,
    #[serde(default)]
    done: Option<String>,
}

pub(super) async fn page(
    State(s): State<AdminState>,
    a: Admin,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    match page_markup(&s, &a, &id, &q, None).await {
        Ok(body) => admin_page(a.lang, "kpay", Some(&a.csrf), body),
        Err(e) => unavailable(a.lang, &a, &e),
    }
}

async fn page_markup(
    s: &AdminState,
    a: &Admin,
    id: &str,
    q: &PageQuery,
    error: Option<String>,
) -> Result<Markup, crate::service::ServiceError> {
    let lang = a.lang;
    let sid = subscription_id(id)?;
    let sub = s.services.subscription(&sid).await?;
    let charges = s.services.charges(&sid).await?;
    let log = s.services.subscription_log(&sid).await?;
    let current = sub.current_period();
    let cancellable = !sub.status.is_final();
    Ok(html! {
        h1 { (lang.t("정기 결제 ", "Subscription ")) code { (sub.id) } " " span.badge { (status_label(lang, sub.status)) } }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        @match q.done.as_deref() {
            Some("canceled") => p.ok role="status" { (lang.t("해지되었습니다", "Canceled")) },
            Some("synced") => p.ok role="status" { (lang.t("카카오페이 상태를 조회했습니다", "Synced with KakaoPay")) },
            _ => {},
        }
        div.card {
            h2 { (lang.t("요금제", "Plan")) }
            dl {
                dt { (lang.t("회원", "User")) } dd { (sub.partner_user_id.as_str()) }
                dt { (lang.t("상품", "Item")) } dd { (sub.item_name.as_str()) }
                dt { (lang.t("금액", "Amount")) } dd { (won(sub.amounts.total.won())) " / " (sub.cadence.count()) (interval_label(lang, sub.cadence.interval())) }
                @if sub.trial_days > 0 { dt { (lang.t("무료 체험", "Trial")) } dd { (sub.trial_days) (lang.t("일", " days")) } }
                dt { (lang.t("기준 시각 (KST)", "Billing anchor (KST)")) } dd { (sub.billing_anchor.map(display_time).unwrap_or_else(|| "—".into())) }
                dt { (lang.t("현재 기간", "Current period")) } dd { @if let Some((a0, a1)) = current { (display_time(a0)) " – " (display_time(a1)) } @else { "—" } }
                dt { (lang.t("다음 결제", "Next charge")) } dd { (next_charge(&sub).map(display_time).unwrap_or_else(|| "—".into())) }
                @if sub.status == SubscriptionStatus::PastDue { dt { (lang.t("재시도", "Dunning")) } dd { (lang.t("첫 실패 ", "first failure ")) (sub.dunning_started_at.map(display_time).unwrap_or_default()) " · " (sub.dunning_retries) (lang.t("회 재시도", " retries made")) } }
                @if sub.cancel_at_period_end { dt { (lang.t("해지 예약", "Ends")) } dd { (lang.t("이번 기간이 끝나면 해지", "at the end of the current period")) } }
                @if let Some(at) = sub.canceled_at { dt { (lang.t("해지", "Canceled")) } dd { (display_time(at)) " · " (sub.cancel_reason.clone().unwrap_or_default()) } }
                dt { "SID" } dd { @if let Some(l) = &sub.sid_last4 { "••••" (l) } @else { "—" } }
            }
            @if cancellable {
                @match q.confirm.as_deref() {
                    Some(which @ ("now" | "period_end")) => {
                        form method="post" action={"/admin/subscriptions/" (sub.id) "/cancel"} {
                            input type="hidden" name="csrf" value=(a.csrf);
                            input type="hidden" name="when" value=(which);
                            p { strong { @if which == "now" { (lang.t("지금 해지하면 카카오페이의 SID가 즉시 비활성화되며 되돌릴 수 없습니다.", "Canceling now inactivates the SID at KakaoPay at once; it cannot be undone.")) } @else { (lang.t("이번 기간이 끝나면 결제하지 않고 해지합니다.", "It ends at the current period's end without charging it.")) } } }
                            button.btn.btn-dark type="submit" { (lang.t("해지 확인", "Confirm cancel")) }
                            " " a href={"/admin/subscriptions/" (sub.id)} { (lang.t("취소", "Back")) }
                        }
                    }
                    _ => {
                        p {
                            a.btn href={"/admin/subscriptions/" (sub.id) "?confirm=now"} { (lang.t("지금 해지", "Cancel now")) } " "
                            @if !sub.cancel_at_period_end && matches!(sub.status, SubscriptionStatus::Active | SubscriptionStatus::PastDue) {
                                a.btn href={"/admin/subscriptions/" (sub.id) "?confirm=period_end"} { (lang.t("기간 종료 시 해지", "Cancel at period end")) }
                            }
                        }
                    }
                }
            }
            form method="post" action={"/admin/subscriptions/" (sub.id) "/sync"} {
                input type="hidden" name="csrf" value=(a.csrf);
                button.btn type="submit" { (lang.t("카카오페이 상태 조회", "Sync with KakaoPay")) }
            }
        }
        div.card {
            h2 { (lang.t("결제 시도", "Charge attempts")) }
            table {
                thead { tr {
                    th scope="col" { (lang.t("시도 시각", "Attempted")) }
                    th scope="col" { (lang.t("종류", "Kind")) }
                    th.num scope="col" { (lang.t("기간", "Period")) }
                    th.num scope="col" { (lang.t("금액", "Amount")) }
                    th scope="col" { (lang.t("결과", "Outcome")) }
                    th scope="col" { (lang.t("결제 (환불)", "Payment (refund)")) }
                } }
                tbody {
                    @for c in &charges {
                        tr {
                            td { (display_time(c.attempted_at)) }
                            td { (c.kind.to_string()) " #" (c.attempt) }
                            td.num { (c.period.map(|p| p.to_string()).unwrap_or_else(|| "—".into())) }
                            td.num { (won(c.amounts.total.won())) }
                            td {
                                span.badge { (charge_label(lang, c.status)) }
                                @if let Some(code) = c.kakaopay_code { " " code { (code) } }
                                @if let Some(m) = &c.message { br; span.muted { (m) } }
                            }
                            td { @if let Some(p) = &c.payment_id { a href={"/admin/payments/" (p)} { code { (p) } } } @else { "—" } }
                        }
                    }
                    @if charges.is_empty() { tr { td colspan="6" { (lang.t("아직 결제가 없습니다.", "No charge yet.")) } } }
                }
            }
        }
        div.card {
            h2 { (lang.t("변경 기록", "Log")) }
            ul { @for l in &log { li { (display_time(l.at)) " · " code { (l.cause.to_string()) } " → " (status_label(lang, l.to)) @if let Some(t) = &l.detail.text { " · " span.muted { (t) } } } } }
        }
    })
}

fn interval_label(lang: Lang, i: crate::domain::Interval) -> &'static str {
    use crate::domain::Interval;
    match i {
        Interval::Day => lang.t("일", " day(s)"),
        Interval::Week => lang.t("주", " week(s)"),
        Interval::Month => lang.t("개월", " month(s)"),
        Interval::Year => lang.t("년", " year(s)"),
    }
}

fn charge_label(lang: Lang, s: ChargeStatus) -> &'static str {
    match s {
        ChargeStatus::Pending => lang.t("진행 중", "pending"),
        ChargeStatus::Succeeded => lang.t("성공", "succeeded"),
        ChargeStatus::Failed => lang.t("실패", "failed"),
        ChargeStatus::Unknown => lang.t("확인 필요", "unknown"),
    }
}

/// The cancel form.
#[derive(Debug, Deserialize)]
pub(super) struct CancelForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    when: String,
}

pub(super) async fn cancel(
    State(s): State<AdminState>,
    a: Admin,
    Path(id): Path<String>,
    Form(form): Form<CancelForm>,
) -> Response {
    if let Some(r) = super::csrf_refused(&s, &a, &form.csrf) {
        return r;
    }
    let at_end = form.when == "period_end";
    let done = match subscription_id(&id) {
        Ok(sid) => s
            .services
            .cancel_subscription(&sid, at_end)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    finish(&s, &a, &id, done, "canceled").await
}

pub(super) async fn sync(
    State(s): State<AdminState>,
    a: Admin,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(r) = super::csrf_refused(&s, &a, &form.csrf) {
        return r;
    }
    let done = match subscription_id(&id) {
        Ok(sid) => s.services.sync_subscription(&sid).await.map(|_| ()),
        Err(e) => Err(e),
    };
    finish(&s, &a, &id, done, "synced").await
}

async fn finish(
    s: &AdminState,
    a: &Admin,
    id: &str,
    done: Result<(), crate::service::ServiceError>,
    what: &'static str,
) -> Response {
    match done {
        // The id was parsed as a subscription id (ASCII) before anything was done.
        Ok(()) => Redirect::to(&format!("/admin/subscriptions/{id}?done={what}")).into_response(),
        Err(e) => match page_markup(s, a, id, &PageQuery::default(), Some(e.to_string())).await {
            Ok(body) => admin_page(a.lang, "kpay", Some(&a.csrf), body),
            Err(e) => unavailable(a.lang, a, &e),
        },
    }
}

/// Open charges for the reconciliation page.
pub(super) async fn open_charges_card(s: &AdminState, lang: Lang) -> Markup {
    match s.services.open_charges().await {
        Ok(list) => html! {
            div.card {
                h2 { (lang.t("확인이 필요한 정기 결제", "Subscription charges to decide (pending or unknown)")) }
                p.muted { (lang.t("응답을 받지 못한 결제는 카카오페이의 구독 상태로 판정합니다. 판정할 수 없는 것은 여기에 남습니다.", "A charge whose answer was lost is judged by KakaoPay's subscription status; what cannot be judged stays here.")) }
                ul {
                    @for c in &list {
                        li { a href={"/admin/subscriptions/" (c.subscription_id)} { code { (c.subscription_id) } } " · " (display_time(c.attempted_at)) " · " (won(c.amounts.total.won())) " · " (charge_label(lang, c.status)) @if let Some(m) = &c.message { " · " span.muted { (m) } } }
                    }
                    @if list.is_empty() { li { (lang.t("없음", "None")) } }
                }
            }
        },
        Err(e) => html! { p.error role="alert" { (e.to_string()) } },
    }
}
