//! Money arithmetic: an order's amounts (VAT defaulted by KakaoPay's rule) and refunds against the
//! cancelable balance. Everything is checked integer won; nothing here can make refunds exceed
//! what was paid.

use kakaopay::{Amount, default_vat};
use serde::Serialize;

/// The parts of an amount the ledger tracks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Amounts {
    /// Total.
    #[schema(value_type = i64)]
    pub total: Amount,
    /// Tax-free part.
    #[schema(value_type = i64)]
    pub tax_free: Amount,
    /// VAT part.
    #[schema(value_type = i64)]
    pub vat: Amount,
    /// Cup deposit part.
    #[schema(value_type = i64)]
    pub green_deposit: Amount,
}

impl From<&kakaopay::AmountBreakdown> for Amounts {
    /// The parts the ledger tracks of KakaoPay's six-part breakdown (points and discounts are
    /// KakaoPay's business, not the merchant's).
    fn from(b: &kakaopay::AmountBreakdown) -> Self {
        Amounts {
            total: b.total,
            tax_free: b.tax_free,
            vat: b.vat,
            green_deposit: b.green_deposit,
        }
    }
}

/// Why an order's amounts are invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountsError {
    /// Nothing to pay.
    #[error("total_amount must be at least 1")]
    ZeroTotal,
    /// Tax-free above the total.
    #[error("tax_free_amount must not exceed total_amount")]
    TaxFreeAboveTotal,
    /// VAT above the taxable part.
    #[error("vat_amount must not exceed total_amount minus tax_free_amount")]
    VatAboveTaxable,
}

impl Amounts {
    /// An order's amounts; VAT defaults to KakaoPay's rule so the ledger records what KakaoPay will.
    pub fn for_order(
        total: Amount,
        tax_free: Amount,
        vat: Option<Amount>,
    ) -> Result<Self, AmountsError> {
        if total == Amount::ZERO {
            return Err(AmountsError::ZeroTotal);
        }
        let taxable = total
            .checked_sub(tax_free)
            .ok_or(AmountsError::TaxFreeAboveTotal)?;
        let vat = match vat {
            Some(v) if v > taxable => return Err(AmountsError::VatAboveTaxable),
            Some(v) => v,
            None => default_vat(total, tax_free).ok_or(AmountsError::TaxFreeAboveTotal)?,
        };
        Ok(Self {
            total,
            tax_free,
            vat,
            green_deposit: Amount::ZERO,
        })
    }

    /// `self - other`, part by part, or `None` if any part would go negative.
    pub fn checked_sub(&self, other: &Amounts) -> Option<Amounts> {
        Some(Amounts {
            total: self.total.checked_sub(other.total)?,
            tax_free: self.tax_free.checked_sub(other.tax_free)?,
            vat: self.vat.checked_sub(other.vat)?,
            green_deposit: self.green_deposit.checked_sub(other.green_deposit)?,
        })
    }

    /// `self + other`, part by part, or `None` past [`Amount::MAX`].
    pub fn checked_add(&self, other: &Amounts) -> Option<Amounts> {
        Some(Amounts {
            total: self.total.checked_add(other.total)?,
            tax_free: self.tax_free.checked_add(other.tax_free)?,
            vat: self.vat.checked_add(other.vat)?,
            green_deposit: self.green_deposit.checked_add(other.green_deposit)?,
        })
    }
}

/// A refund as asked: the amount, and optionally its tax-free and VAT parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefundRequest {
    /// How much to give back.
    pub amount: Amount,
    /// Its tax-free part (default: the remaining tax-free share, in proportion).
    pub tax_free: Option<Amount>,
    /// Its VAT part (default: KakaoPay's rule; the last refund takes all the VAT left).
    pub vat: Option<Amount>,
}

/// A refund as it will be sent: every part explicit, plus the guard KakaoPay checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefundPlan {
    /// The parts of this refund.
    pub amounts: Amounts,
    /// What was cancelable before it (`cancel_available_amount`).
    pub cancelable_before: Amount,
    /// Whether it empties the payment.
    pub full: bool,
}

