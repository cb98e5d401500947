//! Figures over the ledger: payments by status, approved money per day, and the reconciler's runs.

use super::{Store, StoreError, read, write};
use crate::domain::{PaymentStatus, Timestamp};
use kakaopay::Amount;

/// Approved money of one day (KST).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DayTotal {
    /// 00:00 KST of the day.
    pub day: Timestamp,
    /// Payments approved that day.
    pub count: u64,
    /// What they were paid.
    pub paid: Amount,
    /// What of it has been refunded since.
    pub refunded: Amount,
}

/// One pass of the reconciler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconcilerRun {
    /// Run id.
    pub id: String,
    /// The instance that ran it.
    pub instance: String,
    /// Started.
    pub started_at: Timestamp,
    /// Finished.
    pub finished_at: Timestamp,
    /// Payments looked up.
    pub checked: u64,
    /// Payments whose status changed.
    pub changed: u64,
    /// Disagreements with KakaoPay found.
    pub mismatches: u64,
}

type RunRow = (String, String, i64, i64, i64, i64, i64);

fn corrupt(table: &'static str, id: &str, field: &'static str) -> StoreError {
    StoreError::Corrupt {
        table,
        id: id.to_owned(),
        field,
    }
}

fn count(table: &'static str, id: &str, field: &'static str, n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| corrupt(table, id, field))
}

impl Store {
    /// How many payments are in each status (statuses without payments are absent).
    pub async fn status_counts(&self) -> Result<Vec<(PaymentStatus, u64)>, StoreError> {
        let sql = "SELECT status, COUNT(*) FROM payments GROUP BY status";
        let rows =
            read!(self, pool => sqlx::query_as::<_, (String, i64)>(sql).fetch_all(pool).await)?;
        rows.into_iter()
            .map(|(s, n)| {
                let status =
                    PaymentStatus::parse(&s).ok_or_else(|| corrupt("payments", &s, "status"))?;
                Ok((status, count("payments", &s, "status", n)?))
            })
            .collect()
    }

    /// Approved money per day (KST) since `since`, oldest day first.
    pub async fn daily_totals(&self, since: Timestamp) -> Result<Vec<DayTotal>, StoreError> {
        // Days start at 00:00 KST = 15:00 UTC of the day before.
        let sql = "SELECT ((approved_at + 32400000) / 86400000) * 86400000 - 32400000 AS day, COUNT(*), \
                   CAST(SUM(amount_total) AS BIGINT), CAST(SUM(canceled_total) AS BIGINT) FROM payments \
                   WHERE approved_at IS NOT NULL AND approved_at >= $1 GROUP BY day ORDER BY day";
        let rows = read!(self, pool => sqlx::query_as::<_, (i64, i64, i64, i64)>(sql).bind(since.millis()).fetch_all(pool).await)?;
        rows.into_iter()
            .map(|(day, n, paid, refunded)| {
                let id = day.to_string();
                Ok(DayTotal {
                    day: Timestamp::from_millis(day)
                        .ok_or_else(|| corrupt("payments", &id, "approved_at"))?,
                    count: count("payments", &id, "approved_at", n)?,
                    paid: Amount::new(paid)
                        .map_err(|_| corrupt("payments", &id, "amount_total"))?,
                    refunded: Amount::new(refunded)
                        .map_err(|_| corrupt("payments", &id, "canceled_total"))?,
                })
            })
            .collect()
    }

    /// Records a reconciler run.
    pub async fn record_run(&self, run: &ReconcilerRun) -> Result<(), StoreError> {
        let run = run.clone();
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        write!(self, |conn| {
            sqlx::query(
                "INSERT INTO reconciler_runs (id, instance, started_at, finished_at, checked, changed, mismatches) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&run.id)
            .bind(&run.instance)
            .bind(run.started_at.millis())
            .bind(run.finished_at.millis())
            .bind(n(run.checked))
            .bind(n(run.changed))
            .bind(n(run.mismatches))
            .execute(&mut *conn)
            .await
            .map(|_| ())
        })
    }

    /// How many disagreements with KakaoPay all reconciler runs found.
    pub async fn reconciler_mismatches(&self) -> Result<u64, StoreError> {
        let (n,): (i64,) = read!(self, pool => sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(mismatches), 0) AS BIGINT) FROM reconciler_runs",
        )
        .fetch_one(pool)
        .await)?;
        count("reconciler_runs", "sum", "mismatches", n)
    }

    /// The latest reconciler run.
    pub async fn last_run(&self) -> Result<Option<ReconcilerRun>, StoreError> {
        let row: Option<RunRow> = read!(self, pool => sqlx::query_as(
            "SELECT id, instance, started_at, finished_at, checked, changed, mismatches FROM reconciler_runs \
             ORDER BY started_at DESC LIMIT 1",
        )
        .fetch_optional(pool)
        .await)?;
        let Some((id, instance, started, finished, checked, changed, mismatches)) = row else {
            return Ok(None);
        };
        let t = |field, ms| {
            Timestamp::from_millis(ms).ok_or_else(|| corrupt("reconciler_runs", &id, field))
        };
        Ok(Some(ReconcilerRun {
            started_at: t("started_at", started)?,
            finished_at: t("finished_at", finished)?,
            checked: count("reconciler_runs", &id, "checked", checked)?,
            changed: count("reconciler_runs", &id, "changed", changed)?,
            mismatches: count("reconciler_runs", &id, "mismatches", mismatches)?,
            instance,
            id,
        }))
    }
}
