//! Webhook deliveries: the fan-out from the events outbox to the endpoints that want each
//! event, leases of due deliveries (one instance sends each), the record of every attempt with
//! what it decided, and the reads the API and the admin show.

use super::outbox::EventRecord;
use super::{Db, Store, StoreError, read, write_tx};
use crate::domain::{
    DeliveryStatus, DeliveryVerdict, EndpointStatus, EventId, EventSelection, Timestamp,
    WebhookEndpointId, failing_too_long,
};
use sqlx::QueryBuilder;
use std::collections::HashMap;
use std::time::Duration;

/// Attempts recorded per statement: 9 binds each, far below either database's limit.
const RECORD_CHUNK: usize = 250;

/// A delivery's status, next attempt and delivery time after an attempt judged `verdict`.
fn outcome_columns(
    verdict: DeliveryVerdict,
    now: Timestamp,
) -> (DeliveryStatus, Option<i64>, Option<i64>) {
    match verdict {
        DeliveryVerdict::Delivered => (DeliveryStatus::Succeeded, None, Some(now.millis())),
        DeliveryVerdict::RetryAt(at) => (DeliveryStatus::Pending, Some(at.millis()), None),
        DeliveryVerdict::GiveUp | DeliveryVerdict::Gone => (DeliveryStatus::Failed, None, None),
    }
}

/// Inside a write transaction on `$conn`: ends the pending deliveries of endpoint `$endpoint`
/// as failed, saying `$why`.
macro_rules! end_pending {
    ($conn:expr, $endpoint:expr, $why:expr, $now:expr) => {
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'failed', last_error = $1, next_attempt_at = NULL, \
             lease_owner = NULL, lease_until = NULL, updated_at = $2 WHERE endpoint_id = $3 AND status = 'pending'",
        )
        .bind($why)
        .bind($now.millis())
        .bind($endpoint)
        .execute(&mut *$conn)
        .await
    };
}
pub(crate) use end_pending;

/// What one fan-out step did.
#[derive(Clone, Debug, Default)]
pub struct FanOut {
    /// Events read from the outbox.
    pub events: usize,
    /// Deliveries created.
    pub deliveries: usize,
    /// Those created already leased to the fanning worker (see [`HandOff`]), with their
    /// events: sent without another lease or read.
    pub leased: Vec<DueDelivery>,
}

/// Deliveries the fan-out may create already leased to its own worker: the owner, until
/// when, and how many at most (what the worker has room for now).
#[derive(Clone, Debug)]
pub struct HandOff {
    /// The lease owner.
    pub owner: String,
    /// The lease's end.
    pub until: Timestamp,
    /// How many at most.
    pub room: usize,
}

/// A delivery leased to be sent now.
#[derive(Clone, Debug)]
pub struct DueDelivery {
    /// The event.
    pub event: EventRecord,
    /// Where to.
    pub endpoint_id: WebhookEndpointId,
    /// The number this attempt will have in its round (1 = the first).
    pub attempt: u32,
}

/// One attempt, made, with what it decided.
#[derive(Clone, Debug)]
pub struct AttemptRecord {
    /// The event.
    pub event_id: EventId,
    /// Where it went.
    pub endpoint_id: WebhookEndpointId,
    /// Its number in its round.
    pub attempt: u32,
    /// When it started.
    pub started_at: Timestamp,
    /// How long it took.
    pub latency: Duration,
    /// The status code, if one came back.
    pub status_code: Option<u16>,
    /// What went wrong, for people (no status, or a non-2xx).
    pub error: Option<String>,
    /// The first bytes of the answer.
    pub response: Option<String>,
    /// What follows.
    pub verdict: DeliveryVerdict,
    /// The lease it was sent under: a delivery leased again since (expired, or redelivered)
    /// is left to its new holder.
    pub owner: String,
}

/// An endpoint disabled by the answers recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disabled {
    /// The endpoint.
    pub endpoint_id: WebhookEndpointId,
    /// Why.
    pub reason: String,
}

