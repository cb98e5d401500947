//! Subscriptions (정기 결제): registration through an ordinary payment with the subscription CID
//! (0 won for a trial: KakaoPay's SID-only registration), cancel now or at the period's end,
//! sync with KakaoPay's status, and extra charges. Renewals, dunning and lost answers are the
//! scheduler's ([`renewals`]).

pub(crate) mod renewals;

use super::{Conflict, IdempotencyKey, ServiceError, Services};
use crate::domain::{
    Amounts, Cadence, Channel, Charge, ChargeId, ChargeKind, ChargeStatus, Detail, Payment,
    PaymentId, Redirects, Subscription, SubscriptionCause, SubscriptionEvent, SubscriptionId,
    SubscriptionLogLine, SubscriptionStatus,
};
use crate::store::{Claim, SubWrite, SubscriptionFilter, SubscriptionPage};
use kakaopay::{
    Amount, ItemName, PartnerOrderId, PartnerUserId, Quantity, ReadyRequest, RedirectUrl, Sid,
};

/// A validated subscription to create.
#[derive(Clone, Debug)]
pub(crate) struct CreateSubscription {
    /// The buyer (KakaoPay binds the SID to it).
    pub(crate) partner_user_id: PartnerUserId,
    /// What is sold.
    pub(crate) item_name: ItemName,
    /// Charged every period.
    pub(crate) amounts: Amounts,
    /// How often.
    pub(crate) cadence: Cadence,
    /// Days before the first charge.
    pub(crate) trial_days: u16,
    /// Which KakaoPay page.
    pub(crate) channel: Channel,
    /// Where the buyer goes afterwards.
    pub(crate) return_url: Option<String>,
}

/// One item: subscriptions are sold one at a time.
fn one() -> Result<Quantity, ServiceError> {
    Quantity::new(1).map_err(|e| ServiceError::Invalid {
        field: "quantity",
        message: e.reason().to_owned(),
    })
}

/// A subscription id from a URL (text that is not one names no subscription).
pub(crate) fn subscription_id(id: &str) -> Result<SubscriptionId, ServiceError> {
    SubscriptionId::parse(id).map_err(|_| ServiceError::NotFound(id.to_owned()))
}

impl Services {
    /// Loads a subscription or fails with [`ServiceError::NotFound`].
    pub(crate) async fn subscription(
        &self,
        id: &SubscriptionId,
    ) -> Result<Subscription, ServiceError> {
        self.store
            .subscription(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(id.to_string()))
    }

    /// A page of subscriptions.
    pub(crate) async fn subscriptions(
        &self,
        f: &SubscriptionFilter,
    ) -> Result<SubscriptionPage, ServiceError> {
        Ok(self.store.subscriptions_page(f).await?)
    }

    /// Every charge attempt, oldest first.
    pub(crate) async fn charges(&self, id: &SubscriptionId) -> Result<Vec<Charge>, ServiceError> {
        self.subscription(id).await?;
        Ok(self.store.charges(id).await?)
    }

    /// The subscription's log.
    pub(crate) async fn subscription_log(
        &self,
        id: &SubscriptionId,
    ) -> Result<Vec<SubscriptionLogLine>, ServiceError> {
        Ok(self.store.subscription_log(id).await?)
    }

    /// Open charge attempts (unknown or pending) across subscriptions: for the operator.
    pub(crate) async fn open_charges(&self) -> Result<Vec<Charge>, ServiceError> {
        Ok(self.store.open_charges(200).await?)
    }

    /// Subscriptions by status and open charges (metrics).
    pub(crate) async fn subscription_metrics(
        &self,
    ) -> Result<(Vec<(String, i64)>, i64), ServiceError> {
        Ok((
            self.store.subscription_counts().await?,
            self.store.open_charge_count().await?,
        ))
    }

