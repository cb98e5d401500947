//! Server-rendered pages: the buyer's result pages, the demo shop and the admin dashboard.
//! Self-contained HTML: inline CSS and SVG, no external assets, Korean first with English.

pub mod admin;
pub mod callbacks;
pub mod i18n;
pub mod layout;
pub mod result;
pub mod session;
pub mod shop;
