//! The buyer is back with a pg_token: claim the approve, call KakaoPay once, record what happened.
//! Duplicate callbacks (refresh, back button, double click, another instance) find the claim taken
//! and see the stored result; an unclear answer leaves the payment `approving` for lookups to settle.

use super::{ServiceError, Services, now_ms};
use crate::domain::{Amounts, Event, PaymentStatus, transition};
use crate::store::{Changes, NewEvent, PaymentRecord};
use kakaopay::{ApproveRequest, ApproveResponse, CancelRequest, ErrorCode, PgToken};
use std::time::Duration;

/// Why KakaoPay's view of an approved payment does not match the ledger.
pub(crate) fn approval_mismatch(
    p: &PaymentRecord,
    cid: &str,
    tid: &str,
    order: &str,
    user: &str,
    paid: &Amounts,
) -> Option<String> {
    let mut problems = Vec::new();
    if cid != p.cid {
        problems.push(format!("cid {cid} ≠ {}", p.cid));
    }
    if tid != p.tid {
        problems.push(format!("tid {tid} ≠ {}", p.tid));
    }
    if order != p.partner_order_id {
        problems.push(format!("partner_order_id {order} ≠ {}", p.partner_order_id));
    }
    if user != p.partner_user_id {
        problems.push(format!("partner_user_id {user} ≠ {}", p.partner_user_id));
    }
    let stored = p.amounts();
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
    pub async fn approve_callback(
        &self,
        id: &str,
        pg_token: PgToken,
    ) -> Result<PaymentRecord, ServiceError> {
        let mut waited = Duration::ZERO;
        let mut races = 0;
        loop {
            // The common case in one round trip: claim, then look only if that failed.
            let now = now_ms();
            // Should this process die mid-call, the reconciler picks the payment up then.
            let next_check = now + self.grace_ms();
            if let Some(claimed) = self
                .store
                .claim_approve(id, pg_token.expose(), now, next_check)
                .await?
            {
                let claimed = self.restamp_approve(claimed, now).await?;
                return self.send_approve(&claimed, pg_token).await;
            }
            let p = self.payment(id).await?;
            match p.status() {
                PaymentStatus::Ready if now >= p.expires_at => {
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
                    if p.pg_token.as_deref() != Some(pg_token.expose())
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
        p: &PaymentRecord,
        pg_token: PgToken,
    ) -> Result<PaymentRecord, ServiceError> {
        let request = ApproveRequest::new(
            self.kakaopay.cid().clone(),
            p.tid.parse().map_err(|_| ServiceError::Conflict {
                code: "corrupt_record",
                message: "stored tid is invalid".into(),
            })?,
            p.partner_order_id
                .parse()
                .map_err(|_| ServiceError::Conflict {
                    code: "corrupt_record",
                    message: "stored order id is invalid".into(),
                })?,
            p.partner_user_id
                .parse()
                .map_err(|_| ServiceError::Conflict {
                    code: "corrupt_record",
                    message: "stored user id is invalid".into(),
                })?,
            pg_token,
        );
        let outcome = self.kakaopay.approve(&request).await;
        if outcome.is_ok() {
            crate::crashpoint::hit("approve.after_kakaopay");
        }
        let now = now_ms();
        match outcome {
            Ok(resp) => self.record_approved(p, &resp, now).await,
            Err(e) if e.may_have_applied() => {
                let code = e.code().map(ErrorCode::code);
                self.store
                    .note(
                        &p.id,
                        PaymentStatus::Approving,
                        &NewEvent::cause("approve_unclear")
                            .code(code)
                            .detail(e.to_string()),
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
                    Some(ErrorCode::PaymentExpired) => {
                        (Event::Expired, Some(("-723".to_owned(), e.to_string())))
                    }
                    // Never reached KakaoPay: nothing happened; the buyer can retry.
                    None if e.is_retryable() => (Event::ApproveRetryable, None),
                    _ => (
                        Event::ApproveFailed,
                        Some((
                            code.map_or_else(
                                || "kakaopay_error".to_owned(),
                                |c| c.code().to_string(),
                            ),
                            failure_text(&e),
                        )),
                    ),
                };
                let to = transition(PaymentStatus::Approving, event)?;
                let changes = Changes {
                    failure_code: failure.as_ref().map(|f| f.0.clone()),
                    failure_message: failure.map(|f| f.1),
                    // Back to ready: the expiry check stays due.
                    next_check_at: (to == PaymentStatus::Ready).then_some(p.expires_at + 5_000),
                    ..Changes::default()
                };
                let ev = NewEvent::cause(event.as_str())
                    .code(code.map(ErrorCode::code))
                    .detail(e.to_string());
                self.store
                    .transition(&p.id, PaymentStatus::Approving, to, &changes, &ev, now)
                    .await?;
                tracing::info!(payment = %p.id, error = %e, to = %to, "approve refused");
                self.payment(&p.id).await
            }
        }
    }

    /// Records a successful approve, after checking it against the ledger.
    async fn record_approved(
        &self,
        p: &PaymentRecord,
        resp: &ApproveResponse,
        now: i64,
    ) -> Result<PaymentRecord, ServiceError> {
        let paid = Amounts::from(&resp.amount);
        if let Some(why) = approval_mismatch(
            p,
            resp.cid.as_str(),
            resp.tid.as_str(),
            resp.partner_order_id.as_str(),
            resp.partner_user_id.as_str(),
            &paid,
        ) {
            return self
                .cancel_mismatch(p, PaymentStatus::Approving, paid, &why)
                .await;
        }
        let changes = Changes {
            aid: Some(resp.aid.as_str().to_owned()),
            approved_at: Some(
                resp.approved_at
                    .map_or(now, |t| t.to_utc().timestamp_millis()),
            ),
            payment_method_type: resp
                .payment_method_type
                .as_ref()
                .map(|m| m.as_str().to_owned()),
            card_info: resp
                .card_info
                .as_ref()
                .and_then(|c| serde_json::to_string(c).ok()),
            next_check_at: None,
            ..Changes::default()
        };
        let to = transition(PaymentStatus::Approving, Event::Approved)?;
        let ev = NewEvent::cause(Event::Approved.as_str()).detail(format!("aid {}", resp.aid));
        if self
            .store
            .transition(&p.id, PaymentStatus::Approving, to, &changes, &ev, now)
            .await?
        {
            tracing::info!(payment = %p.id, aid = %resp.aid, "payment approved");
            return Ok(p.applied(to, &changes, now));
        }
        self.payment(&p.id).await
    }

    /// KakaoPay approved something that is not what was ordered: cancel it at KakaoPay at once and
    /// record why. Until the cancel is confirmed the payment stays where it is (`from`).
    pub(crate) async fn cancel_mismatch(
        &self,
        p: &PaymentRecord,
        from: PaymentStatus,
        paid: Amounts,
        why: &str,
    ) -> Result<PaymentRecord, ServiceError> {
        tracing::error!(payment = %p.id, mismatch = %why, "approved payment does not match the order; cancelling it");
        let now = now_ms();
        self.store
            .note(
                &p.id,
                from,
                &NewEvent::cause("amount_mismatch").detail(why.to_owned()),
                now,
            )
            .await?;
        let tid = p.tid.parse().map_err(|_| ServiceError::Conflict {
            code: "corrupt_record",
            message: "stored tid is invalid".into(),
        })?;
        let cancel =
            CancelRequest::new(self.kakaopay.cid().clone(), tid, paid.total, paid.tax_free)
                .vat(paid.vat)
                .expect_available(paid.total);
        match self.kakaopay.cancel(&cancel).await {
            Ok(resp) => {
                let canceled = Amounts::from(&resp.canceled_amount);
                self.record_mismatch_canceled(p, from, canceled, why, Some(resp.aid.as_str()))
                    .await
            }
            Err(e) => {
                // Unclear or refused: keep it due; the next lookup sees either the cancel or a paid
                // mismatching order and tries again.
                self.store
                    .note(
                        &p.id,
                        from,
                        &NewEvent::cause("mismatch_cancel_failed")
                            .code(e.code().map(ErrorCode::code))
                            .detail(e.to_string()),
                        now,
                    )
                    .await?;
                self.store.schedule_check(&p.id, Some(now + 1_000)).await?;
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
        p: &PaymentRecord,
        from: PaymentStatus,
        kakaopay_canceled: Amounts,
        why: &str,
        aid: Option<&str>,
    ) -> Result<PaymentRecord, ServiceError> {
        let now = now_ms();
        let canceled = p.amounts();
        let why = format!(
            "{why}; KakaoPay cancelled {} won",
            kakaopay_canceled.total.won()
        );
        let why = why.as_str();
        let to = transition(from, Event::MismatchCanceled)?;
        let changes = Changes {
            failure_code: Some("amount_mismatch".into()),
            failure_message: Some(why.to_owned()),
            canceled: Some(canceled),
            canceled_at: Some(now),
            next_check_at: None,
            ..Changes::default()
        };
        let detail = match aid {
            Some(aid) => format!("{why}; cancelled at KakaoPay, aid {aid}"),
            None => format!("{why}; cancelled at KakaoPay"),
        };
        self.store
            .transition(
                &p.id,
                from,
                to,
                &changes,
                &NewEvent::cause(Event::MismatchCanceled.as_str()).detail(detail),
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
