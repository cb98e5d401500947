//! What the sandbox remembers: payments by TID, page tokens, subscriptions. Sharded maps, so that
//! requests for different payments never wait on each other.

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use kakaopay::{
    AmountBreakdown, CardInfo, Cid, InstallmentType, KstDateTime, OrderStatus, PartnerOrderId,
    PartnerUserId, PaymentActionDetail, PaymentActionType, PaymentMethodType, SelectedCardInfo,
};

/// One entry of a payment's history.
#[derive(Clone, Debug)]
pub struct Action {
    /// Request id.
    pub aid: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Amount of the action.
    pub amount: AmountBreakdown,
    /// PAYMENT, CANCEL or ISSUED_SID.
    pub kind: PaymentActionType,
    /// Payload sent with it.
    pub payload: Option<String>,
}

/// A payment (one TID) as KakaoPay would hold it.
#[derive(Clone, Debug)]
pub struct Payment {
    /// The payment id.
    pub tid: String,
    /// Merchant code.
    pub cid: Cid,
    /// Path segment of its payment pages (empty for subscription charges).
    pub page_token: String,
    /// Where it stands.
    pub status: OrderStatus,
    /// The merchant's order id.
    pub partner_order_id: PartnerOrderId,
    /// The merchant's user id.
    pub partner_user_id: PartnerUserId,
    /// Item name.
    pub item_name: String,
    /// Item code.
    pub item_code: Option<String>,
    /// Item count.
    pub quantity: u32,
    /// The amounts of ready.
    pub amount: AmountBreakdown,
    /// Refunded so far.
    pub canceled: AmountBreakdown,
    /// When ready was called.
    pub created_at: DateTime<Utc>,
    /// When an unpaid payment expires.
    pub expires_at: DateTime<Utc>,
    /// When it was approved.
    pub approved_at: Option<DateTime<Utc>>,
    /// When it was last cancelled.
    pub canceled_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Success redirect.
    pub approval_url: String,
    /// Buyer-quit redirect.
    pub cancel_url: String,
    /// Failure redirect.
    pub fail_url: String,
    /// Method restriction from ready.
    pub allowed_method: Option<PaymentMethodType>,
    /// Method the buyer chose.
    pub method: Option<PaymentMethodType>,
    /// Installment months chosen at ready.
    pub install_month: u8,
    /// The token issued at authentication.
    pub pg_token: Option<String>,
    /// SID issued by (or charged in) this payment.
    pub sid: Option<String>,
    /// History, oldest first.
    pub actions: Vec<Action>,
    /// An approve or cancel is being processed (a delayed one): duplicates get -785.
    pub in_flight: bool,
    /// Calls the merchant made about this payment, whatever their outcome.
    pub calls: Calls,
}

/// How often the merchant called KakaoPay about one payment (test helpers report it: a chaos
/// run checks that retries toward KakaoPay stay bounded).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Calls {
    /// Approve calls.
    pub approve: u32,
    /// Cancel calls.
    pub cancel: u32,
    /// Order lookups.
    pub order: u32,
}

