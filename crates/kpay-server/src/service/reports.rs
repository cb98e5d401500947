//! What the back office shows: the week's figures, the payments that need a look, refund
//! previews, the reconciler's last run. Read-only use cases; the rules they apply (what can be
//! refunded) are the domain's.

use super::{Conflict, ServiceError, Services};
use crate::domain::{
    FailureCode, Payment, PaymentId, PaymentStatus, RefundError, RefundPlan, RefundRequest,
    Timestamp, kst, plan_refund,
};
use crate::store::{ListFilter, ReconcilerRun};
use chrono::{Days, NaiveDate};
use kakaopay::Amount;

/// One day's approved money (KST).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DayFigures {
    /// The day.
    pub(crate) day: NaiveDate,
    /// Payments approved that day.
    pub(crate) count: u64,
    /// What they were paid.
    pub(crate) paid: Amount,
    /// What of it has been refunded since.
    pub(crate) refunded: Amount,
}

/// The dashboard's figures: the last seven days (KST), today last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Dashboard {
    /// Oldest first, seven days.
    pub(crate) days: Vec<DayFigures>,
}

impl Dashboard {
    /// Today's figures.
    pub(crate) fn today(&self) -> Option<&DayFigures> {
        self.days.last()
    }
    /// The seven days' payments, paid and refunded amounts.
    pub(crate) fn week(&self) -> (u64, i64, i64) {
        self.days.iter().fold((0, 0, 0), |(n, p, r), d| {
            (n + d.count, p + d.paid.won(), r + d.refunded.won())
        })
    }
}

/// A refund as it would be made, for the confirmation step.
#[derive(Clone, Debug)]
pub(crate) struct RefundPreview {
    /// The payment.
    pub(crate) payment: Payment,
    /// The refund as planned against the payment's balance.
    pub(crate) plan: RefundPlan,
    /// What is left to refund after it.
    pub(crate) left_after: Amount,
}

fn midnight(day: NaiveDate) -> Timestamp {
    kakaopay::KstDateTime(day.and_hms_opt(0, 0, 0).unwrap_or_default())
        .to_utc()
        .into()
}

impl Services {
    /// The last seven days' approved money, today (by Korean time at `now`) last.
    pub(crate) async fn dashboard(&self, now: Timestamp) -> Result<Dashboard, ServiceError> {
        let today = now.utc().with_timezone(&kst()).date_naive();
        let first = today - Days::new(6);
        let totals = self.store.daily_totals(midnight(first)).await?;
        let days = (0..7)
            .map(|i| {
                let day = first + Days::new(i);
                let start = midnight(day);
                let t = totals.iter().find(|t| t.day == start);
                DayFigures {
                    day,
                    count: t.map_or(0, |t| t.count),
                    paid: t.map_or(Amount::ZERO, |t| t.paid),
                    refunded: t.map_or(Amount::ZERO, |t| t.refunded),
                }
            })
            .collect();
        Ok(Dashboard { days })
    }

    /// Payments whose approve is still being confirmed, newest first.
    pub(crate) async fn approving(&self, limit: u32) -> Result<Vec<Payment>, ServiceError> {
        let page = self
            .store
            .page(&ListFilter {
                status: Some(PaymentStatus::Approving),
                limit,
                ..ListFilter::default()
            })
            .await?;
        Ok(page.payments)
    }

    /// Payments cancelled because KakaoPay's approval did not match the order, newest first
    /// (among the latest `scan` cancelled ones).
    pub(crate) async fn mismatched(&self, scan: u32) -> Result<Vec<Payment>, ServiceError> {
        let page = self
            .store
            .page(&ListFilter {
                status: Some(PaymentStatus::Canceled),
                limit: scan,
                ..ListFilter::default()
            })
            .await?;
        Ok(page
            .payments
            .into_iter()
            .filter(|p| {
                p.failure
                    .as_ref()
                    .is_some_and(|f| f.code == FailureCode::AmountMismatch)
            })
            .collect())
    }

    /// How many payments have a lookup due at `at`.
    pub(crate) async fn due_count(&self, at: Timestamp) -> Result<u64, ServiceError> {
        let subscriptions = u64::try_from(self.store.subscriptions_due(at).await?).unwrap_or(0);
        Ok(self.store.due_count(at).await? + subscriptions)
    }

    /// The latest reconciler run (automatic or started by hand).
    pub(crate) async fn last_reconciler_run(&self) -> Result<Option<ReconcilerRun>, ServiceError> {
        Ok(self.store.last_run().await?)
    }

    /// How a refund of `amount` from payment `id` would be made, by the domain's refund rule:
    /// the preview, or the rule's reason it cannot be made (inner `Err`).
    pub(crate) async fn refund_preview(
        &self,
        id: &PaymentId,
        amount: Amount,
    ) -> Result<Result<RefundPreview, RefundError>, ServiceError> {
        let payment = self.payment(id).await?;
        if !payment.status.is_refundable() {
            return Err(ServiceError::Conflict {
                code: Conflict::NotRefundable,
                message: format!("a payment that is {} has nothing to refund", payment.status),
            });
        }
        let plan = match plan_refund(
            &payment.amounts,
            &payment.canceled,
            RefundRequest {
                amount,
                tax_free: None,
                vat: None,
            },
        ) {
            Ok(plan) => plan,
            Err(e) => return Ok(Err(e)),
        };
        let left_after = payment
            .cancelable()
            .checked_sub(plan.amounts.total)
            .unwrap_or(Amount::ZERO);
        Ok(Ok(RefundPreview {
            payment,
            plan,
            left_after,
        }))
    }
}