/// Why a refund cannot be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RefundError {
    /// Zero won.
    #[error("amount must be at least 1")]
    ZeroAmount,
    /// More than what is left.
    #[error("amount {requested} exceeds the cancelable amount {cancelable}")]
    ExceedsCancelable {
        /// Asked.
        requested: i64,
        /// Left.
        cancelable: i64,
    },
    /// Tax-free part larger than the refund or than the tax-free part left.
    #[error("tax_free_amount {requested} exceeds what can be refunded tax-free ({available})")]
    TaxFreeTooLarge {
        /// Asked.
        requested: i64,
        /// Allowed.
        available: i64,
    },
    /// VAT part larger than the taxable part of the refund or than the VAT left.
    #[error("vat_amount {requested} exceeds what can be refunded as VAT ({available})")]
    VatTooLarge {
        /// Asked.
        requested: i64,
        /// Allowed.
        available: i64,
    },
    /// A full refund must take exactly the tax-free and VAT parts that are left.
    #[error("a full refund must have {field} {expected}, what is left of it")]
    FullRefundParts {
        /// `tax_free_amount` or `vat_amount`.
        field: &'static str,
        /// What is left.
        expected: i64,
    },
    /// The split would leave more tax-free or VAT than money.
    #[error(
        "this tax-free/VAT split would leave more tax-free and VAT ({left_parts}) than money ({left_total}); refund more tax-free or VAT"
    )]
    Unbalanced {
        /// Tax-free plus VAT left after it.
        left_parts: i64,
        /// Total left after it.
        left_total: i64,
    },
    /// A payment with a cup deposit can only be refunded in full.
    #[error("payments with a green deposit can only be refunded in full ({cancelable})")]
    GreenDepositPartial {
        /// What a full refund is.
        cancelable: i64,
    },
}

/// Plans a refund of `req` from a payment of `paid` of which `canceled` was refunded already.
pub fn plan_refund(
    paid: &Amounts,
    canceled: &Amounts,
    req: RefundRequest,
) -> Result<RefundPlan, RefundError> {
    if req.amount == Amount::ZERO {
        return Err(RefundError::ZeroAmount);
    }
    // A ledger never holds more refunded than paid; treat a broken one as nothing left.
    let left = paid.checked_sub(canceled).unwrap_or_default();
    if req.amount > left.total {
        return Err(RefundError::ExceedsCancelable {
            requested: req.amount.won(),
            cancelable: left.total.won(),
        });
    }
    let full = req.amount == left.total;
    if !full && paid.green_deposit > Amount::ZERO {
        return Err(RefundError::GreenDepositPartial {
            cancelable: left.total.won(),
        });
    }
    if full {
        // Everything left goes back, part by part; explicit parts must agree.
        if req.tax_free.is_some_and(|t| t != left.tax_free) {
            return Err(RefundError::FullRefundParts {
                field: "tax_free_amount",
                expected: left.tax_free.won(),
            });
        }
        if req.vat.is_some_and(|v| v != left.vat) {
            return Err(RefundError::FullRefundParts {
                field: "vat_amount",
                expected: left.vat.won(),
            });
        }
        return Ok(RefundPlan {
            amounts: left,
            cancelable_before: left.total,
            full,
        });
    }
    let tax_free_cap = left.tax_free.min(req.amount);
    let tax_free = match req.tax_free {
        Some(t) if t > tax_free_cap => {
            return Err(RefundError::TaxFreeTooLarge {
                requested: t.won(),
                available: tax_free_cap.won(),
            });
        }
        Some(t) => t,
        None => proportional(req.amount, left.tax_free, left.total),
    };
    let taxable = req.amount.saturating_sub(tax_free);
    let vat_cap = left.vat.min(taxable);
    let vat = match req.vat {
        Some(v) if v > vat_cap => {
            return Err(RefundError::VatTooLarge {
                requested: v.won(),
                available: vat_cap.won(),
            });
        }
        Some(v) => v,
        None => default_vat(req.amount, tax_free)
            .unwrap_or(Amount::ZERO)
            .min(vat_cap),
    };
    let amounts = Amounts {
        total: req.amount,
        tax_free,
        vat,
        green_deposit: Amount::ZERO,
    };
    let after = left.checked_sub(&amounts).unwrap_or_default();
    let left_parts = after.tax_free.won() + after.vat.won();
    if left_parts > after.total.won() {
        return Err(RefundError::Unbalanced {
            left_parts,
            left_total: after.total.won(),
        });
    }
    Ok(RefundPlan {
        amounts,
        cancelable_before: left.total,
        full,
    })
}

