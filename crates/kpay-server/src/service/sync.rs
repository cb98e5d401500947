//! Order lookup → ledger: the one place that turns KakaoPay's truth into local state. Used by the
//! `sync` API, the browser's cancel/fail callbacks, background resolution and the reconciler.

use super::approve::{RemotePaid, approval_mismatch};
use super::resolve::{MAX_BACKOFF, MAX_RESENDS};
use super::{ServiceError, Services};
use crate::domain::{
    Amounts, Cause, Detail, EXPIRY_CHECK_DELAY, Event, FailureCode, Payment, PaymentChange,
    PaymentId, PaymentStatus, Refund, RefundAid, RefundStatus, Remote, Timestamp, reconcile,
};
use crate::store::RefundEnd;
use kakaopay::{Amount, ErrorCode, OrderResponse, OrderStatus, PaymentActionType};

/// What a sync did.
#[derive(Clone, Debug)]
pub(crate) struct SyncReport {
    /// The payment after the sync.
    pub(crate) payment: Payment,
    /// The status change, if any.
    pub(crate) changed: Option<(PaymentStatus, PaymentStatus)>,
    /// Where the ledger and KakaoPay disagree after the sync.
    pub(crate) mismatch: Option<String>,
    /// Whether an approve or refund is still unresolved.
    pub(crate) still_unclear: bool,
}

/// Where the ledger and KakaoPay's order disagree, if they do.
pub(crate) fn compare(p: &Payment, order: &OrderResponse) -> Option<String> {
    let local = p.status;
    let remote_paid = order.status.is_paid() || order.status == OrderStatus::IssuedSid;
    let remote_canceled = order.canceled_amount.map_or(0, |a| a.total.won());
    match local {
        PaymentStatus::Approved | PaymentStatus::PartiallyCanceled | PaymentStatus::Canceled => {
            if !remote_paid {
                Some(format!(
                    "the ledger says {local} but KakaoPay says {}",
                    order.status
                ))
            } else if p.refund_in_flight.is_none() && remote_canceled != p.canceled.total.won() {
                Some(format!(
                    "refunded {} won here but {remote_canceled} won at KakaoPay",
                    p.canceled.total.won()
                ))
            } else {
                None
            }
        }
        PaymentStatus::Quit | PaymentStatus::Failed | PaymentStatus::Expired if remote_paid => {
            Some(format!(
                "the ledger says {local} but KakaoPay says {}: money was taken",
                order.status
            ))
        }
        _ => None,
    }
}

impl Services {
    /// Looks the payment up at KakaoPay and brings the ledger in line.
    #[tracing::instrument(skip_all, fields(payment_id = %id))]
    pub(crate) async fn sync(&self, id: &PaymentId) -> Result<SyncReport, ServiceError> {
        let p = self.payment(id).await?;
        let before = p.status;
        let now = self.now();
        let order = match self.kakaopay.order(&p.cid, &p.tid).await {
            Ok(order) => order,
            Err(e) if e.code() == Some(kakaopay::ErrorCode::TidNotFound) => {
                return self.forgotten_by_kakaopay(p, e, now).await;
            }
            Err(e) => return Err(ServiceError::kakaopay(e)),
        };
        let mut resent = false;
        match before {
            PaymentStatus::Ready | PaymentStatus::Approving => {
                resent = self.sync_unpaid(&p, &order, now).await?;
            }
            PaymentStatus::Approved | PaymentStatus::PartiallyCanceled => {
                self.sync_refunds(&p, &order, now).await?
            }
            _ => {}
        }
        let mut after = self.payment(id).await?;
        if after.status.is_refundable() && !before.is_refundable() {
            // Just learned it was paid; it may have been refunded too.
            self.sync_refunds(&after, &order, now).await?;
            after = self.payment(id).await?;
        }
        // After a re-send the lookup is older than the ledger: the re-send's own answer was
        // recorded, and comparing with the lookup taken before it would report a false mismatch.
        let mismatch = if resent {
            None
        } else {
            compare(&after, &order)
        };
        if let Some(m) = &mismatch {
            tracing::warn!(payment = %id, mismatch = %m, "ledger and KakaoPay disagree");
        }
        let status = after.status;
        Ok(SyncReport {
            changed: (status != before).then_some((before, status)),
            still_unclear: after.is_unclear(),
            mismatch,
            payment: after,
        })
    }

