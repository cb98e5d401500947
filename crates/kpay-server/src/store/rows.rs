//! Rows as the database holds them, private to the store, and their conversion into the domain's
//! types. A row that does not make a valid domain value is an error naming the row and the column
//! ([`StoreError::Corrupt`]): a ledger never reads a broken amount as 0 won or an unknown status
//! as `failed`.
//!
//! Adding a payment column: the migration, [`PaymentRow`], its `TryFrom`, and
//! [`payment_values`] — all but the migration in this file.

use super::{StoreError, Value};
use crate::domain::{
    Amounts, Cause, Channel, Failure, FailureCode, Payment, PaymentEvent, PaymentId, PaymentStatus,
    Redirects, Refund, RefundAid, RefundId, RefundStatus, SubscriptionId, Timestamp,
};
use kakaopay::{Amount, PgToken, Quantity};

/// The columns of [`PaymentRow`], in its order.
pub(super) const PAYMENT_COLUMNS: &str = "id, status, cid, tid, aid, partner_order_id, partner_user_id, item_name, \
    item_code, quantity, amount_total, amount_tax_free, amount_vat, amount_green_deposit, canceled_total, \
    canceled_tax_free, canceled_vat, canceled_green_deposit, payment_method_type, card_info, channel, redirect_url, \
    redirect_pc_url, redirect_mobile_url, redirect_app_url, return_url, pg_token, failure_code, failure_message, \
    refund_in_flight, created_at, updated_at, expires_at, approve_started_at, approved_at, canceled_at, \
    next_check_at, idempotency_key, check_attempts, resend_count, subscription_id, version";

/// A payment row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct PaymentRow {
    id: String,
    status: String,
    cid: String,
    tid: String,
    aid: Option<String>,
    partner_order_id: String,
    partner_user_id: String,
    item_name: String,
    item_code: Option<String>,
    quantity: i64,
    amount_total: i64,
    amount_tax_free: i64,
    amount_vat: i64,
    amount_green_deposit: i64,
    canceled_total: i64,
    canceled_tax_free: i64,
    canceled_vat: i64,
    canceled_green_deposit: i64,
    payment_method_type: Option<String>,
    card_info: Option<String>,
    channel: String,
    redirect_url: String,
    redirect_pc_url: Option<String>,
    redirect_mobile_url: Option<String>,
    redirect_app_url: Option<String>,
    return_url: Option<String>,
    pg_token: Option<String>,
    failure_code: Option<String>,
    failure_message: Option<String>,
    refund_in_flight: Option<String>,
    created_at: i64,
    updated_at: i64,
    expires_at: i64,
    approve_started_at: Option<i64>,
    approved_at: Option<i64>,
    canceled_at: Option<i64>,
    next_check_at: Option<i64>,
    idempotency_key: Option<String>,
    check_attempts: i64,
    resend_count: i64,
    subscription_id: Option<String>,
    version: i64,
}

impl PaymentRow {
    /// The row's id, as stored (readable even when the rest of the row is not).
    pub(super) fn id(&self) -> &str {
        &self.id
    }
}

/// Converts the columns of one row, naming the row in every error.
pub(super) struct Columns<'a> {
    pub(super) table: &'static str,
    pub(super) id: &'a str,
}

