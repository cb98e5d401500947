//! The webhook delivery worker of one instance, in three tasks that never run inside a
//! payment's request:
//!
//! * **fan-out** follows the events outbox with one shared cursor and adds a delivery for every
//!   endpoint that wants each event (one instance at a time: the cursor row is locked); as many
//!   as this worker has room for are created already leased to it and handed over in memory,
//!   with their events (no second write to lease them, no second read);
//! * **dispatch** sends those, and leases due deliveries (retries, other instances' leftovers) (on PostgreSQL `FOR UPDATE SKIP LOCKED`: each goes to
//!   one instance) for [`LEASE`], signs each with the endpoint's secrets (two while a rotated one
//!   still signs) and sends it ([`sender`]), at most [`IN_FLIGHT`] at once and
//!   [`PER_ENDPOINT`] to one endpoint, so a receiver that hangs holds up only its own;
//! * **record** writes the attempts as they end, many per transaction, with what
//!   [`crate::domain::judge_attempt`] decided: delivered, retry at…, given up, or endpoint gone.
//!
//! A crash mid-delivery leaves the lease to run out: the delivery is sent again, with the
//! same `webhook-id`, at most [`LEASE`] after the server runs again. Delivery is at least
//! once; receivers drop repeats by `webhook-id`.

mod sender;

pub(crate) use sender::ATTEMPT_TIMEOUT;

use super::Services;
use super::resolve::lease_token;
use crate::domain::{
    DeliveryVerdict, EventSelection, RetrySchedule, Timestamp, WebhookEndpoint, judge_attempt,
};
use crate::store::{AttemptRecord, DueDelivery, HandOff};
use kpay_webhooks::Secret;
use sender::Sender;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// How long a leased delivery is this instance's: the attempt's 15 s and room to record it.
pub(crate) const LEASE: Duration = Duration::from_secs(25);
/// How often an idle worker looks for new events and due deliveries (other instances' events
/// and retries; this instance's fan-out wakes its dispatch at once).
const POLL: Duration = Duration::from_millis(100);
/// Events per fan-out step.
const FAN_OUT_BATCH: i64 = 500;
/// Deliveries leased at once.
const LEASE_BATCH: usize = 200;
/// Deliveries in flight per instance.
pub(crate) const IN_FLIGHT: usize = 256;
/// Deliveries in flight to one endpoint.
const PER_ENDPOINT: usize = 64;
/// Attempts recorded per transaction at most.
const RECORD_BATCH: usize = 500;
/// Deliveries one fan-out step hands over leased at most.
const HAND_OFF_MAX: usize = 200;
/// How long the dispatcher lets attempts end before leasing for an endpoint at its share.
const GATHER: Duration = Duration::from_millis(5);
/// Free permits the dispatcher waits for before leasing again while attempts are in flight.
const LEASE_WHEN_FREE: usize = IN_FLIGHT / 4;

/// Splits a leased batch into what each endpoint may still take (up to [`PER_ENDPOINT`] in
/// flight, counting `in_flight`) and the rest.
fn within_share(
    due: Vec<DueDelivery>,
    in_flight: &HashMap<String, usize>,
) -> (Vec<DueDelivery>, Vec<DueDelivery>) {
    let mut taken: HashMap<String, usize> = HashMap::new();
    due.into_iter().partition(|d| {
        let n = taken
            .entry(d.endpoint_id.to_string())
            .or_insert_with(|| in_flight.get(d.endpoint_id.as_str()).copied().unwrap_or(0));
        *n += 1;
        *n <= PER_ENDPOINT
    })
}

/// A batch to send and what sending it needs.
struct SendBatch<'a> {
    owner: String,
    due: Vec<DueDelivery>,
    tx: &'a mpsc::Sender<AttemptRecord>,
    permits: &'a Arc<Semaphore>,
    per_endpoint: &'a Arc<Mutex<HashMap<String, usize>>>,
    slot_freed: &'a Arc<tokio::sync::Notify>,
    secrets: &'a mut HashMap<String, Secret>,
    broken: &'a mut Vec<String>,
}

/// An endpoint as the dispatcher signs for it.
struct Target {
    url: String,
    events: EventSelection,
    /// The secrets, or why they cannot be opened (nothing is sent unsigned: such attempts
    /// fail, visibly, and follow the schedule).
    secrets: Result<Vec<Secret>, String>,
}

/// The delivery worker.
#[derive(Clone, Debug)]
pub(crate) struct DeliveryWorker {
    services: Services,
    sender: Sender,
    schedule: RetrySchedule,
}

impl DeliveryWorker {
    /// A worker for `services`.
    pub(crate) fn new(services: Services) -> Result<Self, String> {
        let sender = Sender::new(services.settings.webhooks_local)
            .map_err(|e| format!("the webhook sender: {e}"))?;
        Ok(Self {
            schedule: services.settings.webhook_retry_schedule.clone(),
            services,
            sender,
        })
    }