    /// KakaoPay does not know the TID (any more): nothing can have been paid under it. An unpaid
    /// payment whose time is over expires, an unclear approve past the grace period fails;
    /// anything else is reported as it is.
    async fn forgotten_by_kakaopay(
        &self,
        p: Payment,
        e: kakaopay::Error,
        now: Timestamp,
    ) -> Result<SyncReport, ServiceError> {
        let from = p.status;
        let event = match from {
            PaymentStatus::Ready if p.is_past_expiry(now) => Event::Expired,
            PaymentStatus::Approving if now.since(p.approve_started()) >= self.grace() => {
                Event::ApproveFailed
            }
            _ => return Err(ServiceError::kakaopay(e)),
        };
        let code = ErrorCode::TidNotFound.code();
        let change = PaymentChange::failed(
            FailureCode::KakaoPay(code),
            "KakaoPay does not know this TID",
        );
        self.store
            .transition(
                &p,
                from,
                event,
                &change,
                Detail::text("order lookup: TID does not exist").code(Some(code)),
                now,
            )
            .await?;
        let after = self.payment(&p.id).await?;
        Ok(SyncReport {
            changed: (after.status != from).then_some((from, after.status)),
            mismatch: None,
            still_unclear: false,
            payment: after,
        })
    }

    /// Brings a `ready` or `approving` payment in line with KakaoPay's order; `true` when it
    /// re-sent the approve.
    async fn sync_unpaid(
        &self,
        p: &Payment,
        order: &OrderResponse,
        now: Timestamp,
    ) -> Result<bool, ServiceError> {
        let from = p.status;
        if order.status.is_paid() || order.status == OrderStatus::IssuedSid {
            let paid = paid_amounts(order)?;
            if let Some(why) = approval_mismatch(
                p,
                &RemotePaid {
                    cid: &order.cid,
                    tid: &order.tid,
                    order: &order.partner_order_id,
                    user: &order.partner_user_id,
                    paid,
                },
            ) {
                if order.status == OrderStatus::CancelPayment {
                    let canceled = order
                        .canceled_amount
                        .as_ref()
                        .map(Amounts::from)
                        .unwrap_or(paid);
                    self.record_mismatch_canceled(p, from, canceled, &why, None)
                        .await?;
                } else {
                    self.cancel_mismatch(p, from, paid, &why).await?;
                }
                return Ok(false);
            }
            let payment_action = order
                .payment_action_details
                .iter()
                .find(|a| a.payment_action_type == Some(PaymentActionType::Payment));
            let change = PaymentChange {
                aid: payment_action.and_then(|a| a.aid.clone()),
                approved_at: Some(order.approved_at.map_or(now, |t| t.to_utc().into())),
                method: order.payment_method_type.clone(),
                next_check_at: None,
                ..PaymentChange::default()
            };
            self.store
                .transition(
                    p,
                    from,
                    Event::Approved,
                    &change,
                    Detail::text(format!("order lookup: {}", order.status)),
                    now,
                )
                .await?;
            return Ok(false);
        }
        // Only the server's own clock expires a payment: a browser's fail callback (which anyone
        // can forge) never does. An approve sent shortly before may still be applied, so an
        // `approving` payment waits for the grace period after its last send too.
        let started = p.approve_started();
        let remote = Remote {
            status: order.status.clone(),
            past_expiry: p.is_past_expiry(now)
                && (from != PaymentStatus::Approving || now.since(started) >= self.grace()),
        };
        if let Some(event) = reconcile(from, &remote) {
            let failure = match event {
                Event::AuthFailed | Event::ApproveFailed => {
                    Some(format!("KakaoPay status {}", order.status))
                }
                Event::Expired => Some("not paid within 15 minutes".to_owned()),
                _ => None,
            };
            let change = match failure {
                Some(message) => {
                    PaymentChange::failed(FailureCode::OrderStatus(order.status.clone()), message)
                }
                None => PaymentChange::default(),
            };
            self.store
                .transition(
                    p,
                    from,
                    event,
                    &change,
                    Detail::text(format!("order lookup: {}", order.status)),
                    now,
                )
                .await?;
            return Ok(false);
        }
        if from == PaymentStatus::Approving {
            // KakaoPay has not applied the approve (yet). Each re-send waits twice as long as the
            // one before it.
            let wait = self.grace().saturating_mul(1 << p.resend_count.min(5));
            let due = started.plus(wait);
            if now.since(started) < self.grace()
                || (order.status == OrderStatus::AuthPassword && now < due)
            {
                self.store
                    .schedule_check(&p.id, Some(due.max(started.plus(self.grace()))))
                    .await?;
            } else if let (OrderStatus::AuthPassword, Some(token)) =
                (&order.status, p.pg_token.clone())
            {
                // The buyer authenticated and no approve is in flight any more: approve again,
                // once (the claim), a bounded number of times. KakaoPay's -702 guards against a
                // double approve.
                if !self
                    .store
                    .claim_resend(&p.id, started, now, MAX_RESENDS)
                    .await?
                {
                    if p.resend_count >= MAX_RESENDS {
                        // Re-sends spent: lookups go on (backed off) until KakaoPay's answer
                        // changes or the payment expires.
                        self.store
                            .schedule_check(&p.id, Some(now.plus(MAX_BACKOFF)))
                            .await?;
                    }
                    return Ok(false);
                }
                self.store
                    .note(
                        &p.id,
                        from,
                        Cause::ApproveResent,
                        Detail::text(format!(
                            "order lookup: AUTH_PASSWORD after the grace period (re-send {} of at most {MAX_RESENDS})",
                            p.resend_count + 1
                        )),
                        now,
                    )
                    .await?;
                self.store
                    .schedule_check(&p.id, Some(now.plus(self.grace())))
                    .await?;
                let resending = Payment {
                    approve_started_at: Some(now),
                    resend_count: p.resend_count + 1,
                    ..p.clone()
                };
                let resending = self.restamp_approve(resending, now).await?;
                self.send_approve(&resending, token).await?;
                return Ok(true);
            } else {
                let change = PaymentChange::check_at(Some(p.expires_at.plus(EXPIRY_CHECK_DELAY)));
                self.store
                    .transition(
                        p,
                        from,
                        Event::ApproveRetryable,
                        &change,
                        Detail::text(format!("order lookup: {}", order.status)),
                        now,
                    )
                    .await?;
            }
        } else {
            self.store
                .schedule_check(&p.id, Some(p.expires_at.max(now).plus(EXPIRY_CHECK_DELAY)))
                .await?;
        }
        Ok(false)
    }