impl Columns<'_> {
    pub(super) fn corrupt(&self, field: &'static str) -> StoreError {
        tracing::error!(table = self.table, id = %self.id, field, "corrupt row in the database");
        StoreError::Corrupt {
            table: self.table,
            id: self.id.to_owned(),
            field,
        }
    }
    pub(super) fn parse<T, E>(
        &self,
        field: &'static str,
        value: String,
        parse: impl FnOnce(String) -> Result<T, E>,
    ) -> Result<T, StoreError> {
        parse(value).map_err(|_| self.corrupt(field))
    }
    pub(super) fn opt<T, E>(
        &self,
        field: &'static str,
        value: Option<String>,
        parse: impl FnOnce(String) -> Result<T, E>,
    ) -> Result<Option<T>, StoreError> {
        value.map(|v| self.parse(field, v, parse)).transpose()
    }
    pub(super) fn amount(&self, field: &'static str, won: i64) -> Result<Amount, StoreError> {
        Amount::new(won).map_err(|_| self.corrupt(field))
    }
    pub(super) fn amounts(&self, fields: [(&'static str, i64); 4]) -> Result<Amounts, StoreError> {
        Ok(Amounts {
            total: self.amount(fields[0].0, fields[0].1)?,
            tax_free: self.amount(fields[1].0, fields[1].1)?,
            vat: self.amount(fields[2].0, fields[2].1)?,
            green_deposit: self.amount(fields[3].0, fields[3].1)?,
        })
    }
    pub(super) fn time(&self, field: &'static str, ms: i64) -> Result<Timestamp, StoreError> {
        Timestamp::from_millis(ms).ok_or_else(|| self.corrupt(field))
    }
    pub(super) fn opt_time(
        &self,
        field: &'static str,
        ms: Option<i64>,
    ) -> Result<Option<Timestamp>, StoreError> {
        ms.map(|ms| self.time(field, ms)).transpose()
    }
    pub(super) fn count(&self, field: &'static str, n: i64) -> Result<u32, StoreError> {
        u32::try_from(n).map_err(|_| self.corrupt(field))
    }
    fn failure(
        &self,
        field: &'static str,
        code: Option<String>,
        message: Option<String>,
    ) -> Result<Option<Failure>, StoreError> {
        Ok(match code {
            Some(code) => Some(Failure {
                code: FailureCode::parse(&code).ok_or_else(|| self.corrupt(field))?,
                message,
            }),
            None => None,
        })
    }
}

fn status(s: String) -> Result<PaymentStatus, ()> {
    PaymentStatus::parse(&s).ok_or(())
}

impl TryFrom<PaymentRow> for Payment {
    type Error = StoreError;

    fn try_from(r: PaymentRow) -> Result<Payment, StoreError> {
        let c = Columns {
            table: "payments",
            id: &r.id,
        };
        let amounts = c.amounts([
            ("amount_total", r.amount_total),
            ("amount_tax_free", r.amount_tax_free),
            ("amount_vat", r.amount_vat),
            ("amount_green_deposit", r.amount_green_deposit),
        ])?;
        let canceled = c.amounts([
            ("canceled_total", r.canceled_total),
            ("canceled_tax_free", r.canceled_tax_free),
            ("canceled_vat", r.canceled_vat),
            ("canceled_green_deposit", r.canceled_green_deposit),
        ])?;
        if canceled.total > amounts.total {
            return Err(c.corrupt("canceled_total"));
        }
        Ok(Payment {
            status: c.parse("status", r.status, status)?,
            cid: c.parse("cid", r.cid, kakaopay::Cid::parse)?,
            tid: c.parse("tid", r.tid, kakaopay::Tid::parse)?,
            aid: c.opt("aid", r.aid, kakaopay::Aid::parse)?,
            partner_order_id: c.parse(
                "partner_order_id",
                r.partner_order_id,
                kakaopay::PartnerOrderId::parse,
            )?,
            partner_user_id: c.parse(
                "partner_user_id",
                r.partner_user_id,
                kakaopay::PartnerUserId::parse,
            )?,
            item_name: c.parse("item_name", r.item_name, kakaopay::ItemName::parse)?,
            item_code: c.opt("item_code", r.item_code, kakaopay::ItemCode::parse)?,
            quantity: Quantity::new(r.quantity).map_err(|_| c.corrupt("quantity"))?,
            amounts,
            canceled,
            method: r.payment_method_type.map(|m| match m.parse() {
                Ok(m) => m,
                Err(never) => match never {},
            }),
            card_info: c.opt("card_info", r.card_info, |s| {
                serde_json::from_str::<serde_json::Value>(&s)
            })?,
            channel: c.parse("channel", r.channel, |s| s.parse::<Channel>())?,
            redirects: Redirects {
                url: r.redirect_url,
                pc: r.redirect_pc_url,
                mobile: r.redirect_mobile_url,
                app: r.redirect_app_url,
            },
            return_url: r.return_url,
            pg_token: c.opt("pg_token", r.pg_token, PgToken::parse)?,
            failure: c.failure("failure_code", r.failure_code, r.failure_message)?,
            refund_in_flight: c.opt("refund_in_flight", r.refund_in_flight, |s| {
                RefundId::parse(&s)
            })?,
            created_at: c.time("created_at", r.created_at)?,
            updated_at: c.time("updated_at", r.updated_at)?,
            expires_at: c.time("expires_at", r.expires_at)?,
            approve_started_at: c.opt_time("approve_started_at", r.approve_started_at)?,
            approved_at: c.opt_time("approved_at", r.approved_at)?,
            canceled_at: c.opt_time("canceled_at", r.canceled_at)?,
            next_check_at: c.opt_time("next_check_at", r.next_check_at)?,
            idempotency_key: r.idempotency_key,
            check_attempts: c.count("check_attempts", r.check_attempts)?,
            resend_count: c.count("resend_count", r.resend_count)?,
            subscription_id: c.opt("subscription_id", r.subscription_id, |s| {
                SubscriptionId::parse(&s)
            })?,
            version: r.version,
            id: PaymentId::parse(&r.id).map_err(|_| c.corrupt("id"))?,
        })
    }
}

/// The columns and values of a new payment's row.
pub(super) fn payment_values(p: &Payment) -> Vec<(&'static str, Value)> {
    use Value::{Int, Text};
    let text = |s: &str| Text(Some(s.to_owned()));
    let won = |a: Amount| Int(Some(a.won()));
    vec![
        ("id", text(p.id.as_str())),
        ("status", text(p.status.as_str())),
        ("cid", text(p.cid.as_str())),
        ("tid", text(p.tid.as_str())),
        ("aid", Text(p.aid.as_ref().map(|a| a.as_str().to_owned()))),
        ("partner_order_id", text(p.partner_order_id.as_str())),
        // The order's slot: one payment per merchant order that can still be, or has been, paid.
        ("order_slot", text(p.partner_order_id.as_str())),
        ("partner_user_id", text(p.partner_user_id.as_str())),
        ("item_name", text(p.item_name.as_str())),
        (
            "item_code",
            Text(p.item_code.as_ref().map(|c| c.as_str().to_owned())),
        ),
        ("quantity", Int(Some(i64::from(p.quantity.get())))),
        ("amount_total", won(p.amounts.total)),
        ("amount_tax_free", won(p.amounts.tax_free)),
        ("amount_vat", won(p.amounts.vat)),
        ("amount_green_deposit", won(p.amounts.green_deposit)),
        ("channel", text(p.channel.as_str())),
        ("redirect_url", text(&p.redirects.url)),
        ("redirect_pc_url", Text(p.redirects.pc.clone())),
        ("redirect_mobile_url", Text(p.redirects.mobile.clone())),
        ("redirect_app_url", Text(p.redirects.app.clone())),
        ("return_url", Text(p.return_url.clone())),
        ("created_at", Int(Some(p.created_at.millis()))),
        ("updated_at", Int(Some(p.updated_at.millis()))),
        ("expires_at", Int(Some(p.expires_at.millis()))),
        ("next_check_at", Int(p.next_check_at.map(Timestamp::millis))),
        ("idempotency_key", Text(p.idempotency_key.clone())),
        ("approved_at", Int(p.approved_at.map(Timestamp::millis))),
        (
            "payment_method_type",
            Text(p.method.as_ref().map(|m| m.as_str().to_owned())),
        ),
        (
            "card_info",
            Text(p.card_info.as_ref().map(|c| c.to_string())),
        ),
        (
            "subscription_id",
            Text(p.subscription_id.as_ref().map(|s| s.as_str().to_owned())),
        ),
        ("version", Int(Some(p.version))),
    ]
}

/// The columns of [`RefundRow`], in its order.
pub(super) const REFUND_COLUMNS: &str = "id, payment_id, status, amount, tax_free, vat, green_deposit, \
    cancelable_before, reason, aid, failure_code, failure_message, created_at, updated_at, idempotency_key";

/// A refund row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct RefundRow {
    id: String,
    payment_id: String,
    status: String,
    amount: i64,
    tax_free: i64,
    vat: i64,
    green_deposit: i64,
    cancelable_before: i64,
    reason: Option<String>,
    aid: Option<String>,
    failure_code: Option<String>,
    failure_message: Option<String>,
    created_at: i64,
    updated_at: i64,
    idempotency_key: Option<String>,
}