/// One attempt as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AttemptRow {
    /// Its number in its round.
    pub attempt: i64,
    /// When it started (ms).
    pub started_at: i64,
    /// How long it took (ms).
    pub latency_ms: i64,
    /// The status code, if one came back.
    pub status_code: Option<i64>,
    /// What went wrong.
    pub error: Option<String>,
    /// The first bytes of the answer.
    pub response: Option<String>,
    /// The endpoint.
    pub endpoint_id: String,
    /// The event.
    pub event_id: String,
}

/// A delivery as stored.
#[derive(Clone, Debug)]
pub struct DeliveryRecord {
    /// The event.
    pub event_id: EventId,
    /// The endpoint.
    pub endpoint_id: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts of this round.
    pub attempts: u32,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<Timestamp>,
    /// The last status code.
    pub last_status_code: Option<u16>,
    /// The last error.
    pub last_error: Option<String>,
    /// When a 2xx came back.
    pub delivered_at: Option<Timestamp>,
    /// Created (fanned out).
    pub created_at: Timestamp,
    /// Every attempt, oldest first (only when read per event).
    pub history: Vec<AttemptRow>,
}

type DeliveryRow = (
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    i64,
);

const DELIVERY_COLUMNS: &str = "event_id, endpoint_id, status, attempts, next_attempt_at, last_status_code, last_error, delivered_at, created_at";
const ATTEMPT_COLUMNS: &str =
    "attempt, started_at, latency_ms, status_code, error, response, endpoint_id, event_id";

fn delivery(r: DeliveryRow) -> Result<DeliveryRecord, StoreError> {
    let (event_id, endpoint_id, status, attempts, next, code, error, delivered, created) = r;
    let corrupt = |field| StoreError::Corrupt {
        table: "webhook_deliveries",
        id: format!("{event_id}/{endpoint_id}"),
        field,
    };
    let time = |field, ms: i64| Timestamp::from_millis(ms).ok_or_else(|| corrupt(field));
    Ok(DeliveryRecord {
        status: status.parse().map_err(|_| corrupt("status"))?,
        attempts: u32::try_from(attempts).map_err(|_| corrupt("attempts"))?,
        next_attempt_at: next.map(|t| time("next_attempt_at", t)).transpose()?,
        last_status_code: code.and_then(|c| u16::try_from(c).ok()),
        last_error: error,
        delivered_at: delivered.map(|t| time("delivered_at", t)).transpose()?,
        created_at: time("created_at", created)?,
        event_id: EventId::parse(&event_id).map_err(|_| corrupt("event_id"))?,
        endpoint_id,
        history: Vec::new(),
    })
}

/// The enabled endpoints as the fan-out needs them: id, selection, created.
type Wanting = Vec<(String, EventSelection, i64)>;

/// The selections, read leniently: a name this build does not know (a newer instance made
/// the endpoint) matches nothing here, the known ones still match — events of an unknown type
/// stop the fan-out instead (see [`Store::fan_out`]), so nothing is skipped for good.
fn wanting(rows: Vec<(String, String, i64)>) -> Wanting {
    rows.into_iter()
        .map(|(id, events, created)| {
            let sel = if events.split(',').any(|n| n.trim() == "*") {
                EventSelection::All
            } else {
                EventSelection::Only(
                    events
                        .split(',')
                        .filter_map(|n| n.trim().parse().ok())
                        .collect(),
                )
            };
            (id, sel, created)
        })
        .collect()
}

/// What a batch of attempts says about one endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Health {
    /// The first failure after the batch's last success (or of the batch, if none succeeded).
    failing_from: Option<Timestamp>,
    /// Some attempt succeeded.
    succeeded: bool,
    /// Some attempt was answered 410.
    gone: bool,
}

/// Per endpoint, in id order (the order their rows are locked in), from attempts in the
/// order they ended.
fn endpoint_health(batch: &[AttemptRecord]) -> std::collections::BTreeMap<String, Health> {
    let mut out: std::collections::BTreeMap<String, Health> = std::collections::BTreeMap::new();
    for a in batch {
        let h = out.entry(a.endpoint_id.to_string()).or_default();
        match a.verdict {
            DeliveryVerdict::Delivered => {
                h.succeeded = true;
                h.failing_from = None;
            }
            DeliveryVerdict::Gone => h.gone = true,
            DeliveryVerdict::RetryAt(_) | DeliveryVerdict::GiveUp => {
                h.failing_from.get_or_insert(a.started_at);
            }
        }
    }
    out
}

