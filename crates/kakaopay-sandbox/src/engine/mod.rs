//! KakaoPay's behaviour: the status graph, amount arithmetic and error codes of every operation.
//! No HTTP here: [`crate::api`] parses and renders, this module decides. Single payments here,
//! subscriptions (SID charges, inactivation, status) in [`subscriptions`].

mod subscriptions;

use crate::SandboxError;
use crate::ids;
use crate::state::{Action, Calls, Payment, Subscription};
use crate::{Sandbox, magic};
use chrono::{DateTime, Utc};
use kakaopay::{
    Aid, Amount, AmountBreakdown, ApproveRequest, ApproveResponse, CancelRequest, CancelResponse,
    KstDateTime, OrderRequest, OrderResponse, OrderStatus, PaymentActionType, PaymentMethodType,
    ReadyRequest, ReadyResponse, Tid, default_vat,
};

fn kst(t: DateTime<Utc>) -> KstDateTime {
    KstDateTime::from_utc(t)
}

/// Parses an id the sandbox generated itself (always valid).
fn own_id<T: std::str::FromStr>(s: &str) -> Result<T, SandboxError> {
    s.parse()
        .map_err(|_| SandboxError::api(500, -500, "sandbox produced an invalid identifier"))
}

/// How the buyer finished on the payment page.
#[derive(Clone, Debug)]
pub struct Redirect {
    /// The payment.
    pub tid: String,
    /// Its status now.
    pub status: OrderStatus,
    /// Where the browser goes.
    pub url: String,
    /// The pg_token, after a successful authentication.
    pub pg_token: Option<String>,
}

/// Appends `pg_token` to `approval_url`, keeping its own query.
pub fn with_pg_token(approval_url: &str, pg_token: &str) -> String {
    match url::Url::parse(approval_url) {
        Ok(mut u) => {
            u.query_pairs_mut().append_pair("pg_token", pg_token);
            u.into()
        }
        Err(_) => format!("{approval_url}?pg_token={pg_token}"),
    }
}

impl Sandbox {
    fn check_cid_known(&self, cid: &kakaopay::Cid) -> Result<(), SandboxError> {
        if self.config().is_known_cid(cid.as_str()) {
            Ok(())
        } else {
            Err(SandboxError::payment(-731, "invalid cid"))
        }
    }

    /// Runs `f` on the payment `tid` of `cid` under its shard lock (never held across an await).
    fn with_payment<R>(
        &self,
        cid: &kakaopay::Cid,
        tid: &str,
        f: impl FnOnce(&mut Payment) -> Result<R, SandboxError>,
    ) -> Result<R, SandboxError> {
        self.check_cid_known(cid)?;
        let mut entry = self
            .store()
            .payments
            .get_mut(tid)
            .ok_or_else(SandboxError::unknown_tid)?;
        if entry.cid != *cid {
            return Err(SandboxError::payment(-731, "cid does not match the tid"));
        }
        f(&mut entry)
    }

