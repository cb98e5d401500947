//! Server-rendered pages: the buyer's result pages, the demo shop and the admin dashboard.
//! Self-contained HTML: inline CSS and SVG, no external assets, Korean first with English.

pub(crate) mod admin;
pub(crate) mod callbacks;
pub(crate) mod i18n;
pub(crate) mod layout;
pub(crate) mod result;
pub(crate) mod session;
pub(crate) mod shop;
