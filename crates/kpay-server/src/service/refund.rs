//! Refunds: full or partial, planned against the cancelable balance, one in flight per payment,
//! sent with KakaoPay's `cancel_available_amount` guard. A refund is a record with its own AID and
//! status; an unclear answer leaves it pending until a lookup settles it.

use super::{Conflict, IdempotencyKey, ServiceError, Services};
use crate::domain::{
    Amounts, Cause, Detail, Failure, FailureCode, Payment, PaymentId, PaymentStatus, Refund,
    RefundAid, RefundRequest, RefundStatus, plan_refund,
};
use crate::store::{BeginRefund, RefundEnd};
use kakaopay::{Amount, CancelRequest, ErrorCode, Payload};

/// A refund as asked through the API.
#[derive(Clone, Debug)]
pub(crate) struct RefundInput {
    /// How much; `None`: everything that is left.
    pub(crate) amount: Option<Amount>,
    /// Tax-free part.
    pub(crate) tax_free: Option<Amount>,
    /// VAT part.
    pub(crate) vat: Option<Amount>,
    /// Why (kept with the refund and sent to KakaoPay as the payload).
    pub(crate) reason: Option<Payload>,
}

/// How a refund ended.
#[derive(Clone, Debug)]
pub(crate) struct RefundResult {
    /// The payment after it.
    pub(crate) payment: Payment,
    /// The refund.
    pub(crate) refund: Refund,
    /// Every refund of the payment, oldest first (this one included).
    pub(crate) refunds: Vec<Refund>,
}

impl Services {
    /// Refunds part or all of a payment. With an Idempotency-Key the refund carries the key:
    /// a request that finds a refund made under its key (its first attempt died, or its answer
    /// was pending) answers with that refund as it is now and never refunds again.
    pub(crate) async fn refund(
        &self,
        id: &PaymentId,
        input: RefundInput,
        key: Option<&IdempotencyKey>,
    ) -> Result<RefundResult, ServiceError> {
        self.refund_of(id, input, key, None).await
    }

    /// [`Services::refund`] of a balance an operator confirmed: refused (409 `balance_changed`)
    /// when what can be refunded is no longer `confirmed` (another refund landed meanwhile). The
    /// refund is recorded only against the balance it was checked against (the store's
    /// conditional begin), so a refund landing between the check and the begin is caught too.
    pub(crate) async fn refund_confirmed(
        &self,
        id: &PaymentId,
        input: RefundInput,
        confirmed: Amount,
    ) -> Result<RefundResult, ServiceError> {
        self.refund_of(id, input, None, Some(confirmed)).await
    }