    async fn sync_refunds(
        &self,
        p: &Payment,
        order: &OrderResponse,
        now: Timestamp,
    ) -> Result<(), ServiceError> {
        let from = p.status;
        let remote = match &order.canceled_amount {
            Some(a) => Amounts::from(a),
            // KakaoPay leaves the refunded amounts out while nothing was refunded (a paid order
            // never refunded, a 0-won SID registration).
            None if matches!(
                order.status,
                OrderStatus::SuccessPayment | OrderStatus::IssuedSid
            ) =>
            {
                Amounts::default()
            }
            None => return Err(incomplete("canceled_amount")),
        };
        let local = p.canceled;
        let refunds = self.store.refunds(&p.id).await?;
        let known: Vec<&kakaopay::Aid> = refunds
            .iter()
            .filter_map(|r| match &r.aid {
                Some(RefundAid::Known(aid)) => Some(aid),
                _ => None,
            })
            .collect();
        let unknown_cancel_aid = order
            .payment_action_details
            .iter()
            .filter(|a| a.payment_action_type == Some(PaymentActionType::Cancel))
            .filter_map(|a| a.aid.as_ref())
            .rfind(|aid| !known.contains(aid))
            .cloned();
        if let Some(refund_id) = &p.refund_in_flight {
            let Some(refund) = refunds
                .iter()
                .find(|r| &r.id == refund_id && r.status == RefundStatus::Pending)
            else {
                return Ok(());
            };
            let expected = local.checked_add(&refund.amounts).unwrap_or(local);
            if remote.total >= expected.total && remote.total > local.total {
                let aid = unknown_cancel_aid.map_or(RefundAid::Unknown, RefundAid::Known);
                let detail = Detail::text(format!(
                    "refund {} of {} won confirmed by order lookup, aid {}",
                    refund.id,
                    refund.amounts.total.won(),
                    aid.text(&refund.id)
                ));
                self.store
                    .finish_refund(
                        &p.id,
                        &refund.id,
                        RefundEnd::Succeeded {
                            aid,
                            paid: p.amounts,
                            refunded: remote,
                            asked_for_all: false,
                        },
                        from,
                        detail,
                        now,
                    )
                    .await?;
            } else if remote.total == local.total {
                if now.since(refund.updated_at) >= self.grace() {
                    let detail = Detail::text(format!(
                        "refund {} was not applied by KakaoPay (order lookup)",
                        refund.id
                    ));
                    self.store
                        .finish_refund(
                            &p.id,
                            &refund.id,
                            RefundEnd::Failed {
                                failure: crate::domain::Failure {
                                    code: FailureCode::NotApplied,
                                    message: Some("KakaoPay did not apply the refund".into()),
                                },
                                release_key: false,
                            },
                            from,
                            detail,
                            now,
                        )
                        .await?;
                } else {
                    self.store
                        .schedule_check(&p.id, Some(refund.updated_at.plus(self.grace())))
                        .await?;
                }
            }
            return Ok(());
        }
        if remote.total > local.total {
            // Refunded at KakaoPay without this ledger knowing (KakaoPay's console, a lost record).
            let extra = remote.checked_sub(&local).unwrap_or_default();
            let mut refund = Refund::pending(
                p.id.clone(),
                extra,
                p.amounts
                    .total
                    .checked_sub(local.total)
                    .unwrap_or(Amount::ZERO),
                Some("found at KakaoPay by reconciliation".into()),
                None,
                now,
            );
            refund.status = RefundStatus::Succeeded;
            refund.aid = unknown_cancel_aid.map(RefundAid::Known);
            let detail = Detail::text(format!(
                "{} won refunded at KakaoPay, recorded as {}",
                extra.total.won(),
                refund.id
            ));
            self.store
                .record_external_refund(&refund, from, p.amounts, remote, local.total, detail)
                .await?;
        }
        Ok(())
    }
}

