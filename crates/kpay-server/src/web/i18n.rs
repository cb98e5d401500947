//! Korean first, English available: `?lang=en` (remembered in a cookie) switches a page.

use axum::http::{HeaderMap, HeaderValue, header};

/// A page language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lang {
    /// 한국어 (default).
    Ko,
    /// English.
    En,
}

impl Lang {
    /// The `lang` attribute.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::Ko => "ko",
            Self::En => "en",
        }
    }
    /// Picks the Korean or the English text.
    pub(crate) fn t(self, ko: &'static str, en: &'static str) -> &'static str {
        match self {
            Self::Ko => ko,
            Self::En => en,
        }
    }
    /// The language of a request: `?lang=` first, then the `kpay_lang` cookie, else Korean.
    pub(crate) fn of(headers: &HeaderMap, query: Option<&str>) -> Lang {
        let pick = |s: &str| match s {
            "en" => Some(Lang::En),
            "ko" => Some(Lang::Ko),
            _ => None,
        };
        if let Some(l) = query.and_then(pick) {
            return l;
        }
        cookie(headers, "kpay_lang")
            .as_deref()
            .and_then(pick)
            .unwrap_or(Lang::Ko)
    }
    /// The cookie that remembers an explicit choice.
    pub(crate) fn cookie(self) -> HeaderValue {
        HeaderValue::from_str(&format!(
            "kpay_lang={}; Path=/; Max-Age=31536000; SameSite=Lax",
            self.code()
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("kpay_lang=ko; Path=/"))
    }
}

/// A cookie's value.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// Middleware: a request with `?lang=ko|en` gets the choice remembered in a cookie.
pub(crate) async fn remember(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let chosen = req
        .uri()
        .query()
        .and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "lang")
                .map(|(_, v)| v.into_owned())
        })
        .and_then(|l| match l.as_str() {
            "en" => Some(Lang::En),
            "ko" => Some(Lang::Ko),
            _ => None,
        });
    let mut resp = next.run(req).await;
    if let Some(lang) = chosen {
        resp.headers_mut().append(header::SET_COOKIE, lang.cookie());
    }
    resp
}
