//! Subscription, charge and subscription-log rows, and their conversion into the domain's types
//! (a broken value is [`StoreError::Corrupt`], as for payments).

use super::rows::Columns;
use super::{StoreError, Value};
use crate::domain::{
    Cadence, Charge, ChargeId, ChargeKind, ChargeStatus, Detail, Interval, PaymentId, Subscription,
    SubscriptionCause, SubscriptionId, SubscriptionLogLine, SubscriptionStatus, Timestamp,
};
use kakaopay::Amount;

/// The columns of [`SubscriptionRow`], in its order.
pub(super) const SUBSCRIPTION_COLUMNS: &str = "id, status, cid, partner_user_id, item_name, amount_total, \
    amount_tax_free, amount_vat, billing_interval, interval_count, trial_days, return_url, \
    registration_payment_id, sid_sealed, sid_last4, registered_at, billing_anchor, next_period, \
    next_charge_at, dunning_started_at, dunning_retries, cancel_at_period_end, canceled_at, \
    cancel_reason, inactivated_at, last_charged_at, last_kakaopay_approved_at, idempotency_key, \
    created_at, updated_at, version";

/// A subscription row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct SubscriptionRow {
    id: String,
    status: String,
    cid: String,
    partner_user_id: String,
    item_name: String,
    amount_total: i64,
    amount_tax_free: i64,
    amount_vat: i64,
    billing_interval: String,
    interval_count: i64,
    trial_days: i64,
    return_url: Option<String>,
    registration_payment_id: String,
    sid_sealed: Option<String>,
    sid_last4: Option<String>,
    registered_at: Option<i64>,
    billing_anchor: Option<i64>,
    next_period: i64,
    next_charge_at: Option<i64>,
    dunning_started_at: Option<i64>,
    dunning_retries: i64,
    cancel_at_period_end: i64,
    canceled_at: Option<i64>,
    cancel_reason: Option<String>,
    inactivated_at: Option<i64>,
    last_charged_at: Option<i64>,
    last_kakaopay_approved_at: Option<i64>,
    idempotency_key: Option<String>,
    created_at: i64,
    updated_at: i64,
    version: i64,
}

impl TryFrom<SubscriptionRow> for Subscription {
    type Error = StoreError;

    fn try_from(r: SubscriptionRow) -> Result<Subscription, StoreError> {
        let c = Columns {
            table: "subscriptions",
            id: &r.id,
        };
        let interval = c.parse("billing_interval", r.billing_interval, |s| {
            s.parse::<Interval>()
        })?;
        Ok(Subscription {
            status: c.parse("status", r.status, |s| s.parse::<SubscriptionStatus>())?,
            cid: c.parse("cid", r.cid, kakaopay::Cid::parse)?,
            partner_user_id: c.parse(
                "partner_user_id",
                r.partner_user_id,
                kakaopay::PartnerUserId::parse,
            )?,
            item_name: c.parse("item_name", r.item_name, kakaopay::ItemName::parse)?,
            amounts: c.amounts([
                ("amount_total", r.amount_total),
                ("amount_tax_free", r.amount_tax_free),
                ("amount_vat", r.amount_vat),
                ("amount_total", 0),
            ])?,
            cadence: Cadence::new(interval, r.interval_count)
                .map_err(|_| c.corrupt("interval_count"))?,
            trial_days: u16::try_from(r.trial_days).map_err(|_| c.corrupt("trial_days"))?,
            return_url: r.return_url,
            registration_payment_id: c.parse(
                "registration_payment_id",
                r.registration_payment_id,
                |s| PaymentId::parse(&s),
            )?,
            sid_sealed: r.sid_sealed,
            sid_last4: r.sid_last4,
            registered_at: c.opt_time("registered_at", r.registered_at)?,
            billing_anchor: c.opt_time("billing_anchor", r.billing_anchor)?,
            next_period: c.count("next_period", r.next_period)?,
            next_charge_at: c.opt_time("next_charge_at", r.next_charge_at)?,
            dunning_started_at: c.opt_time("dunning_started_at", r.dunning_started_at)?,
            dunning_retries: c.count("dunning_retries", r.dunning_retries)?,
            cancel_at_period_end: r.cancel_at_period_end != 0,
            canceled_at: c.opt_time("canceled_at", r.canceled_at)?,
            cancel_reason: r.cancel_reason,
            inactivated_at: c.opt_time("inactivated_at", r.inactivated_at)?,
            last_charged_at: c.opt_time("last_charged_at", r.last_charged_at)?,
            last_kakaopay_approved_at: c
                .opt_time("last_kakaopay_approved_at", r.last_kakaopay_approved_at)?,
            idempotency_key: r.idempotency_key,
            created_at: c.time("created_at", r.created_at)?,
            updated_at: c.time("updated_at", r.updated_at)?,
            version: r.version,
            id: SubscriptionId::parse(&r.id).map_err(|_| c.corrupt("id"))?,
        })
    }
}