impl TryFrom<RefundRow> for Refund {
    type Error = StoreError;

    fn try_from(r: RefundRow) -> Result<Refund, StoreError> {
        let c = Columns {
            table: "refunds",
            id: &r.id,
        };
        let aid = match r.aid {
            Some(a) if a.starts_with("unknown-") => Some(RefundAid::Unknown),
            Some(a) => Some(RefundAid::Known(c.parse("aid", a, kakaopay::Aid::parse)?)),
            None => None,
        };
        Ok(Refund {
            payment_id: c.parse("payment_id", r.payment_id, |s| PaymentId::parse(&s))?,
            status: c.parse("status", r.status, |s| RefundStatus::parse(&s).ok_or(()))?,
            amounts: c.amounts([
                ("amount", r.amount),
                ("tax_free", r.tax_free),
                ("vat", r.vat),
                ("green_deposit", r.green_deposit),
            ])?,
            cancelable_before: c.amount("cancelable_before", r.cancelable_before)?,
            reason: r.reason,
            aid,
            failure: c.failure("failure_code", r.failure_code, r.failure_message)?,
            created_at: c.time("created_at", r.created_at)?,
            updated_at: c.time("updated_at", r.updated_at)?,
            idempotency_key: r.idempotency_key,
            id: RefundId::parse(&r.id).map_err(|_| c.corrupt("id"))?,
        })
    }
}

