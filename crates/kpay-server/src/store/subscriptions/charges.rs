//! The scheduler's side of the store: leasing due subscriptions with their claims, claiming
//! one attempt, recording how it ended, and a charge's answer that arrived late. A child of
//! `subscriptions`, so the write macros (`apply_sub_write!`) and row types are shared.

use super::*;

/// Inserts a payment a charge created (from the column `$values` of `$p`), its first log line
/// and its `payment.approved` event, rendered from `$p` itself (just inserted: version 1, no
/// refunds, nothing to read back).
macro_rules! insert_charged_payment {
    ($conn:expr, $render:expr, $p:expr, $values:expr, $detail:expr, $now:expr) => {{
        let p: &Payment = $p;
        let mut qb = QueryBuilder::new("");
        push_insert!(qb, "payments", $values);
        qb.build().execute(&mut *$conn).await?;
        $conn
            .insert_event(
                &p.id,
                None,
                PaymentStatus::Approved,
                Cause::Approved,
                &$detail,
                $now,
            )
            .await?;
        insert_event_row!(
            $conn,
            EventType::PaymentApproved,
            p.id.as_str(),
            p.version,
            $render.data(p, &[]),
            $now
        )?;
    }};
}

impl Store {
    /// Leases up to `limit` subscriptions due at `now` to `owner` until `until`: on PostgreSQL
    /// with `FOR UPDATE SKIP LOCKED`, so instances never wait for each other nor take the same.
    ///
    /// In the same transaction, every leased subscription whose period is due
    /// ([`Subscription::due_renewal`]) and has no open attempt gets its renewal attempt recorded,
    /// exactly as [`Store::begin_charge`] would (attempt numbered, next look at `check_at`,
    /// lease given back): the common case of a scheduler pass costs a few statements per batch
    /// instead of a transaction per subscription. Those come back with their claimed charge;
    /// the others (`None`) are still leased, for the one-by-one path.
    pub async fn lease_due_subscriptions(
        &self,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
        check_at: Timestamp,
        schedule: &DunningSchedule,
    ) -> Result<Vec<(Subscription, Option<Charge>)>, StoreError> {
        // PostgreSQL: the pick materialized once (a subquery under `IN` may be run again by the
        // planner and lease more than the limit); SKIP LOCKED so instances never wait for each
        // other. SQLite has one writer.
        let (materialized, skip) = if self.is_pg() {
            (" MATERIALIZED", " FOR UPDATE SKIP LOCKED")
        } else {
            ("", "")
        };
        let sql = format!(
            "WITH picked AS{materialized} (SELECT id FROM subscriptions WHERE next_charge_at <= $3 \
             AND (lease_until IS NULL OR lease_until <= $3) ORDER BY next_charge_at LIMIT $4{skip}) \
             UPDATE subscriptions SET lease_owner = $1, lease_until = $2 WHERE id IN (SELECT id FROM picked) \
             RETURNING {SUBSCRIPTION_COLUMNS}"
        );
        let owner = owner.to_owned();
        let schedule = schedule.clone();
        write_tx!(self, |conn| {
            let rows: Vec<SubscriptionRow> = sqlx::query_as::<_, SubscriptionRow>(&sql)
                .bind(owner.as_str())
                .bind(until.millis())
                .bind(now.millis())
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await?;
            let mut leased: Vec<(Subscription, Option<Charge>)> = Vec::with_capacity(rows.len());
            for row in rows {
                // A broken row is logged by the conversion and keeps its lease until it
                // expires, so it is looked at again later rather than in a hot loop.
                if let Ok(s) = Subscription::try_from(row) {
                    leased.push((s, None));
                }
            }
            let due: Vec<usize> = (0..leased.len())
                .filter(|i| leased[*i].0.due_renewal(now, &schedule).is_some())
                .collect();
            if due.is_empty() {
                return Ok(leased);
            }
            // Open attempts and attempts of the due period, per subscription (none: no row).
            // An attempt withdrawn unsent never reached KakaoPay: it is not counted (neither in
            // the attempt number nor against the period's cap).
            let mut qb = QueryBuilder::new(
                "SELECT c.subscription_id, \
                 SUM(CASE WHEN c.status IN ('pending', 'unknown') THEN 1 ELSE 0 END), \
                 SUM(CASE WHEN c.period = s.next_period AND COALESCE(c.failure, '') <> 'not_sent' THEN 1 ELSE 0 END) \
                 FROM subscription_charges c JOIN subscriptions s ON s.id = c.subscription_id \
                 WHERE c.subscription_id IN (",
            );
            let mut ids = qb.separated(", ");
            for i in &due {
                ids.push_bind(leased[*i].0.id.as_str().to_owned());
            }
            qb.push(") GROUP BY c.subscription_id");
            let counts: Vec<(String, i64, i64)> = qb.build_query_as().fetch_all(&mut *conn).await?;
            let counts: std::collections::HashMap<String, (i64, i64)> = counts
                .into_iter()
                .map(|(id, open, tried)| (id, (open, tried)))
                .collect();
            let mut claimed: Vec<usize> = Vec::new();
            for i in due {
                let (sub, charge) = &mut leased[i];
                let (open, tried) = counts.get(sub.id.as_str()).copied().unwrap_or((0, 0));
                if open > 0 {
                    continue;
                }
                if let Some(n) = sub.due_renewal(now, &schedule) {
                    let mut c = Charge::renewal(sub, n, now);
                    c.attempt = u32::try_from(tried + 1).unwrap_or(u32::MAX);
                    *charge = Some(c);
                    claimed.push(i);
                }
            }
            if claimed.is_empty() {
                return Ok(leased);
            }
            let mut qb = QueryBuilder::new("");
            for (k, i) in claimed.iter().enumerate() {
                let Some(c) = &leased[*i].1 else { continue };
                let values = charge_values(c);
                if k == 0 {
                    let names: Vec<&str> = values.iter().map(|(n, _)| *n).collect();
                    qb.push(format!(
                        "INSERT INTO subscription_charges ({}) VALUES ",
                        names.join(", ")
                    ));
                } else {
                    qb.push(", ");
                }
                qb.push("(");
                let mut list = qb.separated(", ");
                for (_, v) in values {
                    match v {
                        Value::Text(t) => list.push_bind(t),
                        Value::Int(i) => list.push_bind(i),
                    };
                }
                qb.push(")");
            }
            qb.build().execute(&mut *conn).await?;
            let mut qb = QueryBuilder::new("UPDATE subscriptions SET next_charge_at = ");
            qb.push_bind(check_at.millis())
                .push(", lease_owner = NULL, lease_until = NULL WHERE id IN (");
            let mut ids = qb.separated(", ");
            for i in &claimed {
                ids.push_bind(leased[*i].0.id.as_str().to_owned());
            }
            qb.push(")");
            qb.build().execute(&mut *conn).await?;
            Ok(leased)
        })
    }

