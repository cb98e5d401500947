//! Magic inputs: `partner_user_id` prefixes that make approve misbehave, for people who cannot call
//! the fault API (a merchant's staging environment, say). Documented in the README.

use crate::SandboxError;

/// Approve answers `-780` `USER_LOCKED`; nothing is applied (the buyer may approve later).
pub const USER_LOCKED: &str = "sandbox_user_locked";
/// Approve **is applied** but answers `-780` `BANK_FIRM_UNKNOWN`: the merchant must look the order up.
pub const BANK_UNKNOWN: &str = "sandbox_bank_unknown";
/// Approve is declined: `-780` with method result `LIMIT_EXCEEDED`, status `FAIL_PAYMENT`
/// (subscription charges: `-782`).
pub const DECLINED: &str = "sandbox_declined";

/// Which magic a user id carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Magic {
    /// See [`USER_LOCKED`].
    UserLocked,
    /// See [`BANK_UNKNOWN`].
    BankUnknown,
    /// See [`DECLINED`].
    Declined,
}

/// The magic of `partner_user_id`, if it starts with one of the prefixes.
pub fn for_user(partner_user_id: &str) -> Option<Magic> {
    if partner_user_id.starts_with(USER_LOCKED) {
        Some(Magic::UserLocked)
    } else if partner_user_id.starts_with(BANK_UNKNOWN) {
        Some(Magic::BankUnknown)
    } else if partner_user_id.starts_with(DECLINED) {
        Some(Magic::Declined)
    } else {
        None
    }
}

/// `-780 USER_LOCKED`, KakaoPay's documented example.
pub fn user_locked() -> SandboxError {
    SandboxError::payment(-780, "approval failure!").with_method_result(
        "USER_LOCKED",
        "진행중인 거래가 있습니다. 잠시 후 다시 시도해 주세요.",
    )
}

/// `-780 BANK_FIRM_UNKNOWN`.
pub fn bank_unknown() -> SandboxError {
    SandboxError::payment(-780, "approval failure!")
        .with_method_result("BANK_FIRM_UNKNOWN", "은행 처리 결과를 알 수 없습니다.")
}

/// A declined payment.
pub fn declined() -> SandboxError {
    SandboxError::payment(-780, "approval failure!")
        .with_method_result("LIMIT_EXCEEDED", "카드 한도를 초과했습니다.")
}