    /// `payment/ready`.
    pub fn ready(&self, req: ReadyRequest, legacy: bool) -> Result<ReadyResponse, SandboxError> {
        req.validate()
            .map_err(|e| SandboxError::bad_request(e.to_string()))?;
        self.check_cid_known(&req.cid)?;
        let subscription = self.config().is_subscription_cid(req.cid.as_str());
        if req.total_amount == Amount::ZERO && !subscription {
            return Err(SandboxError::bad_request(
                "invalid total_amount: must be at least 1",
            ));
        }
        let now = self.clock().now();
        let vat = req.effective_vat().unwrap_or(Amount::ZERO);
        let tid = ids::tid();
        let page_token = ids::page_token();
        let payment = Payment {
            tid: tid.clone(),
            cid: req.cid.clone(),
            page_token: page_token.clone(),
            status: OrderStatus::Ready,
            partner_order_id: req.partner_order_id.clone(),
            partner_user_id: req.partner_user_id.clone(),
            item_name: req.item_name.as_str().to_owned(),
            item_code: req.item_code.as_ref().map(|c| c.as_str().to_owned()),
            quantity: req.quantity.get(),
            amount: AmountBreakdown {
                total: req.total_amount,
                tax_free: req.tax_free_amount,
                vat,
                green_deposit: req.green_deposit.unwrap_or(Amount::ZERO),
                ..AmountBreakdown::default()
            },
            canceled: AmountBreakdown::default(),
            created_at: now,
            expires_at: now + self.config().payment_ttl,
            approved_at: None,
            canceled_at: None,
            updated_at: now,
            approval_url: req.approval_url.as_str().to_owned(),
            cancel_url: req.cancel_url.as_str().to_owned(),
            fail_url: req.fail_url.as_str().to_owned(),
            allowed_method: req.payment_method_type.clone(),
            method: None,
            install_month: req.install_month.map_or(0, |m| m.get()),
            pg_token: None,
            sid: None,
            actions: Vec::new(),
            in_flight: false,
            calls: Calls::default(),
        };
        self.store().pages.insert(page_token.clone(), tid.clone());
        self.store().payments.insert(tid.clone(), payment);
        let page = format!("{}/v1/{page_token}", self.config().public_url);
        let scheme = format!("kakaotalk://kakaopay/pg?url={page}/order");
        Ok(ReadyResponse {
            tid: own_id(&tid)?,
            next_redirect_app_url: Some(format!("{page}/aInfo")),
            next_redirect_mobile_url: Some(format!("{page}/mInfo")),
            next_redirect_pc_url: Some(format!("{page}/info")),
            android_app_scheme: Some(scheme.clone()),
            ios_app_scheme: Some(scheme),
            created_at: Some(kst(now)),
            tms_result: legacy.then_some(false),
        })
    }

    /// The buyer opened a payment page: `READY` → `OPEN_PAYMENT`. Returns a copy for rendering.
    pub fn open_page(&self, page_token: &str) -> Option<Payment> {
        let tid = self.store().pages.get(page_token)?.clone();
        let now = self.clock().now();
        let mut p = self.store().payments.get_mut(&tid)?;
        if p.status == OrderStatus::Ready && !p.is_expired(now) {
            p.status = OrderStatus::OpenPayment;
            p.updated_at = now;
        }
        Some(p.clone())
    }

    /// The payment behind a page token, unchanged.
    pub fn page_payment(&self, page_token: &str) -> Option<Payment> {
        let tid = self.store().pages.get(page_token)?.clone();
        self.store().payments.get(&tid).map(|p| p.clone())
    }

    /// The buyer passed password authentication: `AUTH_PASSWORD` and a pg_token. Asking again
    /// returns the same token, like a browser refresh on the last step.
    pub fn authorize(
        &self,
        tid: &str,
        method: Option<PaymentMethodType>,
    ) -> Result<Redirect, SandboxError> {
        let now = self.clock().now();
        let mut p = self
            .store()
            .payments
            .get_mut(tid)
            .ok_or_else(SandboxError::unknown_tid)?;
        if p.is_expired(now) {
            return Err(SandboxError::payment(-723, "payment expired"));
        }
        if p.status == OrderStatus::AuthPassword
            && let Some(token) = p.pg_token.clone()
        {
            return Ok(Redirect {
                tid: p.tid.clone(),
                status: p.status.clone(),
                url: with_pg_token(&p.approval_url, &token),
                pg_token: Some(token),
            });
        }
        if !p.is_pending() {
            return Err(SandboxError::payment(
                -783,
                format!("payment is {} and cannot be authorized", p.status),
            ));
        }
        let method = match (method, &p.allowed_method) {
            (Some(m), Some(allowed)) if &m != allowed => {
                return Err(SandboxError::bad_request(format!(
                    "this payment accepts only {allowed}"
                )));
            }
            (Some(PaymentMethodType::Unknown(m)), _) => {
                return Err(SandboxError::bad_request(format!(
                    "payment_method_type must be CARD or MONEY, got {m}"
                )));
            }
            (Some(m), _) => m,
            (None, Some(allowed)) => allowed.clone(),
            (None, None) => PaymentMethodType::Card,
        };
        let token = ids::pg_token();
        p.status = OrderStatus::AuthPassword;
        p.method = Some(method);
        p.pg_token = Some(token.clone());
        p.updated_at = now;
        Ok(Redirect {
            tid: p.tid.clone(),
            status: p.status.clone(),
            url: with_pg_token(&p.approval_url, &token),
            pg_token: Some(token),
        })
    }

