//! Subscriptions (정기 결제) at KakaoPay: charging a SID without the buyer, inactivating it, and
//! its status.

use super::kst;
use crate::SandboxError;
use crate::ids;
use crate::state::{Action, Calls, Payment};
use crate::{Sandbox, magic};
use kakaopay::{
    Amount, AmountBreakdown, ApproveResponse, OrderStatus, PaymentActionType, SidRequest,
    SubscriptionInactiveResponse, SubscriptionRequest, SubscriptionStatus,
    SubscriptionStatusResponse, default_vat,
};

impl Sandbox {
    fn subscription_cid(&self, cid: &kakaopay::Cid) -> Result<(), SandboxError> {
        self.check_cid_known(cid)?;
        if self.config().is_subscription_cid(cid.as_str()) {
            Ok(())
        } else {
            Err(SandboxError::payment(-731, "cid is not a subscription cid"))
        }
    }

    /// `payment/subscription`: charges a SID without the buyer; a new TID and AID.
    pub fn subscription(
        &self,
        req: &SubscriptionRequest,
        legacy: bool,
    ) -> Result<ApproveResponse, SandboxError> {
        req.validate()
            .map_err(|e| SandboxError::bad_request(e.to_string()))?;
        self.subscription_cid(&req.cid)?;
        let now = self.clock().now();
        let (method, item_name) = {
            let mut sub = self
                .store()
                .subscriptions
                .get_mut(req.sid.as_str())
                .filter(|s| s.cid == req.cid)
                .ok_or_else(|| SandboxError::payment(-750, "sid does not exist"))?;
            if sub.inactivated_at.is_some() {
                return Err(SandboxError::payment(-751, "sid is inactive"));
            }
            if sub.partner_user_id != req.partner_user_id {
                return Err(SandboxError::payment(
                    -753,
                    "partner_user_id differs from the one the sid was issued to",
                ));
            }
            if let Some(limit) = self.config().sid_monthly_limit
                && sub.charges >= limit
            {
                return Err(SandboxError::payment(
                    -752,
                    "sid exceeded its monthly use count",
                ));
            }
            if magic::for_user(req.partner_user_id.as_str()) == Some(magic::Magic::Declined) {
                return Err(magic::declined().with_code(-782));
            }
            sub.charges += 1;
            sub.last_approved_at = Some(now);
            (sub.method.clone(), sub.item_name.clone())
        };
        let vat = req
            .vat_amount
            .or_else(|| default_vat(req.total_amount, req.tax_free_amount))
            .unwrap_or(Amount::ZERO);
        let tid = ids::tid();
        let aid = ids::aid();
        let amount = AmountBreakdown {
            total: req.total_amount,
            tax_free: req.tax_free_amount,
            vat,
            green_deposit: req.green_deposit.unwrap_or(Amount::ZERO),
            ..AmountBreakdown::default()
        };
        let payload = req.payload.as_ref().map(|x| x.as_str().to_owned());
        let payment = Payment {
            tid: tid.clone(),
            cid: req.cid.clone(),
            page_token: String::new(),
            status: OrderStatus::SuccessPayment,
            partner_order_id: req.partner_order_id.clone(),
            partner_user_id: req.partner_user_id.clone(),
            item_name: req
                .item_name
                .as_ref()
                .map_or(item_name, |n| n.as_str().to_owned()),
            item_code: req.item_code.as_ref().map(|c| c.as_str().to_owned()),
            quantity: req.quantity.get(),
            amount,
            canceled: AmountBreakdown::default(),
            created_at: now,
            expires_at: now,
            approved_at: Some(now),
            canceled_at: None,
            updated_at: now,
            approval_url: String::new(),
            cancel_url: String::new(),
            fail_url: String::new(),
            allowed_method: None,
            method: Some(method),
            install_month: 0,
            pg_token: None,
            sid: Some(req.sid.as_str().to_owned()),
            actions: vec![Action {
                aid: aid.clone(),
                at: now,
                amount,
                kind: PaymentActionType::Payment,
                payload: payload.clone(),
            }],
            in_flight: false,
            calls: Calls::default(),
        };
        let response = self.approve_response(&payment, &aid, payload.as_deref(), legacy)?;
        self.store().payments.insert(tid, payment);
        Ok(response)
    }

    /// `payment/manage/subscription/inactive`.
    pub fn inactivate(
        &self,
        req: &SidRequest,
    ) -> Result<SubscriptionInactiveResponse, SandboxError> {
        self.subscription_cid(&req.cid)?;
        let now = self.clock().now();
        let mut sub = self
            .store()
            .subscriptions
            .get_mut(req.sid.as_str())
            .filter(|s| s.cid == req.cid)
            .ok_or_else(|| SandboxError::payment(-750, "sid does not exist"))?;
        if sub.inactivated_at.is_some() {
            return Err(SandboxError::payment(-751, "sid is already inactive"));
        }
        sub.inactivated_at = Some(now);
        Ok(SubscriptionInactiveResponse {
            cid: sub.cid.clone(),
            sid: req.sid.clone(),
            status: SubscriptionStatus::Inactive,
            created_at: Some(kst(sub.created_at)),
            last_approved_at: sub.last_approved_at.map(kst),
            inactivated_at: sub.inactivated_at.map(kst),
        })
    }

    /// `payment/manage/subscription/status`.
    pub fn subscription_status(
        &self,
        req: &SidRequest,
    ) -> Result<SubscriptionStatusResponse, SandboxError> {
        self.subscription_cid(&req.cid)?;
        let sub = self
            .store()
            .subscriptions
            .get(req.sid.as_str())
            .filter(|s| s.cid == req.cid)
            .ok_or_else(|| SandboxError::payment(-750, "sid does not exist"))?;
        let active = sub.inactivated_at.is_none();
        Ok(SubscriptionStatusResponse {
            available: Some(active),
            cid: sub.cid.clone(),
            sid: req.sid.clone(),
            status: if active {
                SubscriptionStatus::Active
            } else {
                SubscriptionStatus::Inactive
            },
            payment_method_type: Some(sub.method.clone()),
            item_name: Some(sub.item_name.clone()),
            created_at: Some(kst(sub.created_at)),
            last_approved_at: sub.last_approved_at.map(kst),
            inactivated_at: sub.inactivated_at.map(kst),
            use_point_status: Some("N".into()),
        })
    }
}
