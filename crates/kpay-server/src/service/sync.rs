//! Order lookup → ledger: the one place that turns KakaoPay's truth into local state. Used by the
//! `sync` API, the browser's cancel/fail callbacks, background resolution and the reconciler.

use super::approve::approval_mismatch;
use super::resolve::{MAX_BACKOFF, MAX_RESENDS, ms};
use super::{ServiceError, Services, new_id, now_ms};
use crate::domain::{Amounts, Event, PaymentStatus, RefundStatus, Remote, reconcile, transition};
use crate::store::{Changes, NewEvent, PaymentRecord, RefundOutcome, RefundRecord};
use kakaopay::{OrderResponse, OrderStatus, PaymentActionType, PgToken};

/// What a sync did.
#[derive(Clone, Debug)]
pub struct SyncReport {
    /// The payment after the sync.
    pub payment: PaymentRecord,
    /// The status change, if any.
    pub changed: Option<(PaymentStatus, PaymentStatus)>,
    /// Where the ledger and KakaoPay disagree after the sync.
    pub mismatch: Option<String>,
    /// Whether an approve or refund is still unresolved.
    pub still_unclear: bool,
}

/// Where the ledger and KakaoPay's order disagree, if they do.
pub(crate) fn compare(p: &PaymentRecord, order: &OrderResponse) -> Option<String> {
    let local = p.status();
    let remote_paid = order.status.is_paid() || order.status == OrderStatus::IssuedSid;
    let remote_canceled = order.canceled_amount.map_or(0, |a| a.total.won());
    match local {
        PaymentStatus::Approved | PaymentStatus::PartiallyCanceled | PaymentStatus::Canceled => {
            if !remote_paid {
                Some(format!(
                    "the ledger says {local} but KakaoPay says {}",
                    order.status
                ))
            } else if p.refund_in_flight.is_none() && remote_canceled != p.canceled_total {
                Some(format!(
                    "refunded {} won here but {remote_canceled} won at KakaoPay",
                    p.canceled_total
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
    pub async fn sync(&self, id: &str) -> Result<SyncReport, ServiceError> {
        let p = self.payment(id).await?;
        let tid = p.tid.parse().map_err(|_| ServiceError::Conflict {
            code: "corrupt_record",
            message: "stored tid is invalid".into(),
        })?;
        let before = p.status();
        let now = now_ms();
        let order = match self.kakaopay.order(&tid).await {
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
        if after.status().is_refundable() && !before.is_refundable() {
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
        let status = after.status();
        Ok(SyncReport {
            changed: (status != before).then_some((before, status)),
            still_unclear: Services::is_unclear(status, after.refund_in_flight.is_some()),
            mismatch,
            payment: after,
        })
    }

    /// KakaoPay does not know the TID (any more): nothing can have been paid under it. An unpaid
    /// payment whose time is over expires, an unclear approve past the grace period fails;
    /// anything else is reported as it is.
    async fn forgotten_by_kakaopay(
        &self,
        p: PaymentRecord,
        e: kakaopay::Error,
        now: i64,
    ) -> Result<SyncReport, ServiceError> {
        let from = p.status();
        let event = match from {
            PaymentStatus::Ready if now >= p.expires_at => Event::Expired,
            PaymentStatus::Approving
                if now - p.approve_started_at.unwrap_or(p.updated_at) >= self.grace_ms() =>
            {
                Event::ApproveFailed
            }
            _ => return Err(ServiceError::kakaopay(e)),
        };
        let to = transition(from, event)?;
        let changes = Changes {
            failure_code: Some("-721".into()),
            failure_message: Some("KakaoPay does not know this TID".into()),
            next_check_at: None,
            ..Changes::default()
        };
        let ev = NewEvent::cause(event.as_str())
            .code(Some(-721))
            .detail("order lookup: TID does not exist");
        self.store
            .transition(&p.id, from, to, &changes, &ev, now)
            .await?;
        let after = self.payment(&p.id).await?;
        Ok(SyncReport {
            changed: (after.status() != from).then_some((from, after.status())),
            mismatch: None,
            still_unclear: false,
            payment: after,
        })
    }

    /// Brings a `ready` or `approving` payment in line with KakaoPay's order; `true` when it
    /// re-sent the approve.
    async fn sync_unpaid(
        &self,
        p: &PaymentRecord,
        order: &OrderResponse,
        now: i64,
    ) -> Result<bool, ServiceError> {
        let from = p.status();
        if order.status.is_paid() || order.status == OrderStatus::IssuedSid {
            let paid = order.amount.as_ref().map(Amounts::from).unwrap_or_default();
            if let Some(why) = approval_mismatch(
                p,
                order.cid.as_str(),
                order.tid.as_str(),
                order.partner_order_id.as_str(),
                order.partner_user_id.as_str(),
                &paid,
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
            let changes = Changes {
                aid: payment_action
                    .and_then(|a| a.aid.as_ref())
                    .map(|a| a.as_str().to_owned()),
                approved_at: Some(
                    order
                        .approved_at
                        .map_or(now, |t| t.to_utc().timestamp_millis()),
                ),
                payment_method_type: order
                    .payment_method_type
                    .as_ref()
                    .map(|m| m.as_str().to_owned()),
                next_check_at: None,
                ..Changes::default()
            };
            let to = transition(from, Event::Approved)?;
            let ev = NewEvent::cause(Event::Approved.as_str())
                .detail(format!("order lookup: {}", order.status));
            self.store
                .transition(&p.id, from, to, &changes, &ev, now)
                .await?;
            return Ok(false);
        }
        // Only the server's own clock expires a payment: a browser's fail callback (which anyone
        // can forge) never does. An approve sent shortly before may still be applied, so an
        // `approving` payment waits for the grace period after its last send too.
        let started = p.approve_started_at.unwrap_or(p.updated_at);
        let remote = Remote {
            status: order.status.clone(),
            past_expiry: now >= p.expires_at
                && (from != PaymentStatus::Approving || now - started >= self.grace_ms()),
        };
        if let Some(event) = reconcile(from, &remote) {
            let to = transition(from, event)?;
            let failure = match event {
                Event::AuthFailed | Event::ApproveFailed => {
                    Some(format!("KakaoPay status {}", order.status))
                }
                Event::Expired => Some("not paid within 15 minutes".to_owned()),
                _ => None,
            };
            let changes = Changes {
                failure_code: failure.as_ref().map(|_| order.status.as_str().to_owned()),
                failure_message: failure,
                next_check_at: None,
                ..Changes::default()
            };
            let ev =
                NewEvent::cause(event.as_str()).detail(format!("order lookup: {}", order.status));
            self.store
                .transition(&p.id, from, to, &changes, &ev, now)
                .await?;
            return Ok(false);
        }
        if from == PaymentStatus::Approving {
            // KakaoPay has not applied the approve (yet). Each re-send waits twice as long as the
            // one before it.
            let wait = self
                .grace_ms()
                .saturating_mul(1 << p.resend_count.clamp(0, 5));
            let due = started.saturating_add(wait);
            if now - started < self.grace_ms()
                || (order.status == OrderStatus::AuthPassword && now < due)
            {
                self.store
                    .schedule_check(&p.id, Some(due.max(started + self.grace_ms())))
                    .await?;
            } else if let (OrderStatus::AuthPassword, Some(token)) = (
                &order.status,
                p.pg_token.as_deref().and_then(|t| PgToken::parse(t).ok()),
            ) {
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
                            .schedule_check(&p.id, Some(now + ms(MAX_BACKOFF)))
                            .await?;
                    }
                    return Ok(false);
                }
                self.store
                    .note(
                        &p.id,
                        from,
                        &NewEvent::cause("approve_resent").detail(format!(
                            "order lookup: AUTH_PASSWORD after the grace period (re-send {} of at most {MAX_RESENDS})",
                            p.resend_count + 1
                        )),
                        now,
                    )
                    .await?;
                self.store
                    .schedule_check(&p.id, Some(now + self.grace_ms()))
                    .await?;
                let resending = PaymentRecord {
                    approve_started_at: Some(now),
                    resend_count: p.resend_count + 1,
                    ..p.clone()
                };
                let resending = self.restamp_approve(resending, now).await?;
                self.send_approve(&resending, token).await?;
                return Ok(true);
            } else {
                let to = transition(from, Event::ApproveRetryable)?;
                let changes = Changes {
                    next_check_at: Some(p.expires_at + 5_000),
                    ..Changes::default()
                };
                let ev = NewEvent::cause(Event::ApproveRetryable.as_str())
                    .detail(format!("order lookup: {}", order.status));
                self.store
                    .transition(&p.id, from, to, &changes, &ev, now)
                    .await?;
            }
        } else {
            self.store
                .schedule_check(&p.id, Some(p.expires_at.max(now) + 5_000))
                .await?;
        }
        Ok(false)
    }

    async fn sync_refunds(
        &self,
        p: &PaymentRecord,
        order: &OrderResponse,
        now: i64,
    ) -> Result<(), ServiceError> {
        let from = p.status();
        let remote = order
            .canceled_amount
            .as_ref()
            .map(Amounts::from)
            .unwrap_or_default();
        let local = p.canceled();
        let refunds = self.store.refunds(&p.id).await?;
        let known: Vec<&str> = refunds.iter().filter_map(|r| r.aid.as_deref()).collect();
        let unknown_cancel_aid = order
            .payment_action_details
            .iter()
            .filter(|a| a.payment_action_type == Some(PaymentActionType::Cancel))
            .filter_map(|a| a.aid.as_ref().map(|x| x.as_str()))
            .rfind(|aid| !known.contains(aid))
            .map(str::to_owned);
        let paid_total = p.amounts().total;
        if let Some(refund_id) = p.refund_in_flight.as_deref() {
            let Some(refund) = refunds
                .iter()
                .find(|r| r.id == refund_id && r.status() == RefundStatus::Pending)
            else {
                return Ok(());
            };
            let expected = local.checked_add(&refund.amounts()).unwrap_or(local);
            if remote.total >= expected.total && remote.total > local.total {
                let to = if remote.total >= paid_total {
                    PaymentStatus::Canceled
                } else {
                    PaymentStatus::PartiallyCanceled
                };
                let aid = unknown_cancel_aid.unwrap_or_else(|| format!("unknown-{}", refund.id));
                let ev = NewEvent::cause(if to == PaymentStatus::Canceled {
                    Event::FullyRefunded.as_str()
                } else {
                    Event::PartlyRefunded.as_str()
                })
                .detail(format!(
                    "refund {} of {} won confirmed by order lookup, aid {aid}",
                    refund.id, refund.amount
                ));
                self.store
                    .finish_refund(
                        &p.id,
                        &refund.id,
                        RefundOutcome::Succeeded {
                            aid: &aid,
                            canceled: remote,
                        },
                        from,
                        to,
                        &ev,
                        now,
                    )
                    .await?;
            } else if remote.total == local.total {
                if now - refund.updated_at >= self.grace_ms() {
                    let ev = NewEvent::cause("refund_failed").detail(format!(
                        "refund {} was not applied by KakaoPay (order lookup)",
                        refund.id
                    ));
                    self.store
                        .finish_refund(
                            &p.id,
                            &refund.id,
                            RefundOutcome::Failed {
                                code: "not_applied",
                                message: "KakaoPay did not apply the refund",
                                release_key: false,
                            },
                            from,
                            from,
                            &ev,
                            now,
                        )
                        .await?;
                } else {
                    self.store
                        .schedule_check(&p.id, Some(refund.updated_at + self.grace_ms()))
                        .await?;
                }
            }
            return Ok(());
        }
        if remote.total > local.total {
            // Refunded at KakaoPay without this ledger knowing (KakaoPay's console, a lost record).
            let extra = remote.checked_sub(&local).unwrap_or_default();
            let to = if remote.total >= paid_total {
                PaymentStatus::Canceled
            } else {
                PaymentStatus::PartiallyCanceled
            };
            let refund = RefundRecord {
                id: new_id("rfd_"),
                payment_id: p.id.clone(),
                status: RefundStatus::Succeeded.as_str().to_owned(),
                amount: extra.total.won(),
                tax_free: extra.tax_free.won(),
                vat: extra.vat.won(),
                green_deposit: extra.green_deposit.won(),
                cancelable_before: paid_total.won() - local.total.won(),
                reason: Some("found at KakaoPay by reconciliation".into()),
                aid: unknown_cancel_aid,
                failure_code: None,
                failure_message: None,
                created_at: now,
                updated_at: now,
                idempotency_key: None,
            };
            let ev = NewEvent::cause("refund_reconciled").detail(format!(
                "{} won refunded at KakaoPay, recorded as {}",
                extra.total.won(),
                refund.id
            ));
            self.store
                .record_external_refund(&refund, from, to, remote, local.total.won(), &ev)
                .await?;
        }
        Ok(())
    }
}