    /// Records a charge attempt before its call, if it may be made: the subscription (locked)
    /// is in `allowed`, its next unpaid period is still `charge.period` (for a renewal), and no
    /// other attempt is open. In the same transaction the subscription's next look moves to
    /// `check_at` (a renewal's; an extra charge's only if sooner): if this instance dies during
    /// the call, the scheduler comes back then and judges the attempt by lookup. A scheduler's
    /// lease (`owner`) is given back there too: the open attempt guards the subscription now.
    pub async fn begin_charge(
        &self,
        charge: &Charge,
        allowed: &[SubscriptionStatus],
        owner: Option<&str>,
        now: Timestamp,
        check_at: Timestamp,
    ) -> Result<Claim, StoreError> {
        let pg = self.is_pg();
        let charge = charge.clone();
        let allowed: Vec<&'static str> = allowed.iter().map(|s| <&str>::from(*s)).collect();
        let owner = owner.map(str::to_owned);
        let lock = if pg { " FOR UPDATE" } else { "" };
        let r = write_tx!(self, |conn| {
            let row: Option<ChargeableRow> = sqlx::query_as(&format!(
                "SELECT status, next_period, cancel_at_period_end, lease_owner, lease_until \
                 FROM subscriptions WHERE id = $1{lock}"
            ))
            .bind(charge.subscription_id.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            let Some((status, next_period, cancel_at_end, lease_owner, lease_until)) = row else {
                return Ok(Claim::Refused);
            };
            // A statement of its own, after the lock: on PostgreSQL a subquery of the locking
            // statement would read the charges as they were before the lock was granted.
            let (open, tried): (i64, i64) = sqlx::query_as(
                "SELECT COALESCE(SUM(CASE WHEN status IN ('pending', 'unknown') THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN period = $2 AND COALESCE(failure, '') <> 'not_sent' THEN 1 ELSE 0 END), 0) \
                 FROM subscription_charges WHERE subscription_id = $1",
            )
            .bind(charge.subscription_id.as_str())
            .bind(charge.period.map(i64::from))
            .fetch_one(&mut *conn)
            .await?;
            if !allowed.contains(&status.as_str()) {
                return Ok(Claim::Refused);
            }
            if let Some(n) = charge.period
                && (i64::from(n) != next_period || cancel_at_end != 0)
            {
                return Ok(Claim::Refused);
            }
            // A scheduler whose lease ran out (a long pause) must not charge: another instance
            // may own the subscription now.
            if let Some(owner) = &owner
                && (lease_owner.as_deref() != Some(owner.as_str())
                    || lease_until.is_none_or(|u| u <= now.millis()))
            {
                return Ok(Claim::Refused);
            }
            if open > 0 {
                return Ok(Claim::Open);
            }
            let mut charge = charge.clone();
            if charge.period.is_some() {
                charge.attempt = u32::try_from(tried + 1).unwrap_or(u32::MAX);
            }
            let mut qb = QueryBuilder::new("");
            push_insert!(qb, "subscription_charges", charge_values(&charge));
            qb.build().execute(&mut *conn).await?;
            let mut qb = QueryBuilder::new("UPDATE subscriptions SET next_charge_at = ");
            if charge.period.is_some() {
                qb.push_bind(check_at.millis());
            } else {
                qb.push("CASE WHEN next_charge_at IS NULL OR next_charge_at > ")
                    .push_bind(check_at.millis())
                    .push(" THEN ")
                    .push_bind(check_at.millis())
                    .push(" ELSE next_charge_at END");
            }
            if owner.is_some() {
                qb.push(", lease_owner = NULL, lease_until = NULL");
            }
            qb.push(" WHERE id = ")
                .push_bind(charge.subscription_id.as_str().to_owned());
            qb.build().execute(&mut *conn).await?;
            Ok(Claim::Claimed(Box::new(charge)))
        });
        match r {
            // The database's own guard (another instance won the race): not ours to make.
            Err(e) if e.is_unique_violation() => Ok(Claim::Open),
            r => r,
        }
    }

    /// Records how an open attempt ended, with its payment and what it does to the
    /// subscription, in one transaction. A canceled subscription keeps its schedule (its SID's
    /// inactivation): no charge outcome moves it. Nothing is written when the attempt is no
    /// longer open (someone else recorded it first).
    pub async fn finish_charge(
        &self,
        end: &ChargeEnd,
        now: Timestamp,
    ) -> Result<Finished, StoreError> {
        let pg = self.is_pg();
        let end = end.clone();
        let render = self.render.clone();
        write_tx!(self, |conn| {
            // The subscription first, as every writer of it does: one lock order, no deadlock.
            let lock = if pg { " FOR UPDATE" } else { "" };
            let found: Option<String> = sqlx::query_scalar(&format!(
                "SELECT status FROM subscriptions WHERE id = $1{lock}"
            ))
            .bind(end.sub.id.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            // Still open? Read after the lock (which every writer of its charges takes first),
            // in a statement of its own so that it sees what they committed.
            let open: Option<String> = sqlx::query_scalar(
                "SELECT status FROM subscription_charges WHERE id = $1 AND status IN ('pending', 'unknown')",
            )
            .bind(end.charge.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            let (Some(sub_status), Some(_)) = (found, open) else {
                return Ok(Finished::NotOpen);
            };
            let canceled = sub_status == <&str>::from(SubscriptionStatus::Canceled);
            // The payment goes in before the charge points at it.
            if let Some(p) = &end.payment {
                let detail = Detail::text(format!("subscription charge: tid {}", p.tid));
                insert_charged_payment!(conn, render, p, payment_values(p), detail, now);
            }
            let mut qb = QueryBuilder::new("UPDATE subscription_charges SET status = ");
            qb.push_bind(<&str>::from(end.status));
            qb.push(", failure = ")
                .push_bind(end.failure.map(|f| <&str>::from(f).to_owned()));
            qb.push(", kakaopay_code = ").push_bind(end.code);
            qb.push(", message = ").push_bind(end.message.clone());
            qb.push(", kakaopay_approved_at = ")
                .push_bind(end.kakaopay_approved_at.map(Timestamp::millis));
            qb.push(", payment_id = ")
                .push_bind(end.payment.as_ref().map(|p| p.id.to_string()));
            if end.status.is_open() {
                qb.push(", finished_at = NULL");
            } else {
                qb.push(", finished_at = ").push_bind(now.millis());
            }
            if let Some(n) = end.check_attempts {
                qb.push(", check_attempts = ").push_bind(i64::from(n));
            }
            qb.push(" WHERE id = ")
                .push_bind(end.charge.to_string())
                .push(" AND status IN ('pending', 'unknown')");
            let updated = qb.build().execute(&mut *conn).await?.rows_affected();
            if updated != 1 {
                // Checked under the lock just before: only a broken invariant gets here. The
                // transaction is rolled back rather than leave a payment without its charge.
                return Err(sqlx::Error::Protocol(format!(
                    "charge {} changed under the subscription's lock",
                    end.charge
                )));
            }
            let mut w = end.sub.clone();
            if canceled {
                w.change.next_charge_at = None;
            }
            let _ = apply_sub_write!(conn, &w, now, pg, render, status = Some(sub_status))?;
            Ok(if canceled {
                Finished::RecordedCanceled
            } else {
                Finished::Recorded
            })
        })
    }

    /// A charge's answer that arrived after its attempt was closed by someone else (a lookup
    /// judged it): the payment KakaoPay made is stored all the same (refundable), linked to
    /// the attempt if that one was found charged without its TID, and the subscription's log
    /// says so. Returns whether the period is now paid by another attempt too (one of them is
    /// for the operator to refund).
    pub async fn record_late_charge(
        &self,
        charge: &ChargeId,
        sub: &SubscriptionId,
        payment: &Payment,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let pg = self.is_pg();
        let (charge, sub, payment) = (charge.clone(), sub.clone(), payment.clone());
        let render = self.render.clone();
        write_tx!(self, |conn| {
            let lock = if pg { " FOR UPDATE" } else { "" };
            let found: Option<String> = sqlx::query_scalar(&format!(
                "SELECT status FROM subscriptions WHERE id = $1{lock}"
            ))
            .bind(sub.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            let Some(status) = found.and_then(|s| s.parse::<SubscriptionStatus>().ok()) else {
                return Ok(false);
            };
            // The order's slot (one live or paid payment per merchant order) is the other
            // charge's when the period was charged twice: this one goes in without it, so a
            // charge KakaoPay made is never refused by the ledger.
            let taken: Option<String> =
                sqlx::query_scalar("SELECT id FROM payments WHERE order_slot = $1")
                    .bind(payment.partner_order_id.as_str())
                    .fetch_optional(&mut *conn)
                    .await?;
            let mut values = payment_values(&payment);
            if taken.is_some() {
                for (name, v) in &mut values {
                    if *name == "order_slot" {
                        *v = super::Value::Text(None);
                    }
                }
            }
            let detail = Detail::text(format!(
                "subscription charge {charge}: answer arrived after the attempt was judged (tid {})",
                payment.tid
            ));
            insert_charged_payment!(conn, render, &payment, values, detail, now);
            // Found charged by lookup, without its TID: this is that charge.
            let linked = sqlx::query(
                "UPDATE subscription_charges SET payment_id = $1, message = NULL WHERE id = $2 \
                 AND status = 'succeeded' AND payment_id IS NULL",
            )
            .bind(payment.id.as_str())
            .bind(charge.as_str())
            .execute(&mut *conn)
            .await?
            .rows_affected()
                == 1;
            let twice = !linked;
            let text = if linked {
                format!(
                    "charge {charge}: its answer arrived late; payment {} (tid {}) linked",
                    payment.id, payment.tid
                )
            } else {
                format!(
                    "charge {charge}: its answer arrived after it was judged not charged; payment {} (tid {}) recorded — if the period is paid twice, refund one",
                    payment.id, payment.tid
                )
            };
            insert_sub_event(
                &mut *conn,
                &sub,
                Some(status),
                status,
                SubscriptionCause::LateCharge,
                &Detail::text(text),
                now,
            )
            .await?;
            Ok(twice)
        })
    }
}