    /// Creates a subscription: ready with the subscription CID for the first period (or 0 won
    /// for a trial), stored with its registration payment. With an Idempotency-Key, a retry
    /// finds the subscription its first attempt made.
    pub(crate) async fn create_subscription(
        &self,
        input: CreateSubscription,
        key: Option<&IdempotencyKey>,
    ) -> Result<(Subscription, Payment), ServiceError> {
        if let Some(k) = key
            && let Some(existing) = self.store.subscription_by_key(&k.key).await?
        {
            let p = self.payment(&existing.registration_payment_id).await?;
            return Ok((existing, p));
        }
        let sub_id = SubscriptionId::generate();
        let pay_id = PaymentId::generate();
        let invalid = |e: kakaopay::ValidationError| ServiceError::Invalid {
            field: e.field(),
            message: e.reason().to_owned(),
        };
        // The registration pays period 0 (its order id is period 0's); a trial's registration
        // pays nothing, and period 0 is charged later under `{id}-0`.
        let order = if input.trial_days > 0 {
            PartnerOrderId::parse(format!("{sub_id}-trial"))
        } else {
            PartnerOrderId::parse(format!("{sub_id}-0"))
        }
        .map_err(invalid)?;
        let first = if input.trial_days > 0 {
            Amounts::default()
        } else {
            input.amounts
        };
        let base = &self.settings.public_url;
        let url = |field: &'static str, step: &str| {
            RedirectUrl::parse_for(field, format!("{base}/pay/{pay_id}/{step}"))
        };
        let cid = self.kakaopay.subscription_cid().clone();
        let request = ReadyRequest {
            cid: cid.clone(),
            cid_secret: None,
            partner_order_id: order.clone(),
            partner_user_id: input.partner_user_id.clone(),
            item_name: input.item_name.clone(),
            item_code: None,
            quantity: one()?,
            total_amount: first.total,
            tax_free_amount: first.tax_free,
            vat_amount: Some(first.vat),
            green_deposit: None,
            approval_url: url("approval_url", "approve").map_err(invalid)?,
            cancel_url: url("cancel_url", "cancel").map_err(invalid)?,
            fail_url: url("fail_url", "fail").map_err(invalid)?,
            available_cards: None,
            payment_method_type: None,
            install_month: None,
            use_share_installment: None,
            custom_json: None,
            redirect_scheme_url: None,
        };
        let ready = self
            .kakaopay
            .ready(&request)
            .await
            .map_err(ServiceError::kakaopay)?;
        let redirect = match input.channel {
            Channel::Pc => ready.next_redirect_pc_url.clone(),
            Channel::Mobile => ready.next_redirect_mobile_url.clone(),
            Channel::App => ready.next_redirect_app_url.clone(),
        }
        .or_else(|| ready.next_redirect_pc_url.clone())
        .ok_or_else(|| ServiceError::Conflict {
            code: Conflict::KakaopayNoRedirect,
            message: "KakaoPay answered ready without a redirect URL".into(),
        })?;
        let now = self.now();
        let mut payment = Payment::ready(
            pay_id,
            cid.clone(),
            ready.tid.clone(),
            (order, input.partner_user_id.clone()),
            (input.item_name.clone(), None, one()?),
            first,
            input.channel,
            Redirects {
                url: redirect,
                pc: ready.next_redirect_pc_url,
                mobile: ready.next_redirect_mobile_url,
                app: ready.next_redirect_app_url,
            },
            input.return_url.clone(),
            None,
            now,
            self.settings.payment_ttl,
        );
        payment.subscription_id = Some(sub_id.clone());
        let sub = Subscription {
            id: sub_id,
            status: SubscriptionStatus::Incomplete,
            cid,
            partner_user_id: input.partner_user_id,
            item_name: input.item_name,
            amounts: input.amounts,
            cadence: input.cadence,
            trial_days: input.trial_days,
            return_url: input.return_url,
            registration_payment_id: payment.id.clone(),
            sid_sealed: None,
            sid_last4: None,
            registered_at: None,
            billing_anchor: None,
            next_period: 0,
            next_charge_at: None,
            dunning_started_at: None,
            dunning_retries: 0,
            cancel_at_period_end: false,
            canceled_at: None,
            cancel_reason: None,
            inactivated_at: None,
            last_charged_at: None,
            last_kakaopay_approved_at: None,
            idempotency_key: key.map(|k| k.key.clone()),
            created_at: now,
            updated_at: now,
            version: 1,
        };
        let stored = self
            .store
            .insert_subscription(
                &payment,
                &sub,
                Detail::text(format!("ready: tid {}", payment.tid)),
            )
            .await;
        match stored {
            Ok(()) => {}
            Err(e) if e.is_unique_violation() => {
                if let Some(k) = key
                    && let Some(existing) = self.store.subscription_by_key(&k.key).await?
                {
                    let p = self.payment(&existing.registration_payment_id).await?;
                    return Ok((existing, p));
                }
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(subscription = %sub.id, payment = %payment.id, "subscription created");
        Ok((sub, payment))
    }

    /// Cancels now (KakaoPay inactivates the SID at once) or at the period's end.
    pub(crate) async fn cancel_subscription(
        &self,
        id: &SubscriptionId,
        at_period_end: bool,
    ) -> Result<Subscription, ServiceError> {
        let sub = self.subscription(id).await?;
        if sub.status.is_final() {
            return Err(ServiceError::Conflict {
                code: Conflict::InvalidState,
                message: format!("subscription {id} is {} already", sub.status),
            });
        }
        let renewing = matches!(
            sub.status,
            SubscriptionStatus::Active | SubscriptionStatus::PastDue
        );
        if at_period_end && renewing {
            let mut w = SubWrite::new(id);
            w.expect = Some(vec![
                SubscriptionStatus::Active,
                SubscriptionStatus::PastDue,
            ]);
            w.change.cancel_at_period_end = Some(true);
            w.log = Some((SubscriptionCause::CancelScheduled, Detail::none()));
            self.store.change_subscription(&w, self.now()).await?;
            return self.subscription(id).await;
        }
        self.end_subscription(&sub, "canceled by the merchant")
            .await?;
        self.subscription(id).await
    }

    /// Cancels the subscription in the ledger first (nothing is charged from then on), then
    /// inactivates its SID at KakaoPay; a failed inactivation is retried by the scheduler.
    pub(crate) async fn end_subscription(
        &self,
        sub: &Subscription,
        reason: &str,
    ) -> Result<(), ServiceError> {
        let now = self.now();
        let mut w = SubWrite::new(&sub.id);
        w.event = Some(SubscriptionEvent::Canceled);
        w.change.canceled = Some((now, reason.to_owned()));
        w.change.cancel_at_period_end = Some(false);
        // Comes back to inactivate the SID if the call below fails.
        w.change.next_charge_at = Some(sub.sid_sealed.as_ref().map(|_| now.plus(self.grace())));
        w.log = Some((SubscriptionCause::Canceled, Detail::text(reason)));
        self.store.change_subscription(&w, now).await?;
        if sub.sid_sealed.is_some() {
            self.inactivate(sub).await;
        }
        Ok(())
    }

    /// Inactivates the SID at KakaoPay and records it (`-751`: it already was).
    pub(crate) async fn inactivate(&self, sub: &Subscription) -> bool {
        let Some(sid) = self.open_sid(sub) else {
            return false;
        };
        let outcome = self.kakaopay.inactivate(&sub.cid, sid).await;
        let done = match &outcome {
            Ok(_) => true,
            Err(e) => e.code() == Some(kakaopay::ErrorCode::SidInactive),
        };
        if !done {
            if let Err(e) = &outcome {
                tracing::warn!(subscription = %sub.id, error = %e, "could not inactivate the SID; retried later");
            }
            return false;
        }
        let now = self.now();
        let mut w = SubWrite::new(&sub.id);
        w.change.inactivated_at = Some(now);
        w.change.next_charge_at = Some(None);
        w.log = Some((SubscriptionCause::Inactivated, Detail::none()));
        if let Err(e) = self.store.change_subscription(&w, now).await {
            tracing::warn!(subscription = %sub.id, error = %e, "could not record the inactivation");
        }
        true
    }

    /// The SID, unsealed (logged as an error when it does not open: a different key).
    pub(crate) fn open_sid(&self, sub: &Subscription) -> Option<Sid> {
        let sealed = sub.sid_sealed.as_ref()?;
        match self.settings.vault.open(sub.id.as_str(), sealed) {
            Ok(text) => Sid::parse(text).ok(),
            Err(e) => {
                tracing::error!(subscription = %sub.id, error = %e, "cannot unseal the SID");
                None
            }
        }
    }

    /// KakaoPay's status of the SID now: an inactive SID cancels the subscription; an open
    /// charge is judged; an unfinished registration is looked up.
    pub(crate) async fn sync_subscription(
        &self,
        id: &SubscriptionId,
    ) -> Result<Subscription, ServiceError> {
        let sub = self.subscription(id).await?;
        if sub.status == SubscriptionStatus::Incomplete {
            self.sync(&sub.registration_payment_id).await?;
            let p = self.payment(&sub.registration_payment_id).await?;
            self.settle_registration(&sub, &p, None).await?;
            return self.subscription(id).await;
        }
        if let Some(open) = self.store.open_charge(id).await? {
            self.resolve_open(&sub, &open, true).await?;
            return self.subscription(id).await;
        }
        let Some(sid) = self.open_sid(&sub) else {
            return Ok(sub);
        };
        let status = self
            .kakaopay
            .subscription_status(&sub.cid, sid)
            .await
            .map_err(ServiceError::kakaopay)?;
        if status.status == kakaopay::SubscriptionStatus::Inactive {
            if sub.status != SubscriptionStatus::Canceled {
                self.end_subscription(&sub, "the SID is inactive at KakaoPay")
                    .await?;
            }
            let sub = self.subscription(id).await?;
            if sub.inactivated_at.is_none() {
                let now = self.now();
                let mut w = SubWrite::new(id);
                w.change.inactivated_at =
                    Some(status.inactivated_at.map_or(now, |t| t.to_utc().into()));
                w.change.next_charge_at = Some(None);
                w.log = Some((SubscriptionCause::Inactivated, Detail::none()));
                self.store.change_subscription(&w, now).await?;
            }
        }
        self.subscription(id).await
    }

    /// An extra charge now with the SID. With an Idempotency-Key, a retry finds the charge its
    /// first attempt recorded (whatever its outcome) and never charges again.
    pub(crate) async fn extra_charge(
        &self,
        id: &SubscriptionId,
        amount: Option<Amount>,
        item_name: Option<ItemName>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Charge, ServiceError> {
        if let Some(k) = key
            && let Some(existing) = self.store.charge_by_key(&k.key).await?
        {
            return Ok(existing);
        }
        let sub = self.subscription(id).await?;
        let chargeable = [
            SubscriptionStatus::Active,
            SubscriptionStatus::PastDue,
            SubscriptionStatus::Unpaid,
        ];
        if !chargeable.contains(&sub.status) || sub.sid_sealed.is_none() {
            return Err(ServiceError::Conflict {
                code: Conflict::InvalidState,
                message: format!(
                    "subscription {id} is {}: only an active, past_due or unpaid subscription can be charged",
                    sub.status
                ),
            });
        }
        let amounts = match amount {
            Some(a) => {
                Amounts::for_order(a, Amount::ZERO, None).map_err(|e| ServiceError::Invalid {
                    field: "amount",
                    message: e.to_string().replace("total_amount", "amount"),
                })?
            }
            None => sub.amounts,
        };
        let charge_id = ChargeId::generate();
        let charge = Charge {
            partner_order_id: charge_id.to_string(),
            id: charge_id,
            subscription_id: sub.id.clone(),
            kind: ChargeKind::Extra,
            period: None,
            attempt: 1,
            status: ChargeStatus::Pending,
            amounts,
            item_name: item_name.unwrap_or_else(|| sub.item_name.clone()),
            payment_id: None,
            failure: None,
            kakaopay_code: None,
            message: None,
            attempted_at: self.now(),
            finished_at: None,
            kakaopay_approved_at: None,
            idempotency_key: key.map(|k| k.key.clone()),
            check_attempts: 0,
        };
        let now = self.now();
        let check_at = self.open_check_at(now);
        match self
            .store
            .begin_charge(&charge, &chargeable, None, now, check_at)
            .await?
        {
            Claim::Claimed(_) => {}
            Claim::Open => {
                // The same key's first request may be the one in flight: its charge is the answer.
                if let Some(k) = key
                    && let Some(existing) = self.store.charge_by_key(&k.key).await?
                {
                    return Ok(existing);
                }
                return Err(ServiceError::Conflict {
                    code: Conflict::ChargeInProgress,
                    message: format!(
                        "subscription {id} has a charge in flight or unresolved; try again once it is settled"
                    ),
                });
            }
            Claim::Refused => {
                return Err(ServiceError::Conflict {
                    code: Conflict::InvalidState,
                    message: format!(
                        "subscription {id} changed meanwhile: only an active, past_due or unpaid subscription can be charged"
                    ),
                });
            }
        }
        self.send_charge(&sub, &charge).await?;
        self.store
            .charge(&charge.id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(charge.id.to_string()))
    }
}