    #[tracing::instrument(skip_all, fields(payment_id = %id))]
    async fn refund_of(
        &self,
        id: &PaymentId,
        input: RefundInput,
        key: Option<&IdempotencyKey>,
        confirmed: Option<Amount>,
    ) -> Result<RefundResult, ServiceError> {
        if let Some(k) = key
            && let Some(existing) = self.store.refund_by_key(&k.key).await?
        {
            return self.refund_outcome(existing).await;
        }
        for _ in 0..3 {
            let p = self.payment(id).await?;
            let status = p.status;
            if !status.is_refundable() {
                let message = match status {
                    PaymentStatus::Approving => "the payment's approval is still being confirmed; refund it once it is approved".to_owned(),
                    PaymentStatus::Canceled => "the payment is already fully refunded".to_owned(),
                    other => format!("a payment that is {other} has nothing to refund"),
                };
                return Err(ServiceError::Conflict {
                    code: Conflict::NotRefundable,
                    message,
                });
            }
            if p.refund_in_flight.is_some() {
                return self.in_progress(key).await;
            }
            if let Some(confirmed) = confirmed
                && p.cancelable() != confirmed
            {
                return Err(ServiceError::Conflict {
                    code: Conflict::BalanceChanged,
                    message: format!(
                        "the refundable amount changed from {} to {} won since it was confirmed",
                        confirmed.won(),
                        p.cancelable().won()
                    ),
                });
            }
            let plan = plan_refund(
                &p.amounts,
                &p.canceled,
                RefundRequest {
                    amount: input.amount.unwrap_or_else(|| p.cancelable()),
                    tax_free: input.tax_free,
                    vat: input.vat,
                },
            )?;
            // What the payment will have refunded once KakaoPay confirms: decided now, against the
            // balance the plan was made from, so that recording a confirmed refund never guesses.
            let refunded = p
                .canceled
                .checked_add(&plan.amounts)
                .filter(|r| r.total <= p.amounts.total)
                .ok_or_else(|| ServiceError::Invalid {
                    field: "amount",
                    message: "the refund would exceed what was paid".into(),
                })?;
            let now = self.now();
            let refund = Refund::pending(
                p.id.clone(),
                plan.amounts,
                plan.cancelable_before,
                input.reason.as_ref().map(|r| r.as_str().to_owned()),
                key.map(|k| k.key.clone()),
                now,
            );
            let detail = Detail::text(format!(
                "refund {} of {} won (tax-free {}, VAT {})",
                refund.id,
                refund.amounts.total.won(),
                refund.amounts.tax_free.won(),
                refund.amounts.vat.won()
            ));
            // Should this process die while the cancel is out, the reconciler looks it up once
            // the answer can no longer be on its way.
            let check_at = now.plus(self.grace());
            let begun = match self
                .store
                .begin_refund(&refund, status, p.canceled.total, detail, check_at)
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
                .send_refund(&p, refund, refunded, plan.full, input.reason)
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
    async fn refund_outcome(&self, refund: Refund) -> Result<RefundResult, ServiceError> {
        match refund.status {
            RefundStatus::Failed => {
                let failure = refund.failure.unwrap_or(Failure {
                    code: FailureCode::KakaoPayError,
                    message: None,
                });
                Err(ServiceError::RefundFailed {
                    refund_id: refund.id,
                    code: failure.code,
                    message: failure
                        .message
                        .unwrap_or_else(|| "the refund failed".to_owned()),
                })
            }
            RefundStatus::Pending => {
                self.resolve_in_background(refund.payment_id.clone());
                self.refund_result(refund).await
            }
            RefundStatus::Succeeded => self.refund_result(refund).await,
        }
    }

    /// The payment, `refund` as stored now, and every refund of the payment.
    async fn refund_result(&self, refund: Refund) -> Result<RefundResult, ServiceError> {
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
        p: &Payment,
        refund: Refund,
        refunded: Amounts,
        full: bool,
        reason: Option<Payload>,
    ) -> Result<RefundResult, ServiceError> {
        let amounts = refund.amounts;
        let mut cancel = CancelRequest::new(
            p.cid.clone(),
            p.tid.clone(),
            amounts.total,
            amounts.tax_free,
        )
        .vat(amounts.vat)
        .expect_available(refund.cancelable_before);
        if let Some(reason) = reason {
            cancel = cancel.payload(reason);
        }
        let outcome = self.kakaopay.cancel(&cancel).await;
        if outcome.is_ok() {
            crate::crashpoint::hit("refund.after_kakaopay");
        }
        let now = self.now();
        let from = p.status;
        match outcome {
            Ok(resp) => {
                let detail = Detail::text(format!(
                    "refund {} of {} won, aid {}",
                    refund.id,
                    amounts.total.won(),
                    resp.aid
                ));
                self.store
                    .finish_refund(
                        &p.id,
                        &refund.id,
                        RefundEnd::Succeeded {
                            aid: RefundAid::Known(resp.aid.clone()),
                            paid: p.amounts,
                            refunded,
                            asked_for_all: full,
                        },
                        from,
                        detail,
                        now,
                    )
                    .await?;
                tracing::info!(payment = %p.id, refund = %refund.id, amount = amounts.total.won(), aid = %resp.aid, "refunded");
            }
            Err(e) if e.may_have_applied() => {
                let detail = Detail::text(format!("refund {}: {e}", refund.id))
                    .code(e.code().map(ErrorCode::code));
                self.store
                    .note(&p.id, from, Cause::RefundUnclear, detail, now)
                    .await?;
                self.store.schedule_check(&p.id, Some(now)).await?;
                tracing::warn!(payment = %p.id, refund = %refund.id, error = %e, "refund outcome unknown; looking the order up");
                self.resolve_in_background(p.id.clone());
            }
            Err(e) => {
                let code = e.code().map_or(FailureCode::KakaoPayUnavailable, |c| {
                    FailureCode::KakaoPay(c.code())
                });
                let message = e.to_string();
                let unavailable = ServiceError::is_unavailable(&e);
                let detail = Detail::text(format!("refund {}: {message}", refund.id))
                    .code(e.code().map(ErrorCode::code));
                self.store
                    .finish_refund(
                        &p.id,
                        &refund.id,
                        RefundEnd::Failed {
                            failure: Failure {
                                code,
                                message: Some(message),
                            },
                            // Answered with a 5xx, which frees the key: a retry tries anew.
                            release_key: unavailable,
                        },
                        from,
                        detail,
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
        code: Conflict::RefundInProgress,
        message: "another refund of this payment is being processed; retry when it has finished"
            .into(),
    }
}
