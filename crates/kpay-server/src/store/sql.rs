//! The statements of the hot path, built from what they write: a status change's `UPDATE` from
//! its [`PaymentChange`] (only the columns it sets, binds numbered by the builder), and the approve
//! claim. Shared by SQLite's writer ([`super::payments`]) and PostgreSQL's one-statement forms
//! ([`super::postgres`]).

use super::Value;
use crate::domain::{PaymentChange, PaymentId, PaymentStatus, Timestamp};

/// The assignments a status change makes besides `status` and `updated_at`, in column order.
pub(super) fn change_values(c: &PaymentChange) -> Vec<(&'static str, Value)> {
    use Value::{Int, Text};
    let mut v = Vec::new();
    if let Some(t) = &c.pg_token {
        v.push(("pg_token", Text(Some(t.expose().to_owned()))));
    }
    if let Some(t) = c.approve_started_at {
        v.push(("approve_started_at", Int(Some(t.millis()))));
    }
    if let Some(a) = &c.aid {
        v.push(("aid", Text(Some(a.as_str().to_owned()))));
    }
    if let Some(t) = c.approved_at {
        v.push(("approved_at", Int(Some(t.millis()))));
    }
    if let Some(m) = &c.method {
        v.push(("payment_method_type", Text(Some(m.as_str().to_owned()))));
    }
    if let Some(j) = &c.card_info {
        v.push(("card_info", Text(Some(j.to_string()))));
    }
    if let Some(f) = &c.failure {
        v.push(("failure_code", Text(Some(f.code.to_string()))));
        v.push(("failure_message", Text(f.message.clone())));
    }
    if let Some(a) = c.canceled {
        v.push(("canceled_total", Int(Some(a.total.won()))));
        v.push(("canceled_tax_free", Int(Some(a.tax_free.won()))));
        v.push(("canceled_vat", Int(Some(a.vat.won()))));
        v.push(("canceled_green_deposit", Int(Some(a.green_deposit.won()))));
    }
    if let Some(t) = c.canceled_at {
        v.push(("canceled_at", Int(Some(t.millis()))));
    }
    v.push(("next_check_at", Int(c.next_check_at.map(Timestamp::millis))));
    v
}

/// `UPDATE payments SET …` for a change from `from` to `to`, up to and including the `WHERE`.
macro_rules! push_update {
    ($qb:expr, $id:expr, $from:expr, $to:expr, $change:expr, $now:expr) => {{
        $qb.push("UPDATE payments SET status = ")
            .push_bind($to.as_str())
            .push(", updated_at = ")
            .push_bind($now.millis())
            .push(", check_attempts = 0, version = version + 1");
        for (column, value) in $crate::store::sql::change_values($change) {
            $qb.push(format!(", {column} = "));
            match value {
                $crate::store::Value::Text(t) => $qb.push_bind(t),
                $crate::store::Value::Int(i) => $qb.push_bind(i),
            };
        }
        if $to.ends_unpaid() {
            // The merchant order may be paid by a new payment: this one gives up the order's
            // slot. Only these changes touch `order_slot`, so its unique index costs nothing on
            // the hot path (ready → approving → approved).
            $qb.push(", order_slot = NULL");
        }
        $qb.push(" WHERE id = ")
            .push_bind($id.as_str().to_owned())
            .push(" AND status = ")
            .push_bind($from.as_str());
    }};
}
pub(super) use push_update;

/// The approve claim's values.
pub(super) struct Claim {
    pub(super) id: PaymentId,
    pub(super) to: PaymentStatus,
    pub(super) pg_token: String,
    pub(super) now: Timestamp,
    pub(super) next_check_at: Timestamp,
    pub(super) window_start: Timestamp,
    pub(super) max_claims: i64,
}

/// The claim's update (without `RETURNING`): takes one claim from the payment's claim budget (its
/// own, not the lookups': forged cancel/fail callbacks cannot spend it) and resets the re-send
/// count of the new approve.
macro_rules! push_claim {
    ($qb:expr, $c:expr) => {{
        let now = $c.now.millis();
        let window = $c.window_start.millis();
        $qb.push("UPDATE payments SET status = ")
            .push_bind($c.to.as_str())
            .push(", version = version + 1, updated_at = ")
            .push_bind(now)
            .push(", pg_token = ")
            .push_bind($c.pg_token.clone())
            .push(", approve_started_at = ")
            .push_bind(now)
            .push(", next_check_at = ")
            .push_bind($c.next_check_at.millis())
            .push(", resend_count = 0, check_attempts = 0, claim_calls = CASE WHEN claim_window IS NULL OR claim_window <= ")
            .push_bind(window)
            .push(" THEN 1 ELSE claim_calls + 1 END, claim_window = CASE WHEN claim_window IS NULL OR claim_window <= ")
            .push_bind(window)
            .push(" THEN ")
            .push_bind(now)
            .push(" ELSE claim_window END WHERE id = ")
            .push_bind($c.id.as_str().to_owned())
            .push(" AND status = ")
            .push_bind(crate::domain::PaymentStatus::Ready.as_str())
            .push(" AND expires_at > ")
            .push_bind(now)
            .push(" AND (claim_window IS NULL OR claim_window <= ")
            .push_bind(window)
            .push(" OR claim_calls < ")
            .push_bind($c.max_claims)
            .push(")");
    }};
}
pub(super) use push_claim;
