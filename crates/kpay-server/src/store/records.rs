//! Rows as stored, and what the services write. Plain data; parsing into domain types happens in
//! [`PaymentRecord::status`] and friends.

use crate::domain::{Amounts, PaymentStatus, RefundStatus};
use kakaopay::Amount;

/// A payment row.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct PaymentRecord {
    pub id: String,
    pub status: String,
    pub cid: String,
    pub tid: String,
    pub aid: Option<String>,
    pub partner_order_id: String,
    pub partner_user_id: String,
    pub item_name: String,
    pub item_code: Option<String>,
    pub quantity: i64,
    pub amount_total: i64,
    pub amount_tax_free: i64,
    pub amount_vat: i64,
    pub amount_green_deposit: i64,
    pub canceled_total: i64,
    pub canceled_tax_free: i64,
    pub canceled_vat: i64,
    pub canceled_green_deposit: i64,
    pub payment_method_type: Option<String>,
    pub card_info: Option<String>,
    pub channel: String,
    pub redirect_url: String,
    pub redirect_pc_url: Option<String>,
    pub redirect_mobile_url: Option<String>,
    pub redirect_app_url: Option<String>,
    pub return_url: Option<String>,
    pub pg_token: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub refund_in_flight: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: i64,
    pub approve_started_at: Option<i64>,
    pub approved_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub next_check_at: Option<i64>,
    /// The Idempotency-Key of the create request that made it.
    pub idempotency_key: Option<String>,
    /// Lookups in a row that left it unclear (the exponent of the back-off).
    pub check_attempts: i64,
    /// Approves re-sent after lookups found the buyer authenticated.
    pub resend_count: i64,
}

fn amount(n: i64) -> Amount {
    // Rows only hold amounts the domain produced; CHECK constraints keep them non-negative.
    Amount::new(n).unwrap_or(Amount::ZERO)
}

impl PaymentRecord {
    /// The status; an unknown text (a newer schema) reads as `failed` and is logged.
    pub fn status(&self) -> PaymentStatus {
        PaymentStatus::parse(&self.status).unwrap_or_else(|| {
            tracing::error!(payment = %self.id, status = %self.status, "unknown payment status in the database");
            PaymentStatus::Failed
        })
    }
    /// The paid amounts.
    pub fn amounts(&self) -> Amounts {
        Amounts {
            total: amount(self.amount_total),
            tax_free: amount(self.amount_tax_free),
            vat: amount(self.amount_vat),
            green_deposit: amount(self.amount_green_deposit),
        }
    }
    /// The refunded amounts.
    pub fn canceled(&self) -> Amounts {
        Amounts {
            total: amount(self.canceled_total),
            tax_free: amount(self.canceled_tax_free),
            vat: amount(self.canceled_vat),
            green_deposit: amount(self.canceled_green_deposit),
        }
    }
    /// What can still be refunded.
    pub fn cancelable(&self) -> Amount {
        if self.status().is_refundable() {
            amount(self.amount_total - self.canceled_total)
        } else {
            Amount::ZERO
        }
    }
}

impl PaymentRecord {
    /// This record as the database holds it after `transition(…, to, changes, …)` succeeded, so
    /// that the hot path need not read it back.
    pub fn applied(&self, to: PaymentStatus, c: &Changes, now: i64) -> PaymentRecord {
        let mut p = self.clone();
        p.status = to.as_str().to_owned();
        p.updated_at = now;
        if let Some(v) = &c.pg_token {
            p.pg_token = Some(v.clone());
        }
        p.approve_started_at = c.approve_started_at.or(p.approve_started_at);
        if let Some(v) = &c.aid {
            p.aid = Some(v.clone());
        }
        p.approved_at = c.approved_at.or(p.approved_at);
        if let Some(v) = &c.payment_method_type {
            p.payment_method_type = Some(v.clone());
        }
        if let Some(v) = &c.card_info {
            p.card_info = Some(v.clone());
        }
        if let Some(v) = &c.failure_code {
            p.failure_code = Some(v.clone());
        }
        if let Some(v) = &c.failure_message {
            p.failure_message = Some(v.clone());
        }
        if let Some(a) = c.canceled {
            p.canceled_total = a.total.won();
            p.canceled_tax_free = a.tax_free.won();
            p.canceled_vat = a.vat.won();
            p.canceled_green_deposit = a.green_deposit.won();
        }
        p.canceled_at = c.canceled_at.or(p.canceled_at);
        p.next_check_at = c.next_check_at;
        p.check_attempts = 0;
        p
    }
}

/// A refund row.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct RefundRecord {
    pub id: String,
    pub payment_id: String,
    pub status: String,
    pub amount: i64,
    pub tax_free: i64,
    pub vat: i64,
    pub green_deposit: i64,
    pub cancelable_before: i64,
    pub reason: Option<String>,
    pub aid: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The Idempotency-Key of the refund request that made it.
    pub idempotency_key: Option<String>,
}

impl RefundRecord {
    /// The status.
    pub fn status(&self) -> RefundStatus {
        RefundStatus::parse(&self.status).unwrap_or(RefundStatus::Failed)
    }
    /// The refund's parts.
    pub fn amounts(&self) -> Amounts {
        Amounts {
            total: amount(self.amount),
            tax_free: amount(self.tax_free),
            vat: amount(self.vat),
            green_deposit: amount(self.green_deposit),
        }
    }
}

/// An event row.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct EventRecord {
    pub id: i64,
    pub payment_id: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub cause: String,
    pub upstream_code: Option<i64>,
    pub detail: Option<String>,
    pub at: i64,
    /// How many identical outcomes in a row this row stands for.
    pub repeats: i64,
    /// When the last of them happened (`None`: only one).
    pub last_at: Option<i64>,
}

/// A reconciler run row.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct RunRecord {
    pub id: String,
    pub instance: String,
    pub started_at: i64,
    pub finished_at: i64,
    pub checked: i64,
    pub changed: i64,
    pub mismatches: i64,
}

/// What a transition writes besides the status. `None` leaves a column as it is, except
/// `next_check_at`, which is always set.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    pub pg_token: Option<String>,
    pub approve_started_at: Option<i64>,
    pub aid: Option<String>,
    pub approved_at: Option<i64>,
    pub payment_method_type: Option<String>,
    pub card_info: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub canceled: Option<Amounts>,
    pub canceled_at: Option<i64>,
    pub next_check_at: Option<i64>,
}

/// One line of the event log, as written.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub cause: String,
    pub upstream_code: Option<i64>,
    pub detail: Option<String>,
}

impl NewEvent {
    /// An event with a cause only.
    pub fn cause(cause: impl Into<String>) -> Self {
        Self {
            cause: cause.into(),
            upstream_code: None,
            detail: None,
        }
    }
    /// Adds KakaoPay's code.
    pub fn code(mut self, code: Option<i64>) -> Self {
        self.upstream_code = code;
        self
    }
    /// Adds a human-readable detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// How a payment list is filtered.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    pub status: Option<PaymentStatus>,
    /// Created at or after (ms).
    pub from: Option<i64>,
    /// Created before (ms).
    pub to: Option<i64>,
    /// Exact order id, TID or payment id.
    pub search: Option<String>,
    /// Continue after this (created_at, id).
    pub after: Option<(i64, String)>,
    pub limit: i64,
}

/// A demo-shop order.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ShopOrderRecord {
    pub id: String,
    pub payment_id: Option<String>,
    pub guest: String,
    /// JSON: `[{"sku","name","price","quantity"}]`.
    pub lines: String,
    pub total: i64,
    pub created_at: i64,
}
