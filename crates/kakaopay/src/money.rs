//! Money: whole Korean won, never negative, and the VAT default rule.

use crate::error::ValidationError;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// An amount of Korean won (KRW has no minor unit). Never negative.
///
/// Arithmetic is checked: [`Amount::checked_sub`] returns `None` rather than going below zero, so a
/// refund larger than what is left cannot be expressed by accident.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Amount(i64);

impl Amount {
    /// Zero won.
    pub const ZERO: Amount = Amount(0);
    /// The largest amount accepted: 10^13 won, far above any card limit, far below overflow.
    pub const MAX: Amount = Amount(10_000_000_000_000);

    /// Parses an amount of won; negative and absurdly large values are refused.
    pub fn new(won: i64) -> Result<Self, ValidationError> {
        Self::new_for("amount", won)
    }

    /// Like [`Amount::new`], naming the field in the error.
    pub fn new_for(field: &'static str, won: i64) -> Result<Self, ValidationError> {
        if won < 0 {
            Err(ValidationError::new(
                field,
                format!("must not be negative, got {won}"),
            ))
        } else if won > Self::MAX.0 {
            Err(ValidationError::new(
                field,
                format!("must be at most {}, got {won}", Self::MAX.0),
            ))
        } else {
            Ok(Self(won))
        }
    }

    /// The number of won.
    pub const fn won(self) -> i64 {
        self.0
    }

    /// `self + other`, or `None` past [`Amount::MAX`].
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        Some(self.0 + other.0)
            .filter(|s| *s <= Self::MAX.0)
            .map(Amount)
    }

    /// `self - other`, or `None` if that would be negative.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).filter(|d| *d >= 0).map(Amount)
    }

    /// `self - other`, floored at zero.
    pub fn saturating_sub(self, other: Amount) -> Amount {
        Amount((self.0 - other.0).max(0))
    }
}

impl fmt::Display for Amount {
    /// `12,300원`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.to_string();
        let mut out = String::with_capacity(digits.len() + 4);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        write!(f, "{out}원")
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = crate::wire::int_from_number_or_string(d)?;
        Self::new(n).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<i64> for Amount {
    type Error = ValidationError;
    fn try_from(won: i64) -> Result<Self, Self::Error> {
        Self::new(won)
    }
}

/// KakaoPay's default VAT when `vat_amount` (ready, subscription) or `cancel_vat_amount` (cancel) is
/// left out: `round_half_up((total − tax_free) / 11)`, i.e. a 10 % VAT contained in the taxable part.
///
/// Returns `None` when `tax_free > total`, which KakaoPay refuses anyway. `green_deposit` is not
/// subtracted first: the documented formula does not mention it (spec §11 question 6).
///
/// ```
/// use kakaopay::{default_vat, Amount};
/// let won = |n| Amount::new(n).unwrap();
/// assert_eq!(default_vat(won(2200), won(0)), Some(won(200)));
/// assert_eq!(default_vat(won(1100), won(0)), Some(won(100)));
/// assert_eq!(default_vat(won(16), won(0)), Some(won(1)));   // 1.45 → 1
/// assert_eq!(default_vat(won(6), won(0)), Some(won(1)));    // 0.55 → 1
/// assert_eq!(default_vat(won(1000), won(1000)), Some(won(0)));
/// assert_eq!(default_vat(won(100), won(101)), None);
/// ```
pub fn default_vat(total: Amount, tax_free: Amount) -> Option<Amount> {
    let taxable = total.checked_sub(tax_free)?;
    // floor(x / 11 + 1/2) == floor((2x + 11) / 22) for x >= 0, in integers only.
    Some(Amount((2 * taxable.0 + 11) / 22))
}

/// The checks ready and subscription charges share: tax-free within the total, VAT within the
/// taxable part, cup deposit within the total.
pub(crate) fn check_order_amounts(
    total: Amount,
    tax_free: Amount,
    vat: Option<Amount>,
    green_deposit: Option<Amount>,
) -> Result<(), ValidationError> {
    let taxable = total
        .checked_sub(tax_free)
        .ok_or_else(|| ValidationError::new("tax_free_amount", "must not exceed total_amount"))?;
    if vat.is_some_and(|v| v > taxable) {
        return Err(ValidationError::new(
            "vat_amount",
            "must not exceed total_amount minus tax_free_amount",
        ));
    }
    if green_deposit.is_some_and(|d| d > total) {
        return Err(ValidationError::new(
            "green_deposit",
            "must not exceed total_amount",
        ));
    }
    Ok(())
}

/// The six-part breakdown KakaoPay uses for `amount`, `canceled_amount`, `cancel_available_amount`
/// and `approved_cancel_amount`. Missing parts (older responses lack `green_deposit`) read as zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AmountBreakdown {
    /// Total.
    pub total: Amount,
    /// Tax-free (비과세) part.
    #[serde(default)]
    pub tax_free: Amount,
    /// VAT (부가세) part.
    #[serde(default)]
    pub vat: Amount,
    /// Part paid with KakaoPay points.
    #[serde(default)]
    pub point: Amount,
    /// Discount part.
    #[serde(default)]
    pub discount: Amount,
    /// Cup deposit (컵 보증금) part.
    #[serde(default)]
    pub green_deposit: Amount,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn won(n: i64) -> Amount {
        Amount::new(n).unwrap()
    }

    #[test]
    fn vat_default_matches_integer_half_up_on_every_small_value() {
        for total in 0..5000 {
            let exact = total as f64 / 11.0;
            let expected = (exact + 0.5).floor() as i64;
            assert_eq!(
                default_vat(won(total), won(0)),
                Some(won(expected)),
                "total {total}"
            );
        }
        assert_eq!(default_vat(won(1_100_000), won(0)), Some(won(100_000)));
        assert_eq!(default_vat(won(2200), won(1100)), Some(won(100)));
        assert_eq!(
            default_vat(Amount::MAX, won(0)).map(Amount::won),
            Some(909_090_909_091)
        );
    }

    #[test]
    fn amounts_refuse_negative_and_absurd_values() {
        assert!(Amount::new(-1).is_err());
        assert!(Amount::new(Amount::MAX.won() + 1).is_err());
        assert_eq!(won(5).checked_sub(won(6)), None);
        assert_eq!(won(6).checked_sub(won(5)), Some(won(1)));
        assert_eq!(Amount::MAX.checked_add(won(1)), None);
        assert_eq!(won(1_234_567).to_string(), "1,234,567원");
        assert_eq!(won(100).to_string(), "100원");
    }

    #[test]
    fn breakdown_tolerates_missing_parts_and_string_numbers() {
        let b: AmountBreakdown = serde_json::from_str(r#"{"total":"2200","vat":200}"#).unwrap();
        assert_eq!(b.total, won(2200));
        assert_eq!(b.vat, won(200));
        assert_eq!(b.green_deposit, Amount::ZERO);
    }
}