/// `amount × part / whole`, rounded down, in integers.
fn proportional(amount: Amount, part: Amount, whole: Amount) -> Amount {
    if whole == Amount::ZERO {
        return Amount::ZERO;
    }
    let v = i128::from(amount.won()) * i128::from(part.won()) / i128::from(whole.won());
    Amount::new(i64::try_from(v).unwrap_or(0))
        .unwrap_or(Amount::ZERO)
        .min(part)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn won(n: i64) -> Amount {
        Amount::new(n).unwrap()
    }

    fn req(amount: i64) -> RefundRequest {
        RefundRequest {
            amount: won(amount),
            tax_free: None,
            vat: None,
        }
    }

    #[test]
    fn order_amounts_default_the_vat() {
        let a = Amounts::for_order(won(33_000), won(11_000), None).unwrap();
        assert_eq!(a.vat, won(2000));
        assert_eq!(
            Amounts::for_order(won(0), won(0), None),
            Err(AmountsError::ZeroTotal)
        );
        assert_eq!(
            Amounts::for_order(won(10), won(11), None),
            Err(AmountsError::TaxFreeAboveTotal)
        );
        assert_eq!(
            Amounts::for_order(won(10), won(5), Some(won(6))),
            Err(AmountsError::VatAboveTaxable)
        );
        assert_eq!(
            Amounts::for_order(won(10), won(5), Some(won(5)))
                .unwrap()
                .vat,
            won(5)
        );
    }

    #[test]
    fn partial_then_full_refund_adds_up_exactly() {
        let paid = Amounts::for_order(won(33_000), won(11_000), None).unwrap();
        let first = plan_refund(&paid, &Amounts::default(), req(5500)).unwrap();
        assert!(!first.full);
        assert_eq!(first.cancelable_before, won(33_000));
        // Tax-free in proportion: 5500 × 11000 / 33000 = 1833; VAT (5500 − 1833) / 11 = 333.
        assert_eq!(first.amounts.tax_free, won(1833));
        assert_eq!(first.amounts.vat, won(333));
        let canceled = first.amounts;
        let rest = plan_refund(&paid, &canceled, req(27_500)).unwrap();
        assert!(rest.full);
        assert_eq!(canceled.checked_add(&rest.amounts).unwrap(), paid);
    }

    #[test]
    fn refund_errors() {
        let paid = Amounts::for_order(won(1000), won(0), None).unwrap();
        assert_eq!(
            plan_refund(&paid, &Amounts::default(), req(0)),
            Err(RefundError::ZeroAmount)
        );
        assert_eq!(
            plan_refund(&paid, &Amounts::default(), req(1001)),
            Err(RefundError::ExceedsCancelable {
                requested: 1001,
                cancelable: 1000
            })
        );
        let tf = RefundRequest {
            amount: won(100),
            tax_free: Some(won(1)),
            vat: None,
        };
        assert!(matches!(
            plan_refund(&paid, &Amounts::default(), tf),
            Err(RefundError::TaxFreeTooLarge { .. })
        ));
        let vat = RefundRequest {
            amount: won(100),
            tax_free: None,
            vat: Some(won(92)),
        };
        assert!(matches!(
            plan_refund(&paid, &Amounts::default(), vat),
            Err(RefundError::VatTooLarge { .. })
        ));
        let mut deposit = paid;
        deposit.green_deposit = won(100);
        assert!(matches!(
            plan_refund(&deposit, &Amounts::default(), req(10)),
            Err(RefundError::GreenDepositPartial { .. })
        ));
        assert!(
            plan_refund(&deposit, &Amounts::default(), req(1000))
                .unwrap()
                .full
        );
    }

    proptest! {
        /// Whatever refunds are asked, in whatever order, the refunded parts never exceed the paid
        /// parts, and when the total is refunded every part is.
        #[test]
        fn refunds_never_exceed_the_payment(
            total in 1i64..5_000_000,
            tax_free_share in 0i64..=100,
            asks in proptest::collection::vec((1i64..3_000_000, proptest::option::of(0i64..100_000), proptest::option::of(0i64..100_000)), 1..30),
        ) {
            let tax_free = total * tax_free_share / 100;
            let paid = Amounts::for_order(won(total), won(tax_free), None).unwrap();
            let mut canceled = Amounts::default();
            for (amount, tf, vat) in asks {
                let r = RefundRequest { amount: won(amount), tax_free: tf.map(won), vat: vat.map(won) };
                if let Ok(plan) = plan_refund(&paid, &canceled, r) {
                    canceled = canceled.checked_add(&plan.amounts).unwrap();
                    prop_assert!(paid.checked_sub(&canceled).is_some(), "over-refunded: {canceled:?} of {paid:?}");
                    prop_assert!(plan.amounts.tax_free.checked_add(plan.amounts.vat).unwrap() <= plan.amounts.total);
                }
            }
            if canceled.total == paid.total {
                prop_assert_eq!(canceled, paid);
            }
        }
    }
}
