//! Refunds: full or partial, planned against the cancelable balance, one in flight per payment,
//! sent with KakaoPay's `cancel_available_amount` guard. A refund is a record with its own AID and
//! status; an unclear answer leaves it pending until a lookup settles it.

use super::{ServiceError, Services, new_id, now_ms};
use crate::domain::{Event, PaymentStatus, RefundRequest, RefundStatus, plan_refund};
use crate::store::{BeginRefund, NewEvent, PaymentRecord, RefundOutcome, RefundRecord};
use kakaopay::{Amount, CancelRequest, ErrorCode, Payload};

/// A refund as asked through the API.
#[derive(Clone, Debug)]
pub struct RefundInput {
    /// How much.
    pub amount: Amount,
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
    /// Refunds part or all of a payment.
    pub async fn refund(&self, id: &str, input: RefundInput) -> Result<RefundResult, ServiceError> {
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
                return Err(refund_in_progress());
            }
            let plan = plan_refund(
                &p.amounts(),
                &p.canceled(),
                RefundRequest {
                    amount: input.amount,
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
            };
            let ev = NewEvent::cause("refund_requested").detail(format!(
                "refund {} of {} won (tax-free {}, VAT {})",
                refund.id, refund.amount, refund.tax_free, refund.vat
            ));
            match self
                .store
                .begin_refund(&refund, status, p.canceled_total, &ev)
                .await?
            {
                BeginRefund::Started => {}
                BeginRefund::InFlight => return Err(refund_in_progress()),
                BeginRefund::Changed => continue,
            }
            return self
                .send_refund(&p, refund, plan.full, plan.cancelable_before, input.reason)
                .await;
        }
        Err(refund_in_progress())
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
        let payment = self.payment(&p.id).await?;
        let refunds = self.store.refunds(&p.id).await?;
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
}

fn refund_in_progress() -> ServiceError {
    ServiceError::Conflict {
        code: "refund_in_progress",
        message: "another refund of this payment is being processed; retry when it has finished"
            .into(),
    }
}