impl Payment {
    /// Still waiting for the buyer or for approve.
    pub fn is_pending(&self) -> bool {
        self.status.is_pending()
    }
    /// Pending past its 15 minutes.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.is_pending() && now >= self.expires_at
    }
    /// When it stopped changing by itself (expired, paid, failed…), if it has; it may be evicted
    /// once the retention has passed since then. Paid payments stay refundable until evicted.
    pub fn settled_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.is_expired(now) {
            Some(self.expires_at)
        } else if self.is_pending() || self.in_flight {
            None
        } else {
            Some(self.updated_at)
        }
    }
    /// What can still be cancelled, componentwise.
    pub fn remaining(&self) -> AmountBreakdown {
        if !self.status.is_paid() {
            return AmountBreakdown::default();
        }
        let a = &self.amount;
        let c = &self.canceled;
        AmountBreakdown {
            total: a.total.saturating_sub(c.total),
            tax_free: a.tax_free.saturating_sub(c.tax_free),
            vat: a.vat.saturating_sub(c.vat),
            point: a.point.saturating_sub(c.point),
            discount: a.discount.saturating_sub(c.discount),
            green_deposit: a.green_deposit.saturating_sub(c.green_deposit),
        }
    }
    /// Card details as the test mode reports them (`bin 111111`, …), for card payments.
    pub fn card_info(&self, legacy: bool) -> Option<CardInfo> {
        (self.method == Some(PaymentMethodType::Card)).then(|| CardInfo {
            kakaopay_purchase_corp: Some("비씨카드".into()),
            kakaopay_purchase_corp_code: Some("104".into()),
            kakaopay_issuer_corp: Some("비씨카드".into()),
            kakaopay_issuer_corp_code: Some("104".into()),
            bin: Some("111111".into()),
            card_type: Some("신용".into()),
            install_month: Some(format!("{:02}", self.install_month)),
            approved_id: Some("11111111".into()),
            card_mid: Some("111111".into()),
            interest_free_install: Some("N".into()),
            installment_type: (!legacy).then_some(InstallmentType::CardInstallment),
            card_item_code: Some("111111".into()),
            purchase_corp: legacy.then(|| "비씨카드".into()),
            purchase_corp_code: legacy.then(|| "01".into()),
            issuer_corp: legacy.then(|| "비씨카드".into()),
            issuer_corp_code: legacy.then(|| "01".into()),
        })
    }
    /// The card chosen, as order lookup reports it.
    pub fn selected_card_info(&self, legacy: bool) -> Option<SelectedCardInfo> {
        (self.method == Some(PaymentMethodType::Card)).then(|| SelectedCardInfo {
            card_bin: Some("111111".into()),
            install_month: Some(i64::from(self.install_month)),
            installment_type: (!legacy).then_some(InstallmentType::CardInstallment),
            card_corp_name: Some("비씨카드".into()),
            interest_free_install: Some("N".into()),
        })
    }
    /// History for order lookup.
    pub fn action_details(&self) -> Vec<PaymentActionDetail> {
        self.actions
            .iter()
            .map(|a| PaymentActionDetail {
                aid: a.aid.parse().ok(),
                approved_at: Some(KstDateTime::from_utc(a.at)),
                amount: Some(a.amount.total),
                point_amount: Some(a.amount.point),
                discount_amount: Some(a.amount.discount),
                green_deposit: Some(a.amount.green_deposit),
                payment_action_type: Some(a.kind.clone()),
                payload: a.payload.clone(),
                payment_method_type: self.method.clone(),
            })
            .collect()
    }
}

/// A subscription (SID).
#[derive(Clone, Debug)]
pub struct Subscription {
    /// SID issued by (or charged in) this payment.
    pub sid: String,
    /// Merchant code.
    pub cid: Cid,
    /// The merchant's user id.
    pub partner_user_id: PartnerUserId,
    /// How the first payment was made.
    pub method: PaymentMethodType,
    /// Item name.
    pub item_name: String,
    /// When the SID was issued.
    pub created_at: DateTime<Utc>,
    /// Last successful charge.
    pub last_approved_at: Option<DateTime<Utc>>,
    /// When it was inactivated.
    pub inactivated_at: Option<DateTime<Utc>>,
    /// Charges so far.
    pub charges: u32,
}

/// All state.
#[derive(Debug, Default)]
pub struct Store {
    /// Payments by TID.
    pub payments: DashMap<String, Payment>,
    /// Page token to TID.
    pub pages: DashMap<String, String>,
    /// Subscriptions by SID.
    pub subscriptions: DashMap<String, Subscription>,
}

impl Store {
    /// Counts a call of `op` about `tid` (unknown TIDs are not counted).
    pub fn count_call(&self, tid: &str, op: kakaopay::Operation) {
        if let Some(mut p) = self.payments.get_mut(tid) {
            let c = &mut p.calls;
            match op {
                kakaopay::Operation::Approve => c.approve += 1,
                kakaopay::Operation::Cancel => c.cancel += 1,
                kakaopay::Operation::Order => c.order += 1,
                _ => {}
            }
        }
    }

    /// Drops payments finished longer than `retention` ago; returns how many went.
    pub fn evict(&self, now: DateTime<Utc>, retention: chrono::Duration) -> usize {
        let before = self.payments.len();
        self.payments.retain(|_, p| {
            let keep = p.settled_at(now).is_none_or(|at| now - at < retention);
            if !keep {
                self.pages.remove(&p.page_token);
            }
            keep
        });
        before.saturating_sub(self.payments.len())
    }
}