/// The columns and values of a refund's row.
pub(super) fn refund_values(r: &Refund) -> Vec<(&'static str, Value)> {
    use Value::{Int, Text};
    let won = |a: Amount| Int(Some(a.won()));
    vec![
        ("id", Text(Some(r.id.to_string()))),
        ("payment_id", Text(Some(r.payment_id.to_string()))),
        ("status", Text(Some(r.status.as_str().to_owned()))),
        ("amount", won(r.amounts.total)),
        ("tax_free", won(r.amounts.tax_free)),
        ("vat", won(r.amounts.vat)),
        ("green_deposit", won(r.amounts.green_deposit)),
        ("cancelable_before", won(r.cancelable_before)),
        ("reason", Text(r.reason.clone())),
        ("aid", Text(r.aid.as_ref().map(|a| a.text(&r.id)))),
        ("created_at", Int(Some(r.created_at.millis()))),
        ("updated_at", Int(Some(r.updated_at.millis()))),
        ("idempotency_key", Text(r.idempotency_key.clone())),
    ]
}

/// The columns of [`EventRow`], in its order.
pub(super) const EVENT_COLUMNS: &str =
    "id, payment_id, from_status, to_status, cause, upstream_code, detail, at, repeats, last_at";

/// An event row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct EventRow {
    id: i64,
    payment_id: String,
    from_status: Option<String>,
    to_status: String,
    cause: String,
    upstream_code: Option<i64>,
    detail: Option<String>,
    at: i64,
    repeats: i64,
    last_at: Option<i64>,
}

impl TryFrom<EventRow> for PaymentEvent {
    type Error = StoreError;

    fn try_from(r: EventRow) -> Result<PaymentEvent, StoreError> {
        let id = r.id.to_string();
        let c = Columns {
            table: "payment_events",
            id: &id,
        };
        Ok(PaymentEvent {
            seq: r.id,
            payment_id: c.parse("payment_id", r.payment_id, |s| PaymentId::parse(&s))?,
            from: c.opt("from_status", r.from_status, status)?,
            to: c.parse("to_status", r.to_status, status)?,
            cause: c.parse("cause", r.cause, |s| s.parse::<Cause>())?,
            kakaopay_code: r.upstream_code,
            detail: r.detail,
            at: c.time("at", r.at)?,
            repeats: c.count("repeats", r.repeats)?,
            last_at: c.opt_time("last_at", r.last_at)?,
        })
    }
}

/// Converts every row, failing on the first broken one.
pub(super) fn convert<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}
