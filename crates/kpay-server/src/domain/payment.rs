//! What a payment is: one KakaoPay order (one TID) of the merchant, with its amounts, where it
//! stands, and what is known of its approval and refunds. Built only from typed values; the store
//! turns rows into it and refuses a row that does not make one (`StoreError::Corrupt`).
//!
//! Who may change its status: only [`super::transition`], applied by the store's conditional
//! update (`Store::transition`), so that of two concurrent actors exactly one wins.

use super::{Amounts, FailureCode, PaymentId, PaymentStatus, RefundId, SubscriptionId, Timestamp};
use kakaopay::{
    Aid, Amount, Cid, ItemCode, ItemName, PartnerOrderId, PartnerUserId, PaymentMethodType,
    PgToken, Quantity, Tid,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Which of ready's redirect URLs the buyer gets.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Channel {
    /// Desktop browsers: the page with the QR code.
    #[default]
    Pc,
    /// Mobile browsers.
    Mobile,
    /// Native apps (webview).
    App,
}

impl Channel {
    /// The stored and wire text.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Where KakaoPay's pages are for this payment (ready's answer; empty for a charge made without
/// the buyer).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Redirects {
    /// The one for the payment's channel, handed to the merchant.
    pub url: String,
    /// Desktop (QR code page).
    pub pc: Option<String>,
    /// Mobile web.
    pub mobile: Option<String>,
    /// Native app.
    pub app: Option<String>,
}

/// Why a payment or a refund failed, or was cancelled by the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What kind of failure.
    pub code: FailureCode,
    /// For people.
    pub message: Option<String>,
}

/// A payment of the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    /// Its id.
    pub id: PaymentId,
    /// Where it stands.
    pub status: PaymentStatus,
    /// The merchant code it was made with.
    pub cid: Cid,
    /// KakaoPay's id of the order.
    pub tid: Tid,
    /// KakaoPay's id of the approve, once approved.
    pub aid: Option<Aid>,
    /// The merchant's order.
    pub partner_order_id: PartnerOrderId,
    /// The buyer, in the merchant's terms.
    pub partner_user_id: PartnerUserId,
    /// What is sold.
    pub item_name: ItemName,
    /// Item code.
    pub item_code: Option<ItemCode>,
    /// How many.
    pub quantity: Quantity,
    /// What is charged, decided by the server.
    pub amounts: Amounts,
    /// What has been refunded, by part.
    pub canceled: Amounts,
    /// How the buyer paid, once paid.
    pub method: Option<PaymentMethodType>,
    /// The card details KakaoPay reported (JSON as KakaoPay sent it).
    pub card_info: Option<serde_json::Value>,
    /// Which page the buyer was sent to.
    pub channel: Channel,
    /// KakaoPay's pages.
    pub redirects: Redirects,
    /// Where the buyer goes after the callbacks.
    pub return_url: Option<String>,
    /// The token of the last approve claim (re-sent by lookups).
    pub pg_token: Option<PgToken>,
    /// Why it failed.
    pub failure: Option<Failure>,
    /// The refund being sent, if any (one at a time).
    pub refund_in_flight: Option<RefundId>,
    /// Created (ready answered).
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// An unpaid payment expires then.
    pub expires_at: Timestamp,
    /// When the approve in flight was sent.
    pub approve_started_at: Option<Timestamp>,
    /// Approved.
    pub approved_at: Option<Timestamp>,
    /// Last refunded.
    pub canceled_at: Option<Timestamp>,
    /// When a lookup is due (the reconciler's schedule).
    pub next_check_at: Option<Timestamp>,
    /// The Idempotency-Key of the create request that made it.
    pub idempotency_key: Option<String>,
    /// Lookups in a row that left it unclear (the exponent of the back-off).
    pub check_attempts: u32,
    /// Approves re-sent after lookups found the buyer authenticated.
    pub resend_count: u32,
    /// The subscription it registers or renews, if any.
    pub subscription_id: Option<SubscriptionId>,
    /// Grows by one with every change the API shows (status, refunds): receivers of events
    /// drop an object older than one they have.
    pub version: i64,
}

impl Payment {
    /// What can still be refunded (nothing unless it is paid).
    pub fn cancelable(&self) -> Amount {
        if self.status.is_refundable() {
            self.amounts
                .total
                .checked_sub(self.canceled.total)
                .unwrap_or(Amount::ZERO)
        } else {
            Amount::ZERO
        }
    }

    /// Whether its truth lives at KakaoPay right now (an approve or a refund whose answer is
    /// not known).
    pub fn is_unclear(&self) -> bool {
        self.status == PaymentStatus::Approving || self.refund_in_flight.is_some()
    }

    /// When the approve in flight (or the last change) started: its grace is judged from it.
    pub fn approve_started(&self) -> Timestamp {
        self.approve_started_at.unwrap_or(self.updated_at)
    }

    /// Whether its 15 minutes are over at `now`.
    pub fn is_past_expiry(&self, now: Timestamp) -> bool {
        now >= self.expires_at
    }