impl Store {
    /// Moves the fan-out cursor over up to `limit` events, adding a delivery (due `now`) for
    /// every enabled endpoint that wants each and existed when it happened. One instance at a
    /// time (the cursor row is locked; another instance skips); an event is fanned out once.
    pub async fn fan_out(
        &self,
        now: Timestamp,
        limit: i64,
        hand_off: Option<HandOff>,
    ) -> Result<FanOut, StoreError> {
        let pg = matches!(self.db, Db::Postgres(_));
        // Nothing new: no write (on PostgreSQL no transaction id, no row lock), just a read.
        let (newer,): (i64,) = match &self.db {
            Db::Sqlite { reader, .. } => sqlx::query_as(
                "SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE seq > (SELECT cursor_seq FROM webhook_fanout WHERE id = 1) LIMIT 1)",
            )
            .fetch_one(reader)
            .await?,
            Db::Postgres(pool) => sqlx::query_as(
                "SELECT COUNT(*) FROM (SELECT 1 FROM events, webhook_fanout f WHERE f.id = 1 \
                 AND tx < pg_snapshot_xmin(pg_current_snapshot()) \
                 AND (tx, seq) > (f.cursor_tx::text::xid8, f.cursor_seq) LIMIT 1) n",
            )
            .fetch_one(pool)
            .await?,
        };
        if newer == 0 {
            return Ok(FanOut::default());
        }
        let (cursor_sql, events_sql) = if pg {
            (
                "SELECT cursor_tx, cursor_seq FROM webhook_fanout WHERE id = 1 FOR UPDATE SKIP LOCKED",
                "SELECT tx::text::bigint, seq, id, type, object_id, object_version, data, created_at FROM events \
                 WHERE tx < pg_snapshot_xmin(pg_current_snapshot()) AND (tx, seq) > ($1::text::xid8, $2) \
                 ORDER BY tx, seq LIMIT $3",
            )
        } else {
            (
                "SELECT cursor_tx, cursor_seq FROM webhook_fanout WHERE id = 1",
                "SELECT 0, seq, id, type, object_id, object_version, data, created_at FROM events \
                 WHERE $1 = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
        };
        write_tx!(self, |conn| {
            let Some((tx, seq)): Option<(i64, i64)> = sqlx::query_as(cursor_sql)
                .fetch_optional(&mut *conn)
                .await?
            else {
                return Ok(FanOut::default());
            };
            let rows: Vec<super::outbox::EventRow> = sqlx::query_as(events_sql)
                .bind(tx.to_string())
                .bind(seq)
                .bind(limit)
                .fetch_all(&mut *conn)
                .await?;
            let Some(&(last_tx, last_seq, ..)) = rows.last() else {
                return Ok(FanOut::default());
            };
            let endpoints = wanting(
                sqlx::query_as(
                    "SELECT id, events, created_at FROM webhook_endpoints WHERE status = 'enabled'",
                )
                .fetch_all(&mut *conn)
                .await?,
            );
            let mut pairs: Vec<(&str, &str, i64)> = Vec::new();
            for (_, _, id, kind, _, _, _, created) in &rows {
                // An event type this build does not know (a newer instance wrote it): stop
                // here, for a newer instance to fan it out.
                let kind = kind.parse().map_err(|_| {
                    sqlx::Error::Protocol(format!(
                        "event {id} has a type unknown to this version: {kind}"
                    ))
                })?;
                for (endpoint, sel, since) in &endpoints {
                    if sel.wants(kind) && created >= since {
                        pairs.push((id.as_str(), endpoint.as_str(), *created));
                    }
                }
            }
            let mut created = 0;
            let mut leased: Vec<(String, String)> = Vec::new();
            let (owner, until, room) = match &hand_off {
                Some(h) => (Some(h.owner.as_str()), Some(h.until.millis()), h.room),
                None => (None, None, 0),
            };
            // A few hundred rows per statement: well within either backend's parameter limit.
            for (i, chunk) in pairs.chunks(200).enumerate() {
                let mut qb = QueryBuilder::new(
                    "INSERT INTO webhook_deliveries (event_id, endpoint_id, status, attempts, next_attempt_at, \
                     event_created_at, created_at, updated_at, lease_owner, lease_until) ",
                );
                let mut n = i * 200;
                qb.push_values(chunk, |mut b, (event, endpoint, at)| {
                    let lease = n < room;
                    n += 1;
                    b.push_bind(*event)
                        .push_bind(*endpoint)
                        .push("'pending'")
                        .push("0")
                        .push_bind(now.millis())
                        .push_bind(*at)
                        .push_bind(now.millis())
                        .push_bind(now.millis())
                        .push_bind(owner.filter(|_| lease))
                        .push_bind(until.filter(|_| lease));
                });
                qb.push(" ON CONFLICT (event_id, endpoint_id) DO NOTHING RETURNING event_id, endpoint_id, lease_owner");
                let rows: Vec<(String, String, Option<String>)> =
                    qb.build_query_as().fetch_all(&mut *conn).await?;
                created += rows.len();
                leased.extend(
                    rows.into_iter()
                        .filter(|(_, _, o)| o.is_some())
                        .map(|(e, w, _)| (e, w)),
                );
            }
            sqlx::query("UPDATE webhook_fanout SET cursor_tx = $1, cursor_seq = $2 WHERE id = 1")
                .bind(last_tx)
                .bind(last_seq)
                .execute(&mut *conn)
                .await?;
            let events: HashMap<&str, &super::outbox::EventRow> =
                rows.iter().map(|r| (r.2.as_str(), r)).collect();
            let mut due = Vec::with_capacity(leased.len());
            for (event, endpoint) in leased {
                let (Some(row), Ok(endpoint_id)) = (
                    events.get(event.as_str()),
                    WebhookEndpointId::parse(&endpoint),
                ) else {
                    continue;
                };
                if let Ok(event) = super::outbox::record((*row).clone()) {
                    due.push(DueDelivery {
                        event,
                        endpoint_id,
                        attempt: 1,
                    });
                }
            }
            Ok(FanOut {
                events: rows.len(),
                deliveries: created,
                leased: due,
            })
        })
    }

    /// Leases up to `limit` due deliveries to enabled endpoints (none to those in `skip`: they
    /// have enough in flight) to `owner` until `now + lease`, with their events.
    pub async fn lease_deliveries(
        &self,
        owner: &str,
        now: Timestamp,
        lease: Duration,
        limit: i64,
        skip: &[String],
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let lock = match self.db {
            Db::Postgres(_) => " FOR UPDATE OF d SKIP LOCKED",
            Db::Sqlite { .. } => "",
        };
        let until = now.plus(lease).millis();
        let (owner, skip) = (owner.to_owned(), skip.to_vec());
        let leased: Vec<(String, String, i64)> = write_tx!(self, |conn| {
            let mut qb = QueryBuilder::new("UPDATE webhook_deliveries SET lease_owner = ");
            qb.push_bind(owner.as_str())
                .push(", lease_until = ")
                .push_bind(until)
                .push(
                    " WHERE (event_id, endpoint_id) IN (SELECT d.event_id, d.endpoint_id FROM webhook_deliveries d \
                     JOIN webhook_endpoints w ON w.id = d.endpoint_id WHERE d.status = 'pending' AND d.next_attempt_at <= ",
                )
                .push_bind(now.millis())
                .push(" AND (d.lease_until IS NULL OR d.lease_until < ")
                .push_bind(now.millis())
                .push(") AND w.status = 'enabled'");
            if !skip.is_empty() {
                qb.push(" AND d.endpoint_id NOT IN (");
                let mut list = qb.separated(", ");
                for s in &skip {
                    list.push_bind(s.as_str());
                }
                qb.push(")");
            }
            qb.push(" ORDER BY d.next_attempt_at LIMIT ")
                .push_bind(limit)
                .push(lock)
                .push(") RETURNING event_id, endpoint_id, attempts");
            qb.build_query_as().fetch_all(&mut *conn).await
        })?;
        if leased.is_empty() {
            return Ok(Vec::new());
        }
        let events = self
            .events_by_id(leased.iter().map(|(e, _, _)| e.as_str()))
            .await?;
        let mut due = Vec::with_capacity(leased.len());
        let mut unreadable = Vec::new();
        for (event_id, endpoint_id, attempts) in leased {
            let (Some(event), Ok(endpoint_id)) = (
                events.get(&event_id),
                WebhookEndpointId::parse(&endpoint_id),
            ) else {
                // Leased again and again it would be sent never: it ends, said loudly.
                tracing::error!(event = %event_id, endpoint = %endpoint_id, "a leased delivery has no readable event; it ends as failed");
                unreadable.push((event_id, endpoint_id));
                continue;
            };
            due.push(DueDelivery {
                event: event.clone(),
                endpoint_id,
                attempt: u32::try_from(attempts).unwrap_or(u32::MAX - 1) + 1,
            });
        }
        if !unreadable.is_empty() {
            write_tx!(self, |conn| {
                for (event, endpoint) in &unreadable {
                    sqlx::query(
                        "UPDATE webhook_deliveries SET status = 'failed', last_error = 'the event cannot be read', \
                         next_attempt_at = NULL, lease_owner = NULL, lease_until = NULL, updated_at = $1 \
                         WHERE event_id = $2 AND endpoint_id = $3",
                    )
                    .bind(now.millis())
                    .bind(event.as_str())
                    .bind(endpoint.as_str())
                    .execute(&mut *conn)
                    .await?;
                }
                Ok(())
            })?;
        }
        Ok(due)
    }

    async fn events_by_id<'a>(
        &self,
        ids: impl Iterator<Item = &'a str>,
    ) -> Result<HashMap<String, EventRecord>, StoreError> {
        let ids: Vec<String> = ids.map(str::to_owned).collect();
        macro_rules! by_id {
            ($select:expr, $pool:expr) => {{
                let mut qb = QueryBuilder::new($select);
                qb.push(" WHERE id IN (");
                let mut list = qb.separated(", ");
                for id in &ids {
                    list.push_bind(id.as_str());
                }
                qb.push(")");
                qb.build_query_as().fetch_all($pool).await?
            }};
        }
        let rows: Vec<super::outbox::EventRow> = match &self.db {
            Db::Postgres(pool) => by_id!(super::outbox::SELECT_PG, pool),
            Db::Sqlite { reader, .. } => by_id!(super::outbox::SELECT_SQLITE, reader),
        };
        let mut out = HashMap::with_capacity(rows.len());
        for r in rows {
            let id = r.2.clone();
            match super::outbox::record(r) {
                Ok(e) => {
                    out.insert(e.id.to_string(), e);
                }
                Err(e) => tracing::error!(event = %id, error = %e, "an event cannot be read"),
            }
        }
        Ok(out)
    }

