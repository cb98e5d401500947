//! The buyer is back with a pg_token: claim the approve, call KakaoPay once, record what happened.
//! Duplicate callbacks (refresh, back button, double click, another instance) find the claim taken
//! and see the stored result; an unclear answer leaves the payment `approving` for lookups to settle.

use super::resolve::{CALLBACK_CALLS, CALLBACK_WINDOW};
use super::{ServiceError, Services};
use crate::domain::{
    Amounts, Cause, Detail, Event, FailureCode, Payment, PaymentChange, PaymentId, PaymentStatus,
    Timestamp,
};
use kakaopay::{
    ApproveRequest, ApproveResponse, CancelRequest, Cid, ErrorCode, PartnerOrderId, PartnerUserId,
    PgToken, Tid,
};
use std::time::Duration;

/// What KakaoPay says a paid order is: its ids and what was paid.
pub(crate) struct RemotePaid<'a> {
    pub(crate) cid: &'a Cid,
    pub(crate) tid: &'a Tid,
    pub(crate) order: &'a PartnerOrderId,
    pub(crate) user: &'a PartnerUserId,
    pub(crate) paid: Amounts,
}

/// Why KakaoPay's view of an approved payment does not match the ledger.
pub(crate) fn approval_mismatch(p: &Payment, remote: &RemotePaid<'_>) -> Option<String> {
    let RemotePaid {
        cid,
        tid,
        order,
        user,
        paid,
    } = remote;
    let mut problems = Vec::new();
    if *cid != &p.cid {
        problems.push(format!("cid {cid} ≠ {}", p.cid));
    }
    if *tid != &p.tid {
        problems.push(format!("tid {tid} ≠ {}", p.tid));
    }
    if *order != &p.partner_order_id {
        problems.push(format!("partner_order_id {order} ≠ {}", p.partner_order_id));
    }
    if *user != &p.partner_user_id {
        problems.push(format!("partner_user_id {user} ≠ {}", p.partner_user_id));
    }
    let stored = p.amounts;
    if paid.total != stored.total || paid.tax_free != stored.tax_free || paid.vat != stored.vat {
        problems.push(format!(
            "amount {}/{}/{} (total/tax-free/VAT) ≠ ordered {}/{}/{}",
            paid.total.won(),
            paid.tax_free.won(),
            paid.vat.won(),
            stored.total.won(),
            stored.tax_free.won(),
            stored.vat.won()
        ));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

impl Services {
    /// The approval callback: approves the payment once, whatever the number of callbacks.
    #[tracing::instrument(skip_all, fields(payment_id = %id))]
    pub(crate) async fn approve_callback(
        &self,
        id: &PaymentId,
        pg_token: PgToken,
    ) -> Result<Payment, ServiceError> {
        let mut waited = Duration::ZERO;
        let mut races = 0;
        loop {
            // The common case in one round trip: claim, then look only if that failed.
            let now = self.now();
            // Should this process die mid-call, the reconciler picks the payment up then.
            let next_check = now.plus(self.grace());
            if let Some(claimed) = self
                .store
                .claim_approve(
                    id,
                    &pg_token,
                    now,
                    next_check,
                    (CALLBACK_WINDOW, CALLBACK_CALLS),
                )
                .await?
            {
                let claimed = self.restamp_approve(claimed, now).await?;
                return self.send_approve(&claimed, pg_token).await;
            }
            let p = self.payment(id).await?;
            match p.status {
                PaymentStatus::Ready if p.is_past_expiry(now) => {
                    // Too late to approve; let KakaoPay say what happened.
                    return self.sync_from_callback(id).await;
                }
                PaymentStatus::Ready if races < 2 => {
                    // Changed between the claim and the read: try again.
                    races += 1;
                }
                PaymentStatus::Ready => {
                    // Still ready, yet the claim fails: the payment's callback budget is spent
                    // (a burst of callbacks, likely forged). Show it as it is.
                    tracing::warn!(payment = %id, "approve callback refused: callback budget spent");
                    return Ok(p);
                }
                PaymentStatus::Approving
                    if p.pg_token.as_ref() != Some(&pg_token)
                        && waited < Duration::from_secs(3) =>
                {
                    // Someone else claimed it with another token (a stale or forged one): if that
                    // fails, this one may still pay.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    waited += Duration::from_millis(100);
                }
                _ => return Ok(p),
            }
        }
    }

    /// Calls approve for a claimed (`approving`) payment and records the outcome.
    pub(crate) async fn send_approve(
        &self,
        p: &Payment,
        pg_token: PgToken,
    ) -> Result<Payment, ServiceError> {
        let request = ApproveRequest::new(
            p.cid.clone(),
            p.tid.clone(),
            p.partner_order_id.clone(),
            p.partner_user_id.clone(),
            pg_token,
        );
        let outcome = self.kakaopay.approve(&request).await;
        if outcome.is_ok() {
            crate::crashpoint::hit("approve.after_kakaopay");
        }
        let now = self.now();
        match outcome {
            Ok(resp) => self.record_approved(p, &resp, now).await,
            Err(e) if e.may_have_applied() => {
                let code = e.code().map(ErrorCode::code);
                self.store
                    .note(
                        &p.id,
                        PaymentStatus::Approving,
                        Cause::ApproveUnclear,
                        Detail::text(e.to_string()).code(code),
                        now,
                    )
                    .await?;
                self.store.schedule_check(&p.id, Some(now)).await?;
                tracing::warn!(payment = %p.id, error = %e, "approve outcome unknown; looking the order up");
                self.resolve_in_background(p.id.clone());
                self.payment(&p.id).await
            }
            Err(e) => {
                let code = e.code();
                let (event, failure) = match code {
                    // The buyer has not finished, or the token was not the right one: the buyer
                    // may still pay with the right token.
                    Some(ErrorCode::NotAuthenticatedYet | ErrorCode::InvalidPgToken) => {
                        (Event::ApproveRetryable, None)
                    }
                    Some(ErrorCode::PaymentExpired) => (
                        Event::Expired,
                        Some((
                            FailureCode::KakaoPay(ErrorCode::PaymentExpired.code()),
                            e.to_string(),
                        )),
                    ),
                    // Never reached KakaoPay: nothing happened; the buyer can retry.
                    None if e.is_retryable() => (Event::ApproveRetryable, None),
                    _ => (
                        Event::ApproveFailed,
                        Some((
                            code.map_or(FailureCode::KakaoPayError, |c| {
                                FailureCode::KakaoPay(c.code())
                            }),
                            failure_text(&e),
                        )),
                    ),
                };
                let mut change = match failure {
                    Some((code, message)) => PaymentChange::failed(code, message),
                    None => PaymentChange::default(),
                };
                if event == Event::ApproveRetryable {
                    // Back to ready: the expiry check stays due.
                    change.next_check_at =
                        Some(p.expires_at.plus(crate::domain::EXPIRY_CHECK_DELAY));
                }
                let to = self
                    .store
                    .transition(
                        p,
                        PaymentStatus::Approving,
                        event,
                        &change,
                        Detail::text(e.to_string()).code(code.map(ErrorCode::code)),
                        now,
                    )
                    .await?;
                tracing::info!(payment = %p.id, error = %e, to = ?to, "approve refused");
                self.payment(&p.id).await
            }
        }
    }

    /// Records a successful approve, after checking it against the ledger.
    async fn record_approved(
        &self,
        p: &Payment,
        resp: &ApproveResponse,
        now: Timestamp,
    ) -> Result<Payment, ServiceError> {
        let paid = Amounts::from(&resp.amount);
        if let Some(why) = approval_mismatch(
            p,
            &RemotePaid {
                cid: &resp.cid,
                tid: &resp.tid,
                order: &resp.partner_order_id,
                user: &resp.partner_user_id,
                paid,
            },
        ) {
            return self
                .cancel_mismatch(p, PaymentStatus::Approving, paid, &why)
                .await;
        }
        let change = PaymentChange {
            aid: Some(resp.aid.clone()),
            approved_at: Some(resp.approved_at.map_or(now, |t| t.to_utc().into())),
            method: resp.payment_method_type.clone(),
            card_info: resp
                .card_info
                .as_ref()
                .and_then(|c| serde_json::to_value(c).ok()),
            next_check_at: None,
            ..PaymentChange::default()
        };
        if let Some(to) = self
            .store
            .transition(
                p,
                PaymentStatus::Approving,
                Event::Approved,
                &change,
                Detail::text(format!("aid {}", resp.aid)),
                now,
            )
            .await?
        {
            tracing::info!(payment = %p.id, aid = %resp.aid, "payment approved");
            let approved = p.applied(to, &change, now);
            if let (Some(sub_id), Some(sid)) = (&approved.subscription_id, &resp.sid) {
                // A registration: the SID is in hand now (the scheduler's sweep would find it
                // by a lookup otherwise, should this step fail or the process die here).
                let at = resp.approved_at.map(|t| t.to_utc().into());
                match self.store.subscription(sub_id).await {
                    Ok(Some(sub)) => {
                        if let Err(e) = self
                            .settle_registration(&sub, &approved, Some((sid.clone(), at)))
                            .await
                        {
                            tracing::warn!(subscription = %sub_id, error = %e, "registration not settled yet; the scheduler will");
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(subscription = %sub_id, error = %e, "registration not settled yet; the scheduler will")
                    }
                }
            }
            return Ok(approved);
        }
        self.payment(&p.id).await
    }

    /// KakaoPay approved something that is not what was ordered: cancel it at KakaoPay at once and
    /// record why. Until the cancel is confirmed the payment stays where it is (`from`).
    pub(crate) async fn cancel_mismatch(
        &self,
        p: &Payment,
        from: PaymentStatus,
        paid: Amounts,
        why: &str,
    ) -> Result<Payment, ServiceError> {
        tracing::error!(payment = %p.id, mismatch = %why, "approved payment does not match the order; cancelling it");
        let now = self.now();
        self.store
            .note(&p.id, from, Cause::AmountMismatch, Detail::text(why), now)
            .await?;
        let cancel = CancelRequest::new(p.cid.clone(), p.tid.clone(), paid.total, paid.tax_free)
            .vat(paid.vat)
            .expect_available(paid.total);
        match self.kakaopay.cancel(&cancel).await {
            Ok(resp) => {
                let canceled = Amounts::from(&resp.canceled_amount);
                self.record_mismatch_canceled(p, from, canceled, why, Some(&resp.aid))
                    .await
            }
            Err(e) => {
                // Unclear or refused: keep it due; the next lookup sees either the cancel or a paid
                // mismatching order and tries again.
                self.store
                    .note(
                        &p.id,
                        from,
                        Cause::MismatchCancelFailed,
                        Detail::text(e.to_string()).code(e.code().map(ErrorCode::code)),
                        now,
                    )
                    .await?;
                self.store
                    .schedule_check(&p.id, Some(now.plus(Duration::from_secs(1))))
                    .await?;
                if e.may_have_applied() {
                    self.resolve_in_background(p.id.clone());
                }
                self.payment(&p.id).await
            }
        }
    }

    /// Records a payment cancelled because of a mismatch. The ledger keeps what was ordered and
    /// marks all of it given back; KakaoPay's own figures go into the event.
    pub(crate) async fn record_mismatch_canceled(
        &self,
        p: &Payment,
        from: PaymentStatus,
        kakaopay_canceled: Amounts,
        why: &str,
        aid: Option<&kakaopay::Aid>,
    ) -> Result<Payment, ServiceError> {
        let now = self.now();
        let canceled = p.amounts;
        let why = format!(
            "{why}; KakaoPay cancelled {} won",
            kakaopay_canceled.total.won()
        );
        let why = why.as_str();
        let change = PaymentChange {
            canceled: Some(canceled),
            canceled_at: Some(now),
            ..PaymentChange::failed(FailureCode::AmountMismatch, why)
        };
        let detail = match aid {
            Some(aid) => format!("{why}; cancelled at KakaoPay, aid {aid}"),
            None => format!("{why}; cancelled at KakaoPay"),
        };
        self.store
            .transition(
                p,
                from,
                Event::MismatchCanceled,
                &change,
                Detail::text(detail),
                now,
            )
            .await?;
        self.payment(&p.id).await
    }
}

/// KakaoPay's reason, for the failure message shown to operators.
fn failure_text(e: &kakaopay::Error) -> String {
    match e.api() {
        Some(api) => match (&api.method_result_code, &api.method_result_message) {
            (Some(c), Some(m)) => format!("{} ({c}: {m})", api.message),
            _ => api.message.clone(),
        },
        None => e.to_string(),
    }
}