    /// This payment as the database holds it after `change` moved it to `to` at `now`, so that
    /// the hot path need not read it back.
    pub fn applied(&self, to: PaymentStatus, change: &PaymentChange, now: Timestamp) -> Payment {
        let mut p = self.clone();
        p.status = to;
        p.updated_at = now;
        p.version += 1;
        if let Some(v) = &change.pg_token {
            p.pg_token = Some(v.clone());
        }
        p.approve_started_at = change.approve_started_at.or(p.approve_started_at);
        if let Some(v) = &change.aid {
            p.aid = Some(v.clone());
        }
        p.approved_at = change.approved_at.or(p.approved_at);
        if let Some(v) = &change.method {
            p.method = Some(v.clone());
        }
        if let Some(v) = &change.card_info {
            p.card_info = Some(v.clone());
        }
        if let Some(f) = &change.failure {
            p.failure = Some(f.clone());
        }
        if let Some(a) = change.canceled {
            p.canceled = a;
        }
        p.canceled_at = change.canceled_at.or(p.canceled_at);
        p.next_check_at = change.next_check_at;
        p.check_attempts = 0;
        p
    }
}

/// What a status change writes besides the status. `None` leaves a field as it is, except
/// `next_check_at`, which is always set.
#[derive(Clone, Debug, Default)]
pub struct PaymentChange {
    /// The approve claim's token.
    pub pg_token: Option<PgToken>,
    /// When the approve was sent.
    pub approve_started_at: Option<Timestamp>,
    /// The approve's AID.
    pub aid: Option<Aid>,
    /// When KakaoPay approved it.
    pub approved_at: Option<Timestamp>,
    /// How the buyer paid.
    pub method: Option<PaymentMethodType>,
    /// Card details.
    pub card_info: Option<serde_json::Value>,
    /// Why it failed.
    pub failure: Option<Failure>,
    /// The new refunded amounts.
    pub canceled: Option<Amounts>,
    /// When it was last refunded.
    pub canceled_at: Option<Timestamp>,
    /// When a lookup is due next (`None`: none).
    pub next_check_at: Option<Timestamp>,
}

impl PaymentChange {
    /// A change that only schedules the next lookup.
    pub fn check_at(at: Option<Timestamp>) -> Self {
        Self {
            next_check_at: at,
            ..Self::default()
        }
    }

    /// A change that records a failure and needs no more lookups.
    pub fn failed(code: FailureCode, message: impl Into<String>) -> Self {
        Self {
            failure: Some(Failure {
                code,
                message: Some(message.into()),
            }),
            ..Self::default()
        }
    }
}

impl Payment {
    /// A new `ready` payment, created at `now`, payable for `ttl`; its first lookup is due just
    /// after it would expire, in case the buyer never returns.
    #[allow(clippy::too_many_arguments)]
    pub fn ready(
        id: PaymentId,
        cid: Cid,
        tid: Tid,
        order: (PartnerOrderId, PartnerUserId),
        item: (ItemName, Option<ItemCode>, Quantity),
        amounts: Amounts,
        channel: Channel,
        redirects: Redirects,
        return_url: Option<String>,
        idempotency_key: Option<String>,
        now: Timestamp,
        ttl: Duration,
    ) -> Payment {
        let expires_at = now.plus(ttl);
        Payment {
            id,
            status: PaymentStatus::Ready,
            cid,
            tid,
            aid: None,
            partner_order_id: order.0,
            partner_user_id: order.1,
            item_name: item.0,
            item_code: item.1,
            quantity: item.2,
            amounts,
            canceled: Amounts::default(),
            method: None,
            card_info: None,
            channel,
            redirects,
            return_url,
            pg_token: None,
            failure: None,
            refund_in_flight: None,
            created_at: now,
            updated_at: now,
            expires_at,
            approve_started_at: None,
            approved_at: None,
            canceled_at: None,
            next_check_at: Some(expires_at.plus(EXPIRY_CHECK_DELAY)),
            idempotency_key,
            check_attempts: 0,
            resend_count: 0,
            subscription_id: None,
            version: 1,
        }
    }

    /// A payment KakaoPay already made without the buyer (a subscription's charge): approved at
    /// `approved_at`, with KakaoPay's ids and what it says it charged.
    #[allow(clippy::too_many_arguments)]
    pub fn charged(
        id: PaymentId,
        cid: Cid,
        ids: (Tid, Aid),
        order: (PartnerOrderId, PartnerUserId),
        item: (ItemName, Quantity),
        amounts: Amounts,
        method: Option<PaymentMethodType>,
        card_info: Option<serde_json::Value>,
        subscription_id: SubscriptionId,
        approved_at: Timestamp,
    ) -> Payment {
        Payment {
            id,
            status: PaymentStatus::Approved,
            cid,
            tid: ids.0,
            aid: Some(ids.1),
            partner_order_id: order.0,
            partner_user_id: order.1,
            item_name: item.0,
            item_code: None,
            quantity: item.1,
            amounts,
            canceled: Amounts::default(),
            method,
            card_info,
            channel: Channel::Pc,
            redirects: Redirects::default(),
            return_url: None,
            pg_token: None,
            failure: None,
            refund_in_flight: None,
            created_at: approved_at,
            updated_at: approved_at,
            expires_at: approved_at,
            approve_started_at: None,
            approved_at: Some(approved_at),
            canceled_at: None,
            next_check_at: None,
            idempotency_key: None,
            check_attempts: 0,
            resend_count: 0,
            subscription_id: Some(subscription_id),
            version: 1,
        }
    }
}

/// How long after its expiry an unpaid payment is looked up (KakaoPay's own clock may lag).
pub const EXPIRY_CHECK_DELAY: Duration = Duration::from_secs(5);