    /// Runs until `stop`; then sends nothing new, lets the attempts in flight end (each within
    /// its 15 s) and records them.
    pub(crate) async fn run(self, stop: CancellationToken) {
        let permits = Arc::new(Semaphore::new(IN_FLIGHT));
        let handed = Arc::new(AtomicUsize::new(0));
        let (hand_tx, hand_rx) = mpsc::channel(16);
        let fan_out = tokio::spawn(self.clone().fan_out(
            stop.clone(),
            Arc::clone(&permits),
            Arc::clone(&handed),
            hand_tx,
        ));
        let (tx, rx) = mpsc::channel(IN_FLIGHT * 2);
        let recorder = tokio::spawn(self.clone().record(rx));
        self.dispatch(stop, tx, permits, handed, hand_rx).await;
        let _ = fan_out.await;
        let _ = recorder.await;
    }

    /// Follows the outbox. New deliveries are created leased to this worker as far as it has
    /// room (no second write to lease them, no read of their events again) and handed over.
    async fn fan_out(
        self,
        stop: CancellationToken,
        permits: Arc<Semaphore>,
        handed: Arc<AtomicUsize>,
        hand_tx: mpsc::Sender<(String, Vec<DueDelivery>)>,
    ) {
        let store = &self.services.store;
        loop {
            let now = self.services.now();
            let room = permits
                .available_permits()
                .saturating_sub(handed.load(Ordering::Acquire))
                .min(HAND_OFF_MAX);
            let hand_off = (room > 0).then(|| HandOff {
                owner: lease_token(&self.services.settings.instance),
                until: now.plus(LEASE),
                room,
            });
            let owner = hand_off.as_ref().map(|h| h.owner.clone());
            let wait = match store.fan_out(now, FAN_OUT_BATCH, hand_off).await {
                Ok(f) => {
                    if !f.leased.is_empty()
                        && let Some(owner) = owner
                    {
                        handed.fetch_add(f.leased.len(), Ordering::AcqRel);
                        let n = f.leased.len();
                        if hand_tx.send((owner, f.leased)).await.is_err() {
                            // The dispatcher stopped: the leases run out.
                            handed.fetch_sub(n, Ordering::AcqRel);
                        }
                    }
                    if f.deliveries > 0 {
                        self.services.deliveries_due.notify_one();
                    }
                    if f.events as i64 == FAN_OUT_BATCH {
                        Duration::ZERO
                    } else {
                        POLL
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "webhook fan-out failed; trying again in a second");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn dispatch(
        &self,
        stop: CancellationToken,
        tx: mpsc::Sender<AttemptRecord>,
        permits: Arc<Semaphore>,
        handed: Arc<AtomicUsize>,
        mut hand_rx: mpsc::Receiver<(String, Vec<DueDelivery>)>,
    ) {
        let per_endpoint: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        // An attempt ended (its endpoint has room again).
        let slot_freed = Arc::new(tokio::sync::Notify::new());
        let mut secrets: HashMap<String, Secret> = HashMap::new();
        // Endpoints whose rows cannot be read: their deliveries are not leased (they would
        // take every batch and be sent never); they wait, said in the log, for a repair.
        let mut broken: Vec<String> = Vec::new();
        let store = &self.services.store;
        while !stop.is_cancelled() {
            // Handed over by the fan-out first: fresh events, already leased.
            let (owner, due) = if let Ok((owner, due)) = hand_rx.try_recv() {
                handed.fetch_sub(due.len(), Ordering::AcqRel);
                (owner, due)
            } else {
                // Lease in batches, not one row per freed permit: wait for a quarter of the
                // permits while attempts are in flight.
                if permits.available_permits() < LEASE_WHEN_FREE {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        p = permits.acquire_many(u32::try_from(LEASE_WHEN_FREE).unwrap_or(1)) => drop(p),
                    }
                }
                let free = permits.available_permits();
                let skip = self.skip_list(&per_endpoint, &broken);
                let owner = lease_token(&self.services.settings.instance);
                let limit = i64::try_from(free.min(LEASE_BATCH)).unwrap_or(1);
                let due = match store
                    .lease_deliveries(&owner, self.services.now(), LEASE, limit, &skip)
                    .await
                {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not lease webhook deliveries; trying again in a second");
                        tokio::select! {
                            () = stop.cancelled() => break,
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                        continue;
                    }
                };
                if due.is_empty() {
                    let at_share = skip.len() > broken.len();
                    tokio::select! {
                        () = stop.cancelled() => break,
                        h = hand_rx.recv() => {
                            if let Some((owner, due)) = h {
                                handed.fetch_sub(due.len(), Ordering::AcqRel);
                                // Back to the top with it: try_recv sees nothing, so send it now.
                                self.send_batch(SendBatch { owner, due, tx: &tx, permits: &permits,
                                    per_endpoint: &per_endpoint, slot_freed: &slot_freed,
                                    secrets: &mut secrets, broken: &mut broken }).await;
                            }
                        }
                        // Endpoints at their share may have more due: lease again as soon as
                        // their attempts end, a few milliseconds later so that many end per lease.
                        () = slot_freed.notified(), if at_share => tokio::time::sleep(GATHER).await,
                        () = self.services.deliveries_due.notified(), if !at_share => {}
                        () = tokio::time::sleep(POLL) => {}
                    }
                    continue;
                }
                (owner, due)
            };
            self.send_batch(SendBatch {
                owner,
                due,
                tx: &tx,
                permits: &permits,
                per_endpoint: &per_endpoint,
                slot_freed: &slot_freed,
                secrets: &mut secrets,
                broken: &mut broken,
            })
            .await;
        }
        // Wait for the attempts in flight (each ends within its timeout).
        let all = u32::try_from(IN_FLIGHT).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(
            ATTEMPT_TIMEOUT + Duration::from_secs(1),
            permits.acquire_many(all),
        )
        .await;
    }

    /// The endpoints not to lease for: at their share, or unreadable.
    fn skip_list(
        &self,
        per_endpoint: &Mutex<HashMap<String, usize>>,
        broken: &[String],
    ) -> Vec<String> {
        per_endpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, n)| **n >= PER_ENDPOINT)
            .map(|(e, _)| e.clone())
            .chain(broken.iter().cloned())
            .collect()
    }

    /// Sends a leased batch: within each endpoint's share (the rest is given back), to
    /// endpoints that can be read, each attempt in its own task.
    async fn send_batch(&self, b: SendBatch<'_>) {
        let counts: HashMap<String, usize> = b
            .per_endpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let (due, over) = within_share(b.due, &counts);
        let targets = match self.targets(b.secrets, b.broken, self.services.now()).await {
            Ok(t) => Arc::new(t),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the webhook endpoints; trying again in a second");
                self.give_back(&b.owner, due.iter().chain(&over)).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                return;
            }
        };
        // Removed since the lease (the lease query skips removed endpoints from now on), or
        // unreadable (skipped from now on too): their leases run out.
        let due: Vec<_> = due
            .into_iter()
            .filter(|d| targets.contains_key(d.endpoint_id.as_str()))
            .collect();
        self.give_back(&b.owner, over.iter()).await;
        for d in due {
            let Ok(permit) = Arc::clone(b.permits).acquire_owned().await else {
                break;
            };
            let endpoint = d.endpoint_id.to_string();
            *b.per_endpoint
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(endpoint.clone())
                .or_default() += 1;
            let (this, tx, targets, counts, owner, freed) = (
                self.clone(),
                b.tx.clone(),
                Arc::clone(&targets),
                Arc::clone(b.per_endpoint),
                b.owner.clone(),
                Arc::clone(b.slot_freed),
            );
            tokio::spawn(async move {
                if let Some(record) = this.attempt(d, &targets, owner).await {
                    // The recorder outlives every sender (it ends when they are all gone).
                    let _ = tx.send(record).await;
                }
                let mut counts = counts.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(n) = counts.get_mut(&endpoint) {
                    *n -= 1;
                    if *n == 0 {
                        counts.remove(&endpoint);
                    }
                }
                drop(counts);
                drop(permit);
                freed.notify_one();
            });
        }
    }

