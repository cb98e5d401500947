//! The payment event log: reading it, writing a status change's line (inside the change's own
//! write), and notes — outcomes that change no status, written only while the payment still is
//! in the status they are about, and counted instead of repeated when the same outcome comes
//! again right after itself.

use super::rows::{EVENT_COLUMNS, EventRow, convert};
use super::{Store, StoreError, read, write};
use crate::domain::{Cause, Detail, PaymentEvent, PaymentId, PaymentStatus, Timestamp};

/// Writing a status change's log line on the connection of the change itself, on either
/// backend.
pub(super) trait InsertEvent {
    /// Appends the line.
    fn insert_event(
        &mut self,
        payment: &PaymentId,
        from: Option<PaymentStatus>,
        to: PaymentStatus,
        cause: Cause,
        detail: &Detail,
        at: Timestamp,
    ) -> impl std::future::Future<Output = Result<(), sqlx::Error>> + Send;
}

macro_rules! impl_insert_event {
    ($conn:ty) => {
        impl InsertEvent for $conn {
            async fn insert_event(
                &mut self,
                payment: &PaymentId,
                from: Option<PaymentStatus>,
                to: PaymentStatus,
                cause: Cause,
                detail: &Detail,
                at: Timestamp,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(
                    "INSERT INTO payment_events (payment_id, from_status, to_status, cause, upstream_code, detail, at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(payment.as_str())
                .bind(from.map(PaymentStatus::as_str))
                .bind(to.as_str())
                .bind(cause.as_str())
                .bind(detail.kakaopay_code)
                .bind(detail.text.as_deref())
                .bind(at.millis())
                .execute(&mut *self)
                .await
                .map(|_| ())
            }
        }
    };
}
impl_insert_event!(sqlx::SqliteConnection);
impl_insert_event!(sqlx::PgConnection);

impl Store {
    /// Every line of a payment's log, oldest first.
    pub async fn events(&self, id: &PaymentId) -> Result<Vec<PaymentEvent>, StoreError> {
        let sql =
            format!("SELECT {EVENT_COLUMNS} FROM payment_events WHERE payment_id = $1 ORDER BY id");
        let rows = read!(self, pool => sqlx::query_as::<_, EventRow>(&sql).bind(id.as_str()).fetch_all(pool).await)?;
        convert(rows)
    }

    /// Logs an outcome that does not change the status (a refund request, an unclear answer, a
    /// re-send), only while the payment still is `status`: a late answer about an older state
    /// (say, KakaoPay's "already approved" after a lookup recorded the approval) leaves no
    /// misleading line. The same outcome again right after itself becomes a count on that line.
    pub async fn note(
        &self,
        id: &PaymentId,
        status: PaymentStatus,
        cause: Cause,
        detail: Detail,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let id = id.to_string();
        write!(self, |conn| {
            let repeated = sqlx::query(
                "UPDATE payment_events SET repeats = repeats + 1, last_at = $1, detail = $2 \
                 WHERE id = (SELECT MAX(id) FROM payment_events WHERE payment_id = $3) \
                 AND cause = $4 AND from_status = $5 AND to_status = $5 \
                 AND COALESCE(upstream_code, 0) = COALESCE($6, 0)",
            )
            .bind(now.millis())
            .bind(detail.text.as_deref())
            .bind(id.as_str())
            .bind(cause.as_str())
            .bind(status.as_str())
            .bind(detail.kakaopay_code)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if repeated == 0 {
                sqlx::query(
                    "INSERT INTO payment_events (payment_id, from_status, to_status, cause, upstream_code, detail, at) \
                     SELECT id, status, status, $1, $2, $3, $4 FROM payments WHERE id = $5 AND status = $6",
                )
                .bind(cause.as_str())
                .bind(detail.kakaopay_code)
                .bind(detail.text.as_deref())
                .bind(now.millis())
                .bind(id.as_str())
                .bind(status.as_str())
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
        })
    }
}
