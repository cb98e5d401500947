//! Refunds from the back office: the form, a confirmation step showing the refund as the domain
//! plans it, and the refund itself, refused if the balance changed since it was confirmed.

use super::payments::payment_markup;
use super::{Admin, AdminState, admin_page};
use crate::domain::{PaymentId, RefundError};
use crate::service::{Conflict, RefundInput, ServiceError};
use crate::web::i18n::Lang;
use crate::web::layout::won;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use kakaopay::{Amount, Payload};
use maud::html;
use serde::Deserialize;

/// The refund form, as typed by the operator (checked by [`parse`]).
#[derive(Debug, Default, Deserialize)]
pub(super) struct RefundForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reason: String,
    /// The refundable balance the confirmation showed (the confirm step only).
    #[serde(default)]
    expected_cancelable: Option<String>,
}

/// Parses the refund form; a message for the operator when it is wrong.
fn parse(lang: Lang, form: &RefundForm) -> Result<(Amount, Option<Payload>), &'static str> {
    let amount = form
        .amount
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|a| *a >= 1)
        .and_then(|a| Amount::new(a).ok())
        .ok_or(lang.t(
            "환불 금액은 1원 이상의 정수여야 합니다.",
            "The amount must be a whole number of won, at least 1.",
        ))?;
    let reason = match form.reason.trim() {
        "" => None,
        r => Some(Payload::parse(r).map_err(|_| {
            lang.t(
                "사유는 200자 이하여야 합니다.",
                "The reason must be at most 200 characters.",
            )
        })?),
    };
    Ok((amount, reason))
}

/// The operator's message for a refund the domain's refund rule does not allow.
fn not_allowed(lang: Lang, rule: &RefundError) -> String {
    match rule {
        RefundError::ExceedsCancelable { cancelable, .. } => format!(
            "{}{}",
            lang.t(
                "환불 가능 금액을 넘었습니다: 최대 ",
                "More than can be refunded: at most "
            ),
            won(*cancelable)
        ),
        other => format!(
            "{}{other}",
            lang.t(
                "환불할 수 없는 금액입니다: ",
                "This amount cannot be refunded: "
            )
        ),
    }
}

/// The operator's message for a refund the services refused.
fn refused(lang: Lang, e: &ServiceError) -> String {
    match e {
        ServiceError::Invalid {
            field: "amount", ..
        } => format!(
            "{}{}",
            lang.t(
                "환불할 수 없는 금액입니다: ",
                "This amount cannot be refunded: "
            ),
            e
        ),
        ServiceError::Conflict {
            code: Conflict::BalanceChanged,
            ..
        } => lang
            .t(
                "확인하는 동안 환불 가능 금액이 바뀌었습니다. 다시 확인해 주세요.",
                "The refundable amount changed meanwhile; please check again.",
            )
            .to_owned(),
        other => other.to_string(),
    }
}

/// What both steps start with: the CSRF check and the form parsed; else the page to answer.
async fn checked(
    s: &AdminState,
    a: &Admin,
    id: &str,
    form: &RefundForm,
) -> Result<(Amount, Option<Payload>), Response> {
    if let Some(r) = super::csrf_refused(s, a, &form.csrf) {
        return Err(r);
    }
    match parse(a.lang, form) {
        Ok(v) => Ok(v),
        Err(msg) => Err(refund_error(s, a, id, msg, (&form.amount, &form.reason)).await),
    }
}

pub(super) async fn refund_confirm(
    State(s): State<AdminState>,
    a: Admin,
    Path(id): Path<String>,
    Form(form): Form<RefundForm>,
) -> Response {
    let (amount, _) = match checked(&s, &a, &id, &form).await {
        Ok(v) => v,
        Err(page) => return page,
    };
    let lang = a.lang;
    let values = (form.amount.as_str(), form.reason.as_str());
    let Ok(pid) = PaymentId::parse(&id) else {
        return refund_error(&s, &a, &id, "not found", values).await;
    };
    let preview = match s.services.refund_preview(&pid, amount).await {
        Ok(Ok(p)) => p,
        Ok(Err(rule)) => return refund_error(&s, &a, &id, &not_allowed(lang, &rule), values).await,
        Err(e) => return refund_error(&s, &a, &id, &refused(lang, &e), values).await,
    };
    let p = &preview.payment;
    let body = html! {
        div.card.narrow {
            h1 { (lang.t("환불 확인", "Confirm the refund")) }
            p { (p.item_name.as_str()) " · " code { (p.partner_order_id.as_str()) } }
            p.big { (won(preview.plan.amounts.total.won())) }
            p { @if preview.plan.full { (lang.t("남은 금액 전액을 환불합니다.", "This refunds everything that is left.")) } @else { (lang.t("부분 환불 후 남는 금액: ", "Left after this partial refund: ")) (won(preview.left_after.won())) } }
            @if !form.reason.trim().is_empty() { p.muted { (lang.t("사유: ", "Reason: ")) (form.reason) } }
            form method="post" action={"/admin/payments/" (p.id) "/refund/confirm"} {
                input type="hidden" name="csrf" value=(a.csrf);
                input type="hidden" name="amount" value=(amount.won());
                input type="hidden" name="reason" value=(form.reason);
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

pub(super) async fn refund_do(
    State(s): State<AdminState>,
    a: Admin,
    Path(id): Path<String>,
    Form(form): Form<RefundForm>,
) -> Response {
    let (amount, reason) = match checked(&s, &a, &id, &form).await {
        Ok(v) => v,
        Err(page) => return page,
    };
    let lang = a.lang;
    let values = (form.amount.as_str(), form.reason.as_str());
    let expected = form
        .expected_cancelable
        .as_deref()
        .and_then(|e| e.trim().parse::<i64>().ok())
        .and_then(|e| Amount::new(e).ok());
    let (Ok(pid), Some(expected)) = (PaymentId::parse(&id), expected) else {
        let msg = lang.t(
            "확인 단계를 거쳐 다시 시도해 주세요.",
            "Please go through the confirmation step again.",
        );
        return refund_error(&s, &a, &id, msg, values).await;
    };
    let input = RefundInput {
        amount: Some(amount),
        tax_free: None,
        vat: None,
        reason,
    };
    // The confirmed balance guards against a double submit.
    match s.services.refund_confirmed(&pid, input, expected).await {
        Ok(r) => {
            let done = if r.refund.status == crate::domain::RefundStatus::Pending {
                "pending"
            } else {
                "refunded"
            };
            Redirect::to(&format!("/admin/payments/{id}?done={done}")).into_response()
        }
        Err(e) => refund_error(&s, &a, &id, &refused(lang, &e), values).await,
    }
}

/// The payment page again, with the refund form's error (422).
pub(super) async fn refund_error(
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