    /// Gives leases back at once (they are due again for whoever leases next).
    async fn give_back<'a>(&self, owner: &str, list: impl Iterator<Item = &'a DueDelivery>) {
        let keys: Vec<_> = list
            .map(|d| (d.event.id.clone(), d.endpoint_id.clone()))
            .collect();
        if keys.is_empty() {
            return;
        }
        if let Err(e) = self.services.store.release_deliveries(owner, keys).await {
            tracing::warn!(error = %e, "could not give webhook leases back; they run out by themselves");
        }
    }

    /// The endpoints with their open secrets (kept open across rounds: opening is cheap but
    /// not free, and a rotation changes the sealed text, so the cache key changes with it).
    async fn targets(
        &self,
        cache: &mut HashMap<String, Secret>,
        broken: &mut Vec<String>,
        now: Timestamp,
    ) -> Result<HashMap<String, Target>, super::ServiceError> {
        let (endpoints, unreadable) = self.services.store.endpoints_checked().await?;
        *broken = unreadable;
        // Only the secrets still in use stay open.
        let in_use: std::collections::HashSet<&str> = endpoints
            .iter()
            .flat_map(|e| {
                std::iter::once(e.secret_sealed.as_str())
                    .chain(e.previous_secret.as_ref().map(|(s, _)| s.as_str()))
            })
            .collect();
        cache.retain(|sealed, _| in_use.contains(sealed.as_str()));
        let mut out = HashMap::with_capacity(endpoints.len());
        for e in &endpoints {
            let secrets = self.open_secrets(cache, e, now);
            if let Err(why) = &secrets {
                tracing::error!(endpoint = %e.id, error = %why, "cannot open the endpoint's signing secret (is KPAY_ENCRYPTION_KEY the one it was sealed with?); nothing is sent to it unsigned");
            }
            out.insert(
                e.id.to_string(),
                Target {
                    url: e.url.as_str().to_owned(),
                    events: e.events.clone(),
                    secrets,
                },
            );
        }
        Ok(out)
    }

    fn open_secrets(
        &self,
        cache: &mut HashMap<String, Secret>,
        e: &WebhookEndpoint,
        now: Timestamp,
    ) -> Result<Vec<Secret>, String> {
        let mut sealed = vec![e.secret_sealed.as_str()];
        if let Some((previous, until)) = &e.previous_secret
            && now < *until
        {
            sealed.push(previous.as_str());
        }
        let mut out = Vec::with_capacity(sealed.len());
        for s in sealed {
            if let Some(secret) = cache.get(s) {
                out.push(secret.clone());
                continue;
            }
            let text = self
                .services
                .settings
                .vault
                .open(e.id.as_str(), s)
                .map_err(|e| e.to_string())?;
            let secret = Secret::parse(&text).map_err(|e| e.to_string())?;
            cache.insert(s.to_owned(), secret.clone());
            out.push(secret);
        }
        Ok(out)
    }

    /// Sends one delivery and judges the answer; `None` if its endpoint no longer wants the
    /// event (the lease runs out).
    async fn attempt(
        &self,
        d: DueDelivery,
        targets: &HashMap<String, Target>,
        owner: String,
    ) -> Option<AttemptRecord> {
        let target = targets.get(d.endpoint_id.as_str())?;
        if !target.events.wants(d.event.kind) {
            return None;
        }
        let started_at = self.services.now();
        let sent = match &target.secrets {
            Ok(secrets) => {
                let body = d.event.to_json();
                // Receivers check the timestamp against their own clock: it is the machine's,
                // never a test clock's.
                let timestamp = chrono::Utc::now().timestamp();
                let secrets: Vec<&Secret> = secrets.iter().collect();
                let signature = kpay_webhooks::signature_header(
                    &secrets,
                    d.event.id.as_str(),
                    timestamp,
                    body.as_bytes(),
                );
                self.sender
                    .send(
                        &target.url,
                        d.event.id.as_str(),
                        timestamp,
                        &signature,
                        body,
                    )
                    .await
            }
            Err(why) => sender::Sent {
                answer: crate::domain::Answer::NoAnswer,
                latency: Duration::ZERO,
                error: Some(format!(
                    "not sent: the signing secret cannot be opened ({why})"
                )),
                response: None,
            },
        };
        let verdict = judge_attempt(
            sent.answer,
            d.attempt,
            &self.schedule,
            self.services.now(),
            rand::random::<f64>(),
        );
        if verdict != DeliveryVerdict::Delivered {
            tracing::info!(event = %d.event.id, endpoint = %d.endpoint_id, attempt = d.attempt,
                error = sent.error.as_deref().unwrap_or("-"), ?verdict, "webhook delivery failed");
        }
        let status_code = match sent.answer {
            crate::domain::Answer::Status { code, .. } => Some(code),
            crate::domain::Answer::NoAnswer => None,
        };
        Some(AttemptRecord {
            event_id: d.event.id,
            endpoint_id: d.endpoint_id,
            attempt: d.attempt,
            started_at,
            latency: sent.latency,
            status_code,
            error: sent.error,
            response: sent.response,
            verdict,
            owner,
        })
    }

    async fn record(self, mut rx: mpsc::Receiver<AttemptRecord>) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < RECORD_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            let n = batch.len();
            // A failed commit (a deadlock between instances, a dropped connection) is tried
            // again: dropping it would send those deliveries again and lose their history.
            let mut tries = 0;
            loop {
                tries += 1;
                match self
                    .services
                    .store
                    .record_attempts(batch.clone(), self.services.now())
                    .await
                {
                    Ok(disabled) => {
                        for d in disabled {
                            tracing::warn!(endpoint = %d.endpoint_id, reason = %d.reason, "webhook endpoint disabled");
                        }
                        break;
                    }
                    Err(e) if tries < 3 => {
                        tracing::warn!(error = %e, attempts = n, "could not record webhook attempts; trying again");
                        tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, attempts = n, "could not record webhook attempts; those deliveries are sent again when their leases end");
                        break;
                    }
                }
            }
        }
    }
}