/// The columns and values of a new subscription's row.
pub(super) fn subscription_values(s: &Subscription) -> Vec<(&'static str, Value)> {
    use Value::{Int, Text};
    let text = |s: &str| Text(Some(s.to_owned()));
    let won = |a: Amount| Int(Some(a.won()));
    vec![
        ("id", text(s.id.as_str())),
        ("status", text(s.status.into())),
        ("cid", text(s.cid.as_str())),
        ("partner_user_id", text(s.partner_user_id.as_str())),
        ("item_name", text(s.item_name.as_str())),
        ("amount_total", won(s.amounts.total)),
        ("amount_tax_free", won(s.amounts.tax_free)),
        ("amount_vat", won(s.amounts.vat)),
        ("billing_interval", text(s.cadence.interval().into())),
        ("interval_count", Int(Some(i64::from(s.cadence.count())))),
        ("trial_days", Int(Some(i64::from(s.trial_days)))),
        ("return_url", Text(s.return_url.clone())),
        (
            "registration_payment_id",
            text(s.registration_payment_id.as_str()),
        ),
        ("next_period", Int(Some(i64::from(s.next_period)))),
        ("idempotency_key", Text(s.idempotency_key.clone())),
        ("created_at", Int(Some(s.created_at.millis()))),
        ("updated_at", Int(Some(s.updated_at.millis()))),
        ("version", Int(Some(s.version))),
    ]
}

/// The columns of [`ChargeRow`], in its order.
pub(super) const CHARGE_COLUMNS: &str = "id, subscription_id, kind, period, attempt, status, amount_total, \
    amount_tax_free, amount_vat, item_name, partner_order_id, payment_id, failure, kakaopay_code, message, \
    attempted_at, finished_at, kakaopay_approved_at, idempotency_key, check_attempts";

/// A charge row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct ChargeRow {
    id: String,
    subscription_id: String,
    kind: String,
    period: Option<i64>,
    attempt: i64,
    status: String,
    amount_total: i64,
    amount_tax_free: i64,
    amount_vat: i64,
    item_name: String,
    partner_order_id: String,
    payment_id: Option<String>,
    failure: Option<String>,
    kakaopay_code: Option<i64>,
    message: Option<String>,
    attempted_at: i64,
    finished_at: Option<i64>,
    kakaopay_approved_at: Option<i64>,
    idempotency_key: Option<String>,
    check_attempts: i64,
}

impl TryFrom<ChargeRow> for Charge {
    type Error = StoreError;