    /// The buyer quit (`QUIT_PAYMENT`, to cancel_url) or failed authentication
    /// (`FAIL_AUTH_PASSWORD`, to fail_url). An expired payment goes to fail_url unchanged.
    pub fn abandon(&self, tid: &str, quit: bool) -> Result<Redirect, SandboxError> {
        let now = self.clock().now();
        let mut p = self
            .store()
            .payments
            .get_mut(tid)
            .ok_or_else(SandboxError::unknown_tid)?;
        if p.is_expired(now) {
            return Ok(Redirect {
                tid: p.tid.clone(),
                status: p.status.clone(),
                url: p.fail_url.clone(),
                pg_token: None,
            });
        }
        let target = if quit {
            OrderStatus::QuitPayment
        } else {
            OrderStatus::FailAuthPassword
        };
        if p.status != target {
            if !p.is_pending() {
                return Err(SandboxError::payment(
                    -783,
                    format!("payment is {} and can no longer be abandoned", p.status),
                ));
            }
            p.status = target;
            p.updated_at = now;
        }
        Ok(Redirect {
            tid: p.tid.clone(),
            status: p.status.clone(),
            url: if quit {
                p.cancel_url.clone()
            } else {
                p.fail_url.clone()
            },
            pg_token: None,
        })
    }