    /// Records attempts in one transaction: each attempt's row, its delivery's new state (if
    /// the delivery is still leased to the attempt's owner), and its endpoint's failure record
    /// — an endpoint answering 410, or failing everything for five days, is disabled. Answers
    /// the endpoints disabled. Endpoint rows are locked first and in id order, so recorders of
    /// several instances never deadlock on them.
    pub async fn record_attempts(
        &self,
        batch: Vec<AttemptRecord>,
        now: Timestamp,
    ) -> Result<Vec<Disabled>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let health = endpoint_health(&batch);
        write_tx!(self, |conn| {
            let mut disabled = Vec::new();
            for (id, h) in &health {
                let reason = if h.gone {
                    Some("the receiver answered 410 Gone".to_owned())
                } else if let Some(from) = h.failing_from {
                    // A success in this batch ended the earlier failures: the record restarts
                    // at the first failure after it.
                    let sql = if h.succeeded {
                        "UPDATE webhook_endpoints SET failing_since = $1 WHERE id = $2"
                    } else {
                        "UPDATE webhook_endpoints SET failing_since = $1 WHERE id = $2 AND failing_since IS NULL"
                    };
                    sqlx::query(sql)
                        .bind(from.millis())
                        .bind(id.as_str())
                        .execute(&mut *conn)
                        .await?;
                    let since: Option<(Option<i64>,)> =
                        sqlx::query_as("SELECT failing_since FROM webhook_endpoints WHERE id = $1")
                            .bind(id.as_str())
                            .fetch_optional(&mut *conn)
                            .await?;
                    let since = since.and_then(|(s,)| s).and_then(Timestamp::from_millis);
                    failing_too_long(since, now)
                        .then(|| "every delivery failed for 5 days".to_owned())
                } else {
                    sqlx::query(
                        "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL",
                    )
                    .bind(id.as_str())
                    .execute(&mut *conn)
                    .await?;
                    None
                };
                if let Some(reason) = reason {
                    let n = sqlx::query(
                        "UPDATE webhook_endpoints SET status = $1, disabled_reason = $2, updated_at = $3 WHERE id = $4 AND status = 'enabled'",
                    )
                    .bind(<&str>::from(EndpointStatus::Disabled))
                    .bind(reason.as_str())
                    .bind(now.millis())
                    .bind(id.as_str())
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    if n == 1
                        && let Ok(endpoint_id) = WebhookEndpointId::parse(id)
                    {
                        disabled.push(Disabled {
                            endpoint_id,
                            reason,
                        });
                    }
                }
            }
            // Multi-row statements: one round trip per chunk, not two per attempt (the
            // recorder is the one writer of outcomes, so its round trips bound deliveries/s).
            for chunk in batch.chunks(RECORD_CHUNK) {
                let mut qb = QueryBuilder::new(
                    "INSERT INTO webhook_attempts (event_id, endpoint_id, attempt, started_at, latency_ms, status_code, error, response) ",
                );
                qb.push_values(chunk, |mut b, a| {
                    b.push_bind(a.event_id.as_str())
                        .push_bind(a.endpoint_id.as_str())
                        .push_bind(i64::from(a.attempt))
                        .push_bind(a.started_at.millis())
                        .push_bind(i64::try_from(a.latency.as_millis()).unwrap_or(i64::MAX))
                        .push_bind(a.status_code.map(i64::from))
                        .push_bind(a.error.as_deref())
                        .push_bind(a.response.as_deref());
                });
                qb.build().execute(&mut *conn).await?;
                let mut qb = QueryBuilder::new(
                    "WITH v (event_id, endpoint_id, owner, status, attempts, next_at, code, error, delivered) AS (",
                );
                qb.push_values(chunk, |mut b, a| {
                    let (status, next, delivered) = outcome_columns(a.verdict, now);
                    b.push_bind(a.event_id.as_str())
                        .push_bind(a.endpoint_id.as_str())
                        .push_bind(a.owner.as_str())
                        .push_bind(<&str>::from(status))
                        .push_bind(i64::from(a.attempt))
                        .push_bind(next)
                        .push_bind(a.status_code.map(i64::from))
                        .push_bind(a.error.as_deref())
                        .push_bind(delivered);
                });
                qb.push(
                    ") UPDATE webhook_deliveries SET status = v.status, attempts = v.attempts, next_attempt_at = v.next_at, \
                     last_status_code = v.code, last_error = v.error, delivered_at = COALESCE(v.delivered, webhook_deliveries.delivered_at), \
                     lease_owner = NULL, lease_until = NULL, updated_at = ",
                )
                .push_bind(now.millis())
                .push(
                    " FROM v WHERE webhook_deliveries.event_id = v.event_id AND webhook_deliveries.endpoint_id = v.endpoint_id \
                     AND webhook_deliveries.lease_owner = v.owner",
                );
                qb.build().execute(&mut *conn).await?;
            }
            for d in &disabled {
                end_pending!(conn, d.endpoint_id.as_str(), d.reason.as_str(), now)?;
            }
            Ok(disabled)
        })
    }

    /// Gives leases back (a worker stopping before it sent them).
    pub async fn release_deliveries(
        &self,
        owner: &str,
        keys: Vec<(EventId, WebhookEndpointId)>,
    ) -> Result<(), StoreError> {
        let owner = owner.to_owned();
        write_tx!(self, |conn| {
            for (event, endpoint) in &keys {
                sqlx::query(
                    "UPDATE webhook_deliveries SET lease_owner = NULL, lease_until = NULL \
                     WHERE event_id = $1 AND endpoint_id = $2 AND lease_owner = $3",
                )
                .bind(event.as_str())
                .bind(endpoint.as_str())
                .bind(owner.as_str())
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
        })
    }

    /// Sends `event` again to `endpoints`: each delivery starts a new round, due `now`. A lease
    /// held by an attempt in flight is dropped with it: that attempt's outcome is then not
    /// recorded (it might end the new round), and the event may arrive twice — at least once
    /// is the promise, and receivers drop repeats by `webhook-id`.
    pub async fn redeliver(
        &self,
        event: &EventRecord,
        endpoints: Vec<WebhookEndpointId>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (id, created) = (event.id.to_string(), event.created_at.millis());
        write_tx!(self, |conn| {
            for endpoint in &endpoints {
                sqlx::query(
                    "INSERT INTO webhook_deliveries (event_id, endpoint_id, status, attempts, next_attempt_at, \
                     event_created_at, created_at, updated_at) VALUES ($1, $2, 'pending', 0, $3, $4, $3, $3) \
                     ON CONFLICT (event_id, endpoint_id) DO UPDATE SET status = 'pending', attempts = 0, \
                     next_attempt_at = $3, lease_owner = NULL, lease_until = NULL, updated_at = $3",
                )
                .bind(id.as_str())
                .bind(endpoint.as_str())
                .bind(now.millis())
                .bind(created)
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
        })
    }

    /// The deliveries of one event with every attempt.
    pub async fn event_deliveries(
        &self,
        event: &EventId,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE event_id = $1 ORDER BY created_at, endpoint_id"
        );
        let rows: Vec<DeliveryRow> =
            read!(self, pool => sqlx::query_as(&sql).bind(event.as_str()).fetch_all(pool).await)?;
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts WHERE event_id = $1 ORDER BY id LIMIT 1000"
        );
        let attempts: Vec<AttemptRow> =
            read!(self, pool => sqlx::query_as(&sql).bind(event.as_str()).fetch_all(pool).await)?;
        let mut out = rows
            .into_iter()
            .map(delivery)
            .collect::<Result<Vec<_>, _>>()?;
        for d in &mut out {
            d.history = attempts
                .iter()
                .filter(|a| a.endpoint_id == d.endpoint_id)
                .cloned()
                .collect();
        }
        Ok(out)
    }

    /// An endpoint's latest deliveries, newest first.
    pub async fn endpoint_deliveries(
        &self,
        endpoint: &WebhookEndpointId,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY created_at DESC, event_id DESC LIMIT $2"
        );
        let rows: Vec<DeliveryRow> = read!(self, pool => sqlx::query_as(&sql).bind(endpoint.as_str()).bind(limit).fetch_all(pool).await)?;
        rows.into_iter().map(delivery).collect()
    }

    /// How many deliveries are pending (for metrics and the admin).
    pub async fn pending_deliveries(&self) -> Result<u64, StoreError> {
        let (n,): (i64,) = read!(self, pool => sqlx::query_as(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'",
        )
        .fetch_one(pool)
        .await)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(endpoint: &WebhookEndpointId, at: i64, verdict: DeliveryVerdict) -> AttemptRecord {
        AttemptRecord {
            event_id: EventId::generate(),
            endpoint_id: endpoint.clone(),
            attempt: 1,
            started_at: Timestamp::from_millis(at).expect("a time"),
            latency: Duration::ZERO,
            status_code: None,
            error: None,
            response: None,
            verdict,
            owner: "o".into(),
        }
    }

    #[test]
    fn a_success_ends_the_failures_before_it_not_after() {
        let (e, f) = (WebhookEndpointId::generate(), WebhookEndpointId::generate());
        let later = DeliveryVerdict::RetryAt(Timestamp::from_millis(9_000).expect("a time"));
        let h = endpoint_health(&[
            attempt(&e, 1_000, later),
            attempt(&e, 2_000, DeliveryVerdict::Delivered),
            attempt(&e, 3_000, DeliveryVerdict::GiveUp),
            attempt(&e, 4_000, later),
            attempt(&f, 5_000, DeliveryVerdict::Delivered),
        ]);
        let he = h[e.as_str()];
        assert!(he.succeeded && !he.gone);
        assert_eq!(he.failing_from, Timestamp::from_millis(3_000));
        assert_eq!(h[f.as_str()].failing_from, None);
        // Locked in id order.
        let keys: Vec<&String> = h.keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }
}