    fn try_from(r: ChargeRow) -> Result<Charge, StoreError> {
        let c = Columns {
            table: "subscription_charges",
            id: &r.id,
        };
        Ok(Charge {
            subscription_id: c.parse("subscription_id", r.subscription_id, |s| {
                SubscriptionId::parse(&s)
            })?,
            kind: c.parse("kind", r.kind, |s| s.parse::<ChargeKind>())?,
            period: r.period.map(|p| c.count("period", p)).transpose()?,
            attempt: c.count("attempt", r.attempt)?,
            status: c.parse("status", r.status, |s| s.parse::<ChargeStatus>())?,
            amounts: c.amounts([
                ("amount_total", r.amount_total),
                ("amount_tax_free", r.amount_tax_free),
                ("amount_vat", r.amount_vat),
                ("amount_total", 0),
            ])?,
            item_name: c.parse("item_name", r.item_name, kakaopay::ItemName::parse)?,
            partner_order_id: r.partner_order_id,
            payment_id: c.opt("payment_id", r.payment_id, |s| PaymentId::parse(&s))?,
            failure: c.opt("failure", r.failure, |s| s.parse())?,
            kakaopay_code: r.kakaopay_code,
            message: r.message,
            attempted_at: c.time("attempted_at", r.attempted_at)?,
            finished_at: c.opt_time("finished_at", r.finished_at)?,
            kakaopay_approved_at: c.opt_time("kakaopay_approved_at", r.kakaopay_approved_at)?,
            idempotency_key: r.idempotency_key,
            check_attempts: c.count("check_attempts", r.check_attempts)?,
            id: ChargeId::parse(&r.id).map_err(|_| c.corrupt("id"))?,
        })
    }
}

/// The columns and values of a new charge's row.
pub(super) fn charge_values(ch: &Charge) -> Vec<(&'static str, Value)> {
    use Value::{Int, Text};
    let text = |s: &str| Text(Some(s.to_owned()));
    let won = |a: Amount| Int(Some(a.won()));
    vec![
        ("id", text(ch.id.as_str())),
        ("subscription_id", text(ch.subscription_id.as_str())),
        ("kind", text(ch.kind.into())),
        ("period", Int(ch.period.map(i64::from))),
        ("attempt", Int(Some(i64::from(ch.attempt)))),
        ("status", text(ch.status.into())),
        ("amount_total", won(ch.amounts.total)),
        ("amount_tax_free", won(ch.amounts.tax_free)),
        ("amount_vat", won(ch.amounts.vat)),
        ("item_name", text(ch.item_name.as_str())),
        ("partner_order_id", text(&ch.partner_order_id)),
        (
            "payment_id",
            Text(ch.payment_id.as_ref().map(|p| p.as_str().to_owned())),
        ),
        (
            "failure",
            Text(ch.failure.map(|f| <&str>::from(f).to_owned())),
        ),
        ("kakaopay_code", Int(ch.kakaopay_code)),
        ("message", Text(ch.message.clone())),
        ("attempted_at", Int(Some(ch.attempted_at.millis()))),
        ("finished_at", Int(ch.finished_at.map(Timestamp::millis))),
        (
            "kakaopay_approved_at",
            Int(ch.kakaopay_approved_at.map(Timestamp::millis)),
        ),
        ("idempotency_key", Text(ch.idempotency_key.clone())),
    ]
}

/// The columns of [`SubscriptionLogRow`].
pub(super) const SUBSCRIPTION_LOG_COLUMNS: &str =
    "id, from_status, to_status, cause, upstream_code, detail, at";

/// A subscription log row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct SubscriptionLogRow {
    id: i64,
    from_status: Option<String>,
    to_status: String,
    cause: String,
    upstream_code: Option<i64>,
    detail: Option<String>,
    at: i64,
}

impl TryFrom<SubscriptionLogRow> for SubscriptionLogLine {
    type Error = StoreError;

    fn try_from(r: SubscriptionLogRow) -> Result<SubscriptionLogLine, StoreError> {
        let id = r.id.to_string();
        let c = Columns {
            table: "subscription_events",
            id: &id,
        };
        let status = |s: String| s.parse::<SubscriptionStatus>();
        Ok(SubscriptionLogLine {
            from: c.opt("from_status", r.from_status, status)?,
            to: c.parse("to_status", r.to_status, status)?,
            cause: c.parse("cause", r.cause, |s| s.parse::<SubscriptionCause>())?,
            detail: Detail {
                kakaopay_code: r.upstream_code,
                text: r.detail,
            },
            at: c.time("at", r.at)?,
        })
    }
}
