//! The dashboard: today's and the week's approved money and a chart of the last seven days.

use super::{Admin, AdminState, admin_page};
use crate::web::i18n::Lang;
use crate::web::layout::won;
use axum::extract::State;
use axum::response::Response;
use maud::{Markup, PreEscaped, html};

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

pub(super) async fn dashboard(State(s): State<AdminState>, a: Admin) -> Response {
    let lang = a.lang;
    let figures = match s.services.dashboard(s.services.now()).await {
        Ok(f) => f,
        Err(e) => return super::unavailable(lang, &a, &e),
    };
    let days: Vec<(String, i64)> = figures
        .days
        .iter()
        .map(|d| (d.day.format("%m/%d").to_string(), d.paid.won()))
        .collect();
    let (today_n, today_sum) = figures.today().map_or((0, 0), |d| (d.count, d.paid.won()));
    let (week_n, week_sum, week_refunds) = figures.week();
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
