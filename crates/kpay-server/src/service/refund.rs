//! Refunds: full or partial, planned against the cancelable balance, one in flight per payment,
//! sent with KakaoPay's `cancel_available_amount` guard. A refund is a record with its own AID and
//! status; an unclear answer leaves it pending until a lookup settles it.

use super::{IdempotencyKey, ServiceError, Services, new_id, now_ms};
use crate::domain::{Event, PaymentStatus, RefundRequest, RefundStatus, plan_refund};
use crate::store::{BeginRefund, NewEvent, PaymentRecord, RefundOutcome, RefundRecord};
use kakaopay::{Amount, CancelRequest, ErrorCode, Payload};

/// A refund as asked through the API.
#[derive(Clone, Debug)]
pub struct RefundInput {
    /// How much; `None`: everything that is left.
    pub amount: Option<Amount>,
    /// Tax-free part.
    pub tax_free: Option<Amount>,
    /// VAT part.
    pub vat: Option<Amount>,
    /// Why (kept with the refund and sent to KakaoPay as the payload).
    pub reason: Option<Payload>,
}

/// How a refund ended.
#[derive(Clone, Debug)]
pub struct RefundResult {
    /// The payment after it.
    pub payment: PaymentRecord,
    /// The refund record.
    pub refund: RefundRecord,
    /// Every refund of the payment, oldest first (this one included).
    pub refunds: Vec<RefundRecord>,
}

impl Services {
    /// Refunds part or all of a payment. With an Idempotency-Key the refund carries the key:
    /// a request that finds a refund made under its key (its first attempt died, or its answer
    /// was pending) answers with that refund as it is now and never refunds again.
    pub async fn refund(
        &self,
        id: &str,
        input: RefundInput,
        key: Option<&IdempotencyKey>,
    ) -> Result<RefundResult, ServiceError> {
        if let Some(k) = key
            && let Some(existing) = self.store.refund_by_key(&k.key).await?
        {
            return self.refund_outcome(existing).await;
        }
        for _ in 0..3 {
            let p = self.payment(id).await?;
            let status = p.status();
            if !status.is_refundable() {
                let message = match status {
                    PaymentStatus::Approving => "the payment's approval is still being confirmed; refund it once it is approved".to_owned(),
                    PaymentStatus::Canceled => "the payment is already fully refunded".to_owned(),
                    other => format!("a payment that is {other} has nothing to refund"),
                };
                return Err(ServiceError::Conflict {
                    code: "not_refundable",
                    message,
                });
            }
            if p.refund_in_flight.is_some() {
                return self.in_progress(key).await;
            }
            let plan = plan_refund(
                &p.amounts(),
                &p.canceled(),
                RefundRequest {
                    amount: input.amount.unwrap_or_else(|| p.cancelable()),
                    tax_free: input.tax_free,
                    vat: input.vat,
                },
            )?;
            let now = now_ms();
            let refund = RefundRecord {
                id: new_id("rfd_"),
                payment_id: p.id.clone(),
                status: RefundStatus::Pending.as_str().to_owned(),
                amount: plan.amounts.total.won(),
                tax_free: plan.amounts.tax_free.won(),
                vat: plan.amounts.vat.won(),
                green_deposit: plan.amounts.green_deposit.won(),
                cancelable_before: plan.cancelable_before.won(),
                reason: input.reason.as_ref().map(|r| r.as_str().to_owned()),
                aid: None,
                failure_code: None,
                failure_message: None,
                created_at: now,
                updated_at: now,
                idempotency_key: key.map(|k| k.key.clone()),
            };
            let ev = NewEvent::cause("refund_requested").detail(format!(
                "refund {} of {} won (tax-free {}, VAT {})",
                refund.id, refund.amount, refund.tax_free, refund.vat
            ));
            // Should this process die while the cancel is out, the reconciler looks it up once
            // the answer can no longer be on its way.
            let check_at = now + self.grace_ms();
            let begun = match self
                .store
                .begin_refund(&refund, status, p.canceled_total, &ev, check_at)
                .await
            {
                Ok(b) => b,
                // Another request with the same key won the race: answer with its refund.
                Err(e) if e.is_unique_violation() && key.is_some() => {
                    return self.in_progress(key).await;
                }
                Err(e) => return Err(e.into()),
            };
            match begun {
                BeginRefund::Started => self.restamp_refund(&refund.id, now).await?,
                BeginRefund::InFlight => return self.in_progress(key).await,
                BeginRefund::Changed => continue,
            }
            return self
                .send_refund(&p, refund, plan.full, plan.cancelable_before, input.reason)
                .await;
        }
        self.in_progress(key).await
    }

    /// Another refund holds the payment's refund slot: the one made under `key` if there is one
    /// (answered as it is), else 409.
    async fn in_progress(
        &self,
        key: Option<&IdempotencyKey>,
    ) -> Result<RefundResult, ServiceError> {
        if let Some(k) = key
            && let Some(existing) = self.store.refund_by_key(&k.key).await?
        {
            return self.refund_outcome(existing).await;
        }
        Err(refund_in_progress())
    }

