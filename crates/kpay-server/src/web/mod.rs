//! Server-rendered pages: the buyer's result pages (and, later, the shop and the dashboard).
//! Self-contained HTML: inline CSS, no external assets, Korean first.

pub mod layout;
pub mod result;
