//! The payments list (status, dates, search, paging) and one payment's page (amounts, refunds,
//! timeline, the refund form, a lookup at KakaoPay).

use super::{Admin, AdminState, CsrfForm, admin_page, payment_rows, status_badge, status_label};
use crate::domain::{PaymentStatus, RefundStatus};
use crate::http::api::{ListQuery, list_filter};
use crate::service::{ServiceError, payment_id};
use crate::web::layout::{display_time, won};
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub(super) struct AdminListQuery {
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

pub(super) async fn payments(
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
        Ok(f) => match s.services.payments(&f).await {
            Ok(page) => (
                page.payments,
                page.next.map(|(at, id)| format!("{}_{id}", at.millis())),
                None,
            ),
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
                            option value=(st.as_str()) selected[q.status.as_deref().and_then(PaymentStatus::parse) == Some(st)] { (status_label(lang, st)) }
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
pub(super) struct PaymentQuery {
    #[serde(default)]
    done: Option<String>,
}

pub(super) async fn payment_markup(
    s: &AdminState,
    a: &Admin,
    id: &str,
    notice: Option<Markup>,
    form_error: Option<&str>,
    form_values: (&str, &str),
) -> Result<Markup, Response> {
    let lang = a.lang;
    let found = match payment_id(id) {
        Ok(id) => s.services.payment_with_refunds(&id).await,
        Err(e) => Err(e),
    };
    let (p, refunds) = match found {
        Ok(found) => found,
        Err(ServiceError::NotFound(_)) => {
            return Err(admin_page(
                lang,
                "404",
                Some(&a.csrf),
                html! { div.card { h1 { (lang.t("결제를 찾을 수 없습니다", "Payment not found")) } } },
            ));
        }
        Err(e) => return Err(super::unavailable(lang, a, &e)),
    };
    let events = match s.services.events(&p.id).await {
        Ok(e) => e,
        Err(e) => return Err(super::unavailable(lang, a, &e)),
    };
    let amounts = p.amounts;
    let cancelable = p.cancelable().won();
    Ok(html! {
        p { a href="/admin/payments" { (lang.t("← 결제 내역", "← Payments")) } }
        @if let Some(n) = notice { (n) }
        div.card {
            h1 { (p.item_name.as_str()) " " (status_badge(lang, p.status)) }
            p.big { (won(amounts.total.won())) }
            table aria-label=(lang.t("결제 정보", "Payment")) {
                tbody {
                    tr { th scope="row" { (lang.t("결제 ID", "Payment id")) } td { code { (p.id) } } }
                    tr { th scope="row" { (lang.t("주문번호", "Order id")) } td { (p.partner_order_id.as_str()) } }
                    tr { th scope="row" { "TID" } td { code { (p.tid.as_str()) } } }
                    tr { th scope="row" { "AID" } td { code { (p.aid.as_ref().map_or("-", |a| a.as_str())) } } }
                    tr { th scope="row" { (lang.t("부가세 / 면세", "VAT / tax-free")) } td.num { (won(amounts.vat.won())) " / " (won(amounts.tax_free.won())) } }
                    tr { th scope="row" { (lang.t("환불된 금액", "Refunded")) } td.num { (won(p.canceled.total.won())) } }
                    tr { th scope="row" { (lang.t("환불 가능 금액", "Refundable")) } td.num { strong { (won(cancelable)) } } }
                    tr { th scope="row" { (lang.t("결제 수단", "Method")) } td { (p.method.as_ref().map_or("-", |m| m.as_str())) } }
                    tr { th scope="row" { (lang.t("생성 / 승인", "Created / approved")) } td { (display_time(p.created_at)) " / " (p.approved_at.map(display_time).unwrap_or_else(|| "-".into())) } }
                    @if let Some(f) = &p.failure { tr { th scope="row" { (lang.t("실패 사유", "Failure")) } td { (f.code.to_string()) ": " (f.message.as_deref().unwrap_or("")) } } }
                }
            }
            form method="post" action={"/admin/payments/" (p.id) "/sync"} style="margin-top:12px" {
                input type="hidden" name="csrf" value=(a.csrf);
                button.btn.btn-light type="submit" { (lang.t("카카오페이와 대조 (주문 조회)", "Check with KakaoPay (order lookup)")) }
            }
        }
        @if p.status.is_refundable() && p.refund_in_flight.is_none() {
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
                        tr { td { (display_time(r.created_at).get(5..19).unwrap_or_default()) } td.num { (won(r.amounts.total.won())) } td { (match r.status { RefundStatus::Succeeded => lang.t("완료", "succeeded"), RefundStatus::Pending => lang.t("확인 중", "pending"), RefundStatus::Failed => lang.t("실패", "failed") }) } td.hide-sm { code { (r.aid.as_ref().map_or_else(|| "-".to_owned(), |a| a.text(&r.id))) } } td.hide-sm { (r.reason.as_deref().unwrap_or("")) } }
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
                        strong { (e.cause.as_str()) } " "
                        span.muted { (e.from.map_or("—", PaymentStatus::as_str)) " → " (e.to.as_str()) }
                        @if let Some(c) = e.kakaopay_code { " (KakaoPay " (c) ")" }
                        @if let Some(d) = &e.detail { br; span.muted { (d) } }
                    }
                }
            }
        }
    })
}

pub(super) async fn payment(
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

pub(super) async fn sync(
    State(s): State<AdminState>,
    a: Admin,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(r) = super::csrf_refused(&s, &a, &form.csrf) {
        return r;
    }
    let synced = match payment_id(&id) {
        Ok(pid) => s.services.sync(&pid).await.map(|_| ()),
        Err(e) => Err(e),
    };
    match synced {
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