    /// The answer for a refund that already exists: succeeded or pending (its resolution kept
    /// going) with the payment, or the failure it ended with.
    async fn refund_outcome(&self, refund: RefundRecord) -> Result<RefundResult, ServiceError> {
        match refund.status() {
            RefundStatus::Failed => Err(ServiceError::RefundFailed {
                refund_id: refund.id,
                code: refund
                    .failure_code
                    .unwrap_or_else(|| "refund_failed".to_owned()),
                message: refund
                    .failure_message
                    .unwrap_or_else(|| "the refund failed".to_owned()),
            }),
            RefundStatus::Pending => {
                self.resolve_in_background(refund.payment_id.clone());
                self.refund_result(refund).await
            }
            RefundStatus::Succeeded => self.refund_result(refund).await,
        }
    }

    /// The payment, `refund` as stored now, and every refund of the payment.
    async fn refund_result(&self, refund: RefundRecord) -> Result<RefundResult, ServiceError> {
        let payment = self.payment(&refund.payment_id).await?;
        let refunds = self.store.refunds(&refund.payment_id).await?;
        let refund = refunds
            .iter()
            .find(|r| r.id == refund.id)
            .cloned()
            .unwrap_or(refund);
        Ok(RefundResult {
            payment,
            refund,
            refunds,
        })
    }

    async fn send_refund(
        &self,
        p: &PaymentRecord,
        refund: RefundRecord,
        full: bool,
        cancelable_before: Amount,
        reason: Option<Payload>,
    ) -> Result<RefundResult, ServiceError> {
        let tid = p.tid.parse().map_err(|_| ServiceError::Conflict {
            code: "corrupt_record",
            message: "stored tid is invalid".into(),
        })?;
        let amounts = refund.amounts();
        let mut cancel = CancelRequest::new(
            self.kakaopay.cid().clone(),
            tid,
            amounts.total,
            amounts.tax_free,
        )
        .vat(amounts.vat)
        .expect_available(cancelable_before);
        if let Some(reason) = reason {
            cancel = cancel.payload(reason);
        }
        let outcome = self.kakaopay.cancel(&cancel).await;
        if outcome.is_ok() {
            crate::crashpoint::hit("refund.after_kakaopay");
        }
        let now = now_ms();
        let from = p.status();
        match outcome {
            Ok(resp) => {
                let canceled = p.canceled().checked_add(&amounts).unwrap_or(amounts);
                let to = if full || canceled.total >= p.amounts().total {
                    PaymentStatus::Canceled
                } else {
                    PaymentStatus::PartiallyCanceled
                };
                let event = if to == PaymentStatus::Canceled {
                    Event::FullyRefunded
                } else {
                    Event::PartlyRefunded
                };
                let ev = NewEvent::cause(event.as_str()).detail(format!(
                    "refund {} of {} won, aid {}",
                    refund.id, refund.amount, resp.aid
                ));
                self.store
                    .finish_refund(
                        &p.id,
                        &refund.id,
                        RefundOutcome::Succeeded {
                            aid: resp.aid.as_str(),
                            canceled,
                        },
                        from,
                        to,
                        &ev,
                        now,
                    )
                    .await?;
                tracing::info!(payment = %p.id, refund = %refund.id, amount = refund.amount, aid = %resp.aid, "refunded");
            }
            Err(e) if e.may_have_applied() => {
                let ev = NewEvent::cause("refund_unclear")
                    .code(e.code().map(ErrorCode::code))
                    .detail(format!("refund {}: {e}", refund.id));
                self.store.note(&p.id, from, &ev, now).await?;
                self.store.schedule_check(&p.id, Some(now)).await?;
                tracing::warn!(payment = %p.id, refund = %refund.id, error = %e, "refund outcome unknown; looking the order up");
                self.resolve_in_background(p.id.clone());
            }
            Err(e) => {
                let code = e.code().map_or_else(
                    || "kakaopay_unavailable".to_owned(),
                    |c| c.code().to_string(),
                );
                let message = e.to_string();
                let unavailable = ServiceError::is_unavailable(&e);
                let ev = NewEvent::cause("refund_failed")
                    .code(e.code().map(ErrorCode::code))
                    .detail(format!("refund {}: {message}", refund.id));
                self.store
                    .finish_refund(
                        &p.id,
                        &refund.id,
                        RefundOutcome::Failed {
                            code: &code,
                            message: &message,
                            // Answered with a 5xx, which frees the key: a retry tries anew.
                            release_key: unavailable,
                        },
                        from,
                        from,
                        &ev,
                        now,
                    )
                    .await?;
                if e.code() == Some(ErrorCode::CancelAmountExceedsAvailable) {
                    // KakaoPay's balance differs from ours: learn why.
                    self.resolve_in_background(p.id.clone());
                }
                return Err(ServiceError::kakaopay(e));
            }
        }
        self.refund_result(refund).await
    }
}

fn refund_in_progress() -> ServiceError {
    ServiceError::Conflict {
        code: "refund_in_progress",
        message: "another refund of this payment is being processed; retry when it has finished"
            .into(),
    }
}
