//! Creating a payment: the server decides the amounts, calls ready, and keeps the TID with *this*
//! payment. Nothing is stored when ready fails (KakaoPay issued no TID).

use super::{Conflict, IdempotencyKey, ServiceError, Services};
use crate::domain::{Amounts, Channel, Detail, Payment, PaymentId, Redirects};
use kakaopay::{
    ItemCode, ItemName, PartnerOrderId, PartnerUserId, Quantity, ReadyRequest, RedirectUrl,
};

/// A validated payment to create.
#[derive(Clone, Debug)]
pub(crate) struct CreatePayment {
    /// The buyer, in the merchant's terms (no personal data).
    pub(crate) partner_user_id: PartnerUserId,
    /// What is sold.
    pub(crate) item_name: ItemName,
    /// Item code.
    pub(crate) item_code: Option<ItemCode>,
    /// How many.
    pub(crate) quantity: Quantity,
    /// The amounts, decided by the server.
    pub(crate) amounts: Amounts,
    /// The merchant's order id; default: the payment id.
    pub(crate) partner_order_id: Option<PartnerOrderId>,
    /// Which redirect URL to hand out.
    pub(crate) channel: Channel,
    /// Where the buyer goes after the callbacks (with `payment_id` and `status` appended).
    pub(crate) return_url: Option<String>,
}

impl Services {
    /// Creates a payment and calls ready. With an Idempotency-Key the payment carries the key: a
    /// request that finds the payment made under its key (its first attempt died after storing
    /// it) answers with it. A merchant order has at most one payment that can still be, or has
    /// been, paid (`duplicate_order` otherwise).
    ///
    /// A process killed between ready and storing the payment leaves a TID that nobody was sent
    /// to: KakaoPay lets it expire, and the retry makes a new one. The order's uniqueness is the
    /// database's (checked when the payment is stored, not read before on every create): a
    /// duplicate costs one ready whose TID is left to expire.
    #[tracing::instrument(skip_all, fields(payment_id = tracing::field::Empty))]
    pub(crate) async fn create_payment(
        &self,
        input: CreatePayment,
        key: Option<&IdempotencyKey>,
    ) -> Result<Payment, ServiceError> {
        if let Some(k) = key
            && let Some(existing) = self.store.payment_by_key(&k.key).await?
        {
            return Ok(existing);
        }
        let id = PaymentId::generate();
        tracing::Span::current().record("payment_id", id.as_str());
        let partner_order_id = match input.partner_order_id {
            Some(o) => o,
            None => PartnerOrderId::parse(id.as_str()).map_err(|e| ServiceError::Invalid {
                field: "partner_order_id",
                message: e.reason().to_owned(),
            })?,
        };
        let invalid = |e: kakaopay::ValidationError| ServiceError::Invalid {
            field: e.field(),
            message: e.reason().to_owned(),
        };
        let base = &self.settings.public_url;
        let url = |field: &'static str, step: &str| {
            RedirectUrl::parse_for(field, format!("{base}/pay/{id}/{step}"))
        };
        let request = ReadyRequest {
            cid: self.kakaopay.cid().clone(),
            cid_secret: None,
            partner_order_id: partner_order_id.clone(),
            partner_user_id: input.partner_user_id.clone(),
            item_name: input.item_name.clone(),
            item_code: input.item_code.clone(),
            quantity: input.quantity,
            total_amount: input.amounts.total,
            tax_free_amount: input.amounts.tax_free,
            vat_amount: Some(input.amounts.vat),
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
        let payment = Payment::ready(
            id,
            self.kakaopay.cid().clone(),
            ready.tid.clone(),
            (partner_order_id, input.partner_user_id),
            (input.item_name, input.item_code, input.quantity),
            input.amounts,
            input.channel,
            Redirects {
                url: redirect,
                pc: ready.next_redirect_pc_url,
                mobile: ready.next_redirect_mobile_url,
                app: ready.next_redirect_app_url,
            },
            input.return_url,
            key.map(|k| k.key.clone()),
            self.now(),
            self.settings.payment_ttl,
        );
        let inserted = self
            .store
            .insert_payment(
                &payment,
                Detail::text(format!("ready: tid {}", payment.tid)),
            )
            .await;
        match inserted {
            Ok(()) => crate::crashpoint::hit("create.after_insert"),
            Err(e) if e.is_unique_violation() => {
                // A concurrent request won: the same key (answer with its payment) or the same
                // order. This ready's TID is left to expire unpaid.
                if let Some(k) = key
                    && let Some(existing) = self.store.payment_by_key(&k.key).await?
                {
                    return Ok(existing);
                }
                if let Some(existing) = self
                    .store
                    .live_payment_for_order(payment.partner_order_id.as_str())
                    .await?
                {
                    return Err(duplicate_order(&existing));
                }
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(payment = %payment.id, tid = %payment.tid, total = payment.amounts.total.won(), "payment created");
        Ok(payment)
    }
}

fn duplicate_order(existing: &Payment) -> ServiceError {
    ServiceError::Conflict {
        code: Conflict::DuplicateOrder,
        message: format!(
            "order {} already has payment {} ({}); a new payment for it is possible once that one ended unpaid",
            existing.partner_order_id, existing.id, existing.status
        ),
    }
}
