//! Identifiers shaped like KakaoPay's: a letter and 19 lower-case hex digits (TID, AID, SID),
//! 20 hex digits (pg_token), 64 hex digits (payment page token).

use rand::Rng;

fn hex(n: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| HEX[rng.random_range(0..16)] as char)
        .collect()
}

/// `T` + 19 hex.
pub fn tid() -> String {
    format!("T{}", hex(19))
}
/// `A` + 19 hex.
pub fn aid() -> String {
    format!("A{}", hex(19))
}
/// `S` + 19 hex.
pub fn sid() -> String {
    format!("S{}", hex(19))
}
/// 20 hex.
pub fn pg_token() -> String {
    hex(20)
}
/// 64 hex: the path segment of a payment page.
pub fn page_token() -> String {
    hex(64)
}
