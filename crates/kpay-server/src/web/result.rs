//! The buyer's result page after KakaoPay sends them back: a receipt, a clear cancelled / failed /
//! expired page with a way back, or "결제 확인 중" that updates itself while the outcome is unknown.

use super::layout::{display_time, page, won};
use crate::domain::Payment;
use crate::domain::PaymentStatus;
use kakaopay::PaymentMethodType;
use maud::{Markup, PreEscaped, html};

/// Polls `/pay/{id}/status` and reloads when the payment leaves `approving`.
const POLL: &str = r#"(function(){var id=document.body.dataset.payment;setInterval(function(){fetch('/pay/'+id+'/status',{cache:'no-store'}).then(function(r){return r.json();}).then(function(j){if(j.status!=='approving'){location.reload();}}).catch(function(){});},1000);})();"#;

/// The page for a payment, from the buyer's side. `back` is where "돌아가기" leads.
pub(crate) fn result_page(p: &Payment, back: &str) -> Markup {
    let status = p.status;
    let brand = html! { a href=(back) { "kpay" } };
    let (title, body) = match status {
        PaymentStatus::Approved | PaymentStatus::PartiallyCanceled | PaymentStatus::Canceled => {
            ("결제 완료", receipt(p, back))
        }
        PaymentStatus::Approving => (
            "결제 확인 중",
            html! {
                div.card.narrow role="status" aria-live="polite" {
                    h1 { "결제 확인 중" }
                    div.spinner aria-hidden="true" {}
                    p { "카카오페이에 결제 결과를 확인하고 있습니다. 이 화면은 자동으로 갱신됩니다." }
                    p.muted { "창을 닫거나 다시 결제하지 마세요. 결제가 두 번 이루어지지 않습니다." }
                    script { (PreEscaped(POLL)) }
                }
            },
        ),
        PaymentStatus::Ready => (
            "결제 대기",
            html! {
                div.card.narrow {
                    h1 { "결제가 아직 완료되지 않았습니다" }
                    p { "카카오페이 결제 화면에서 결제를 마쳐 주세요." }
                    p { a.btn.btn-kakao href=(p.redirects.url) { "카카오페이 결제 화면으로" } }
                    p { a href=(back) { "돌아가기" } }
                }
            },
        ),
        PaymentStatus::Quit => (
            "결제 취소",
            closed(
                p,
                back,
                "결제를 취소했습니다",
                "결제가 이루어지지 않았습니다. 다시 주문할 수 있습니다.",
            ),
        ),
        PaymentStatus::Expired => (
            "결제 시간 만료",
            closed(
                p,
                back,
                "결제 시간이 만료되었습니다",
                "15분 안에 결제가 완료되지 않아 주문이 취소되었습니다. 다시 주문해 주세요.",
            ),
        ),
        PaymentStatus::Failed => (
            "결제 실패",
            closed(
                p,
                back,
                "결제에 실패했습니다",
                "결제가 이루어지지 않았습니다. 다른 결제 수단으로 다시 시도해 주세요.",
            ),
        ),
    };
    let markup = page(
        "ko",
        title,
        brand,
        html! { a href=(back) { "돌아가기" } },
        body,
    );
    if status == PaymentStatus::Approving {
        PreEscaped(markup.into_string().replacen(
            "<body>",
            &format!("<body data-payment=\"{}\">", p.id),
            1,
        ))
    } else {
        markup
    }
}

fn closed(p: &Payment, back: &str, heading: &str, text: &str) -> Markup {
    html! {
        div.card.narrow {
            h1 { (heading) }
            p { (text) }
            @if let Some(m) = p.failure.as_ref().and_then(|f| f.message.as_ref()) { p.muted { "사유: " (m) } }
            p.muted { "주문번호 " (p.partner_order_id) }
            p { a.btn.btn-dark href=(back) { "돌아가기" } }
        }
    }
}

fn receipt(p: &Payment, back: &str) -> Markup {
    let a = p.amounts;
    let method = match &p.method {
        Some(PaymentMethodType::Card) => "카드",
        Some(PaymentMethodType::Money) => "카카오페이머니",
        Some(other) => other.as_str(),
        None => "카카오페이",
    };
    html! {
        div.card.narrow {
            h1 { "결제가 완료되었습니다" }
            @if p.status == PaymentStatus::Canceled { p.ok { "이 결제는 전액 취소(환불)되었습니다." } }
            @if p.status == PaymentStatus::PartiallyCanceled { p.ok { "이 결제는 일부 취소(환불)되었습니다: " (won(p.canceled.total.won())) } }
            p.big { (won(a.total.won())) }
            table aria-label="영수증" {
                tbody {
                    tr { th scope="row" { "상품" } td { (p.item_name.as_str()) " × " (p.quantity.get()) } }
                    tr { th scope="row" { "공급가액" } td.num { (won(a.total.won() - a.vat.won() - a.tax_free.won())) } }
                    tr { th scope="row" { "부가세" } td.num { (won(a.vat.won())) } }
                    @if a.tax_free.won() > 0 { tr { th scope="row" { "면세" } td.num { (won(a.tax_free.won())) } } }
                    tr { th scope="row" { "결제 수단" } td { "카카오페이 · " (method) } }
                    tr { th scope="row" { "승인 시각" } td { (p.approved_at.map(display_time).unwrap_or_default()) } }
                    tr { th scope="row" { "승인번호 (AID)" } td { code { (p.aid.as_ref().map_or("-", |a| a.as_str())) } } }
                    tr { th scope="row" { "주문번호" } td { (p.partner_order_id.as_str()) } }
                }
            }
            p { a.btn.btn-dark href=(back) { "쇼핑 계속하기" } }
        }
    }
}
