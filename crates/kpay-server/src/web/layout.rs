//! The page frame shared by every page.

use maud::{DOCTYPE, Markup, PreEscaped, html};

/// Shared styles: readable on a 375 px phone and on desktop, WCAG AA contrast.
pub(crate) const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font-family:-apple-system,BlinkMacSystemFont,"Apple SD Gothic Neo","Noto Sans KR","Malgun Gothic",sans-serif;background:#f6f6f4;color:#1d1d1f;line-height:1.5}
a{color:#0b57d0}
header.top{background:#1d1d1f;color:#fff;padding:12px 20px;display:flex;align-items:center;gap:16px;flex-wrap:wrap}
header.top a{color:#fff;text-decoration:none;font-weight:700}
header.top nav{margin-left:auto;display:flex;gap:14px;font-size:14px}
main{max-width:960px;margin:0 auto;padding:20px}
.card{background:#fff;border-radius:14px;padding:20px;box-shadow:0 1px 4px rgba(0,0,0,.08);margin-bottom:16px}
.narrow{max-width:520px;margin:0 auto}
h1{font-size:22px;margin:0 0 12px}h2{font-size:18px;margin:0 0 10px}
.muted{color:#5f6368}
.big{font-size:28px;font-weight:800}
table{width:100%;border-collapse:collapse}th,td{text-align:left;padding:8px 6px;border-bottom:1px solid #eee;font-size:15px}
th{color:#5f6368;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.btn{display:inline-block;border:0;border-radius:10px;padding:12px 18px;font-size:16px;font-weight:700;cursor:pointer;text-decoration:none;text-align:center}
.btn-kakao{background:#fee500;color:#191919}.btn-dark{background:#1d1d1f;color:#fff}.btn-light{background:#eceff1;color:#1d1d1f}
.btn-danger{background:#b3261e;color:#fff}
.btn:focus-visible,a:focus-visible,input:focus-visible,select:focus-visible{outline:3px solid #0b57d0;outline-offset:2px}
.status{display:inline-block;padding:2px 10px;border-radius:999px;font-size:13px;font-weight:700;background:#eceff1}
.status-approved{background:#d7f5dd;color:#0d5b1d}.status-partially_canceled{background:#fff1c2;color:#6b4e00}
.status-canceled{background:#e8e8e8;color:#333}.status-failed,.status-expired,.status-quit{background:#fde2e0;color:#8c1d18}
.status-approving,.status-ready{background:#dbe8ff;color:#0b3d91}
label{display:block;font-weight:600;margin:10px 0 4px}
input,select{font:inherit;padding:10px;border:1px solid #b0b4b8;border-radius:8px;width:100%;max-width:100%}
.row{display:flex;gap:12px;flex-wrap:wrap;align-items:flex-end}.row>*{flex:1 1 160px}
.error{background:#fde2e0;color:#8c1d18;padding:10px 12px;border-radius:8px}
.ok{background:#d7f5dd;color:#0d5b1d;padding:10px 12px;border-radius:8px}
.spinner{width:36px;height:36px;border:4px solid #dbe8ff;border-top-color:#0b57d0;border-radius:50%;animation:spin 1s linear infinite;margin:12px auto}
@keyframes spin{to{transform:rotate(360deg)}}
@media (prefers-reduced-motion:reduce){.spinner{animation:none}}
@media (max-width:600px){main{padding:12px}.card{padding:16px}th,td{font-size:14px;padding:6px 4px}.hide-sm{display:none}}
"#;

/// A page with the shared frame. `nav` is the header's right side.
pub(crate) fn page(lang: &str, title: &str, brand: Markup, nav: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="icon" href="data:,";
                style { (PreEscaped(STYLE)) }
            }
            body {
                header.top { (brand) nav aria-label="main" { (nav) } }
                main id="main" { (body) }
            }
        }
    }
}

/// Won with thousands separators: `12,300원`.
pub(crate) fn won(n: i64) -> String {
    match kakaopay::Amount::new(n) {
        Ok(a) => a.to_string(),
        Err(_) => format!("{n}원"),
    }
}

/// A time as `2026-11-22 10:10:06` in Korean time, for pages.
pub(crate) fn display_time(t: crate::domain::Timestamp) -> String {
    t.kst().format("%Y-%m-%d %H:%M:%S").to_string()
}