/// A lookup that lacks what the ledger needs: nothing is decided from it (a missing amount is not
/// 0 won).
fn incomplete(field: &'static str) -> ServiceError {
    ServiceError::Incomplete {
        field,
        operation: "order lookup",
    }
}

/// What KakaoPay says a paid order was paid.
pub(crate) fn paid_amounts(order: &OrderResponse) -> Result<Amounts, ServiceError> {
    order
        .amount
        .as_ref()
        .map(Amounts::from)
        .ok_or_else(|| incomplete("amount"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(amount: Option<serde_json::Value>) -> OrderResponse {
        let mut v = serde_json::json!({
            "tid": "T1234567890123456789", "cid": "TC0ONETIME", "status": "SUCCESS_PAYMENT",
            "partner_order_id": "o1", "partner_user_id": "u1", "item_name": "x",
            "quantity": 1, "created_at": "2026-11-22T10:00:00"
        });
        if let Some(a) = amount {
            v["amount"] = a;
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_paid_lookup_without_an_amount_is_an_error_not_zero_won() {
        let err = paid_amounts(&order(None)).unwrap_err();
        assert!(
            matches!(
                err,
                ServiceError::Incomplete {
                    field: "amount",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "KakaoPay's order lookup answer lacks amount; nothing was changed"
        );
        let paid = paid_amounts(&order(Some(serde_json::json!({
            "total": 1100, "tax_free": 0, "vat": 100, "point": 0, "discount": 0, "green_deposit": 0
        }))))
        .unwrap();
        assert_eq!(paid.total.won(), 1100);
    }
}