    /// Marks a payment as having an approve or cancel in flight (a delayed one); a concurrent
    /// duplicate then gets `-785`. Unknown TIDs pass: the operation itself reports them.
    pub fn begin_in_flight(&self, tid: &str) -> Result<bool, SandboxError> {
        match self.store().payments.get_mut(tid) {
            Some(p) if p.in_flight => {
                Err(SandboxError::payment(-785, "duplicate request in progress"))
            }
            Some(mut p) => {
                p.in_flight = true;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Clears the in-flight mark.
    pub fn end_in_flight(&self, tid: &str) {
        if let Some(mut p) = self.store().payments.get_mut(tid) {
            p.in_flight = false;
        }
    }

    /// `payment/approve`. `owns_flight`: the caller set the in-flight mark itself.
    pub fn approve(
        &self,
        req: &ApproveRequest,
        owns_flight: bool,
        legacy: bool,
    ) -> Result<ApproveResponse, SandboxError> {
        let now = self.clock().now();
        let mut issued_sid: Option<Subscription> = None;
        let response = self.with_payment(&req.cid, req.tid.as_str(), |p| {
            if p.in_flight && !owns_flight {
                return Err(SandboxError::payment(
                    -785,
                    "duplicate approve request in progress",
                ));
            }
            if p.is_expired(now) {
                return Err(SandboxError::payment(-723, "payment expired"));
            }
            match &p.status {
                OrderStatus::AuthPassword => {}
                s if s.is_paid() || *s == OrderStatus::IssuedSid => {
                    return Err(SandboxError::payment(-702, "payment already approved"));
                }
                s if s.is_pending() => {
                    return Err(SandboxError::payment(
                        -701,
                        "buyer has not finished authentication",
                    ));
                }
                _ => {
                    return Err(SandboxError::payment(
                        -783,
                        format!("payment is {}", p.status),
                    ));
                }
            }
            if req.partner_order_id != p.partner_order_id {
                return Err(SandboxError::payment(
                    -706,
                    "partner_order_id does not match ready",
                ));
            }
            if req.partner_user_id != p.partner_user_id {
                return Err(SandboxError::payment(
                    -707,
                    "partner_user_id does not match ready",
                ));
            }
            if p.pg_token.as_deref() != Some(req.pg_token.expose()) {
                return Err(SandboxError::payment(-708, "invalid pg_token"));
            }
            if req.total_amount.is_some_and(|t| t != p.amount.total) {
                return Err(SandboxError::payment(
                    -722,
                    "total_amount does not match ready",
                ));
            }
            let magic = magic::for_user(p.partner_user_id.as_str());
            if magic == Some(magic::Magic::UserLocked) {
                return Err(magic::user_locked());
            }
            if magic == Some(magic::Magic::Declined) {
                p.status = OrderStatus::FailPayment;
                p.updated_at = now;
                return Err(magic::declined());
            }
            let aid = ids::aid();
            let subscription = self.config().is_subscription_cid(p.cid.as_str());
            let sid_only = subscription && p.amount.total == Amount::ZERO;
            p.status = if sid_only {
                OrderStatus::IssuedSid
            } else {
                OrderStatus::SuccessPayment
            };
            p.approved_at = Some(now);
            p.updated_at = now;
            p.actions.push(Action {
                aid: aid.clone(),
                at: now,
                amount: p.amount,
                kind: if sid_only {
                    PaymentActionType::IssuedSid
                } else {
                    PaymentActionType::Payment
                },
                payload: req.payload.as_ref().map(|x| x.as_str().to_owned()),
            });
            if subscription {
                let sid = ids::sid();
                p.sid = Some(sid.clone());
                issued_sid = Some(Subscription {
                    sid,
                    cid: p.cid.clone(),
                    partner_user_id: p.partner_user_id.clone(),
                    method: p.method.clone().unwrap_or(PaymentMethodType::Card),
                    item_name: p.item_name.clone(),
                    created_at: now,
                    last_approved_at: (!sid_only).then_some(now),
                    inactivated_at: None,
                    charges: 0,
                });
            }
            let response =
                self.approve_response(p, &aid, req.payload.as_ref().map(|x| x.as_str()), legacy)?;
            if magic == Some(magic::Magic::BankUnknown) {
                // Applied, but the merchant is told the outcome is unknown.
                return Ok(Err(magic::bank_unknown()));
            }
            Ok(Ok(response))
        })?;
        if let Some(sub) = issued_sid {
            self.store().subscriptions.insert(sub.sid.clone(), sub);
        }
        response
    }

    fn approve_response(
        &self,
        p: &Payment,
        aid: &str,
        payload: Option<&str>,
        legacy: bool,
    ) -> Result<ApproveResponse, SandboxError> {
        Ok(ApproveResponse {
            aid: own_id::<Aid>(aid)?,
            tid: own_id::<Tid>(&p.tid)?,
            cid: p.cid.clone(),
            sid: p.sid.as_deref().map(own_id).transpose()?,
            partner_order_id: p.partner_order_id.clone(),
            partner_user_id: p.partner_user_id.clone(),
            payment_method_type: p.method.clone(),
            amount: p.amount,
            card_info: p.card_info(legacy),
            sequential_payment_methods: None,
            item_name: Some(p.item_name.clone()),
            item_code: p.item_code.clone(),
            quantity: Some(i64::from(p.quantity)),
            created_at: Some(kst(p.created_at)),
            approved_at: p.approved_at.map(kst),
            payload: payload.map(str::to_owned),
        })
    }

    /// `payment/cancel`, with KakaoPay's arithmetic: VAT default, tax-free split, the
    /// `cancel_available_amount` guard, green-deposit payments full-cancel only.
    pub fn cancel(
        &self,
        req: &CancelRequest,
        owns_flight: bool,
    ) -> Result<CancelResponse, SandboxError> {
        req.validate()
            .map_err(|e| SandboxError::bad_request(e.to_string()))?;
        let now = self.clock().now();
        self.with_payment(&req.cid, req.tid.as_str(), |p| {
            if p.in_flight && !owns_flight {
                return Err(SandboxError::payment(
                    -785,
                    "duplicate cancel request in progress",
                ));
            }
            if !matches!(
                p.status,
                OrderStatus::SuccessPayment | OrderStatus::PartCancelPayment
            ) {
                return Err(SandboxError::payment(
                    -784,
                    format!("payment is {} and cannot be cancelled", p.status),
                ));
            }
            let remaining = p.remaining();
            if let Some(expected) = req.cancel_available_amount
                && expected != remaining.total
            {
                return Err(SandboxError::payment(
                    -710,
                    format!(
                        "cancel_available_amount {} does not match the cancellable amount {}",
                        expected.won(),
                        remaining.total.won()
                    ),
                ));
            }
            if req.cancel_amount > remaining.total {
                return Err(SandboxError::payment(
                    -710,
                    "cancel_amount exceeds the cancellable amount",
                ));
            }
            let full = req.cancel_amount == remaining.total;
            if !full && p.amount.green_deposit > Amount::ZERO {
                return Err(SandboxError::payment(
                    -784,
                    "payments with green_deposit can only be cancelled in full",
                ));
            }
            if req.cancel_tax_free_amount > remaining.tax_free {
                return Err(SandboxError::payment(
                    -710,
                    "cancel_tax_free_amount exceeds the cancellable tax-free amount",
                ));
            }
            // The last cancel takes whatever VAT is left, so that the parts add up exactly.
            let vat = match req.cancel_vat_amount {
                Some(v) => v,
                None if full => remaining.vat,
                None => default_vat(req.cancel_amount, req.cancel_tax_free_amount)
                    .unwrap_or(Amount::ZERO),
            };
            if vat > remaining.vat {
                return Err(SandboxError::payment(
                    -710,
                    "cancel_vat_amount exceeds the cancellable VAT",
                ));
            }
            let this = AmountBreakdown {
                total: req.cancel_amount,
                tax_free: req.cancel_tax_free_amount,
                vat,
                green_deposit: if full {
                    remaining.green_deposit
                } else {
                    Amount::ZERO
                },
                ..AmountBreakdown::default()
            };
            let add = |a: Amount, b: Amount| a.checked_add(b).unwrap_or(a);
            p.canceled = AmountBreakdown {
                total: add(p.canceled.total, this.total),
                tax_free: add(p.canceled.tax_free, this.tax_free),
                vat: add(p.canceled.vat, this.vat),
                point: p.canceled.point,
                discount: p.canceled.discount,
                green_deposit: add(p.canceled.green_deposit, this.green_deposit),
            };
            p.status = if full {
                OrderStatus::CancelPayment
            } else {
                OrderStatus::PartCancelPayment
            };
            p.canceled_at = Some(now);
            p.updated_at = now;
            let aid = ids::aid();
            let payload = req.payload.as_ref().map(|x| x.as_str().to_owned());
            p.actions.push(Action {
                aid: aid.clone(),
                at: now,
                amount: this,
                kind: PaymentActionType::Cancel,
                payload: payload.clone(),
            });
            Ok(CancelResponse {
                aid: own_id(&aid)?,
                tid: own_id(&p.tid)?,
                cid: p.cid.clone(),
                status: p.status.clone(),
                partner_order_id: p.partner_order_id.clone(),
                partner_user_id: p.partner_user_id.clone(),
                payment_method_type: p.method.clone(),
                amount: p.amount,
                approved_cancel_amount: this,
                canceled_amount: p.canceled,
                cancel_available_amount: p.remaining(),
                item_name: Some(p.item_name.clone()),
                item_code: p.item_code.clone(),
                quantity: Some(i64::from(p.quantity)),
                created_at: Some(kst(p.created_at)),
                approved_at: p.approved_at.map(kst),
                canceled_at: p.canceled_at.map(kst),
                payload,
            })
        })
    }

    /// `payment/order`.
    pub fn order(&self, req: &OrderRequest, legacy: bool) -> Result<OrderResponse, SandboxError> {
        self.with_payment(&req.cid, req.tid.as_str(), |p| {
            Ok(OrderResponse {
                tid: own_id(&p.tid)?,
                cid: p.cid.clone(),
                status: p.status.clone(),
                partner_order_id: p.partner_order_id.clone(),
                partner_user_id: p.partner_user_id.clone(),
                payment_method_type: p.method.clone(),
                sid: p.sid.as_deref().and_then(|s| kakaopay::Sid::parse(s).ok()),
                amount: Some(p.amount),
                canceled_amount: Some(p.canceled),
                cancel_available_amount: Some(p.remaining()),
                item_name: Some(p.item_name.clone()),
                item_code: p.item_code.clone(),
                quantity: Some(i64::from(p.quantity)),
                created_at: Some(kst(p.created_at)),
                approved_at: p.approved_at.map(kst),
                canceled_at: p.canceled_at.map(kst),
                selected_card_info: p.selected_card_info(legacy),
                payment_action_details: p.action_details(),
            })
        })
    }
}
