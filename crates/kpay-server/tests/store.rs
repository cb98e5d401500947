//! The store alone, on both databases: leases hand each due payment to exactly one worker, and
//! conditional transitions let exactly one of many concurrent actors win.

mod common;
use common::*;
use kpay_server::domain::PaymentStatus;
use kpay_server::store::{Changes, NewEvent, PaymentRecord, Store};
use std::collections::HashSet;

fn record(i: usize, now: i64) -> PaymentRecord {
    PaymentRecord {
        id: format!("pay_lease_{i:04}"),
        status: "ready".into(),
        cid: "TC0ONETIME".into(),
        tid: format!("T{i:019}"),
        aid: None,
        partner_order_id: format!("o{i}"),
        partner_user_id: "u".into(),
        item_name: "i".into(),
        item_code: None,
        quantity: 1,
        amount_total: 1000,
        amount_tax_free: 0,
        amount_vat: 91,
        amount_green_deposit: 0,
        canceled_total: 0,
        canceled_tax_free: 0,
        canceled_vat: 0,
        canceled_green_deposit: 0,
        payment_method_type: None,
        card_info: None,
        channel: "pc".into(),
        redirect_url: "http://x/info".into(),
        redirect_pc_url: None,
        redirect_mobile_url: None,
        redirect_app_url: None,
        return_url: None,
        pg_token: None,
        failure_code: None,
        failure_message: None,
        refund_in_flight: None,
        created_at: now,
        updated_at: now,
        expires_at: now,
        approve_started_at: None,
        approved_at: None,
        canceled_at: None,
        next_check_at: Some(now - 1000),
        idempotency_key: None,
        check_attempts: 0,
        resend_count: 0,
    }
}

async fn leases_are_exclusive(backend: Backend, _g: kakaopay::Generation) {
    let scratch = Scratch::new(backend).await;
    let store = Store::connect(&scratch.url).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    for i in 0..120 {
        store
            .insert_payment(&record(i, now), &NewEvent::cause("created"))
            .await
            .unwrap();
    }
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = store
                        .lease_due(&format!("worker-{w}"), now, 60_000, 7)
                        .await
                        .unwrap();
                    if batch.is_empty() {
                        break;
                    }
                    mine.extend(batch.into_iter().map(|p| p.id));
                }
                mine
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut total = 0;
    for w in workers {
        for id in w.await.unwrap() {
            total += 1;
            assert!(seen.insert(id.clone()), "{id} leased twice");
        }
    }
    assert_eq!(total, 120);
    // Leased rows are not due again until released or expired.
    assert!(
        store
            .lease_due("late", now, 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .release("pay_lease_0001", "someone-else")
        .await
        .unwrap();
    assert!(
        store
            .lease_due("late", now, 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .lease_due("late", now + 61_000, 60_000, 200)
            .await
            .unwrap()
            .len(),
        120
    );
    store.close().await;
}
both_backends!(leases_are_exclusive);

async fn one_of_many_transitions_wins(backend: Backend, _g: kakaopay::Generation) {
    let scratch = Scratch::new(backend).await;
    let store = Store::connect(&scratch.url).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    store
        .insert_payment(&record(1, now), &NewEvent::cause("created"))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .transition(
                        "pay_lease_0001",
                        PaymentStatus::Ready,
                        PaymentStatus::Approving,
                        &Changes::default(),
                        &NewEvent::cause("approve_claimed"),
                        now,
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
    assert_eq!(
        store.events("pay_lease_0001").await.unwrap().len(),
        2,
        "one creation, one claim"
    );
    store.close().await;
}
both_backends!(one_of_many_transitions_wins);

/// Notes are written only while the payment still is in the status they describe (a late answer
/// about an older state leaves no misleading line), and the same note again right after itself
/// becomes a count.
async fn notes_are_conditional_and_coalesced(backend: Backend, _g: kakaopay::Generation) {
    let scratch = Scratch::new(backend).await;
    let store = Store::connect(&scratch.url).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let id = "pay_lease_0002";
    store
        .insert_payment(&record(2, now), &NewEvent::cause("created"))
        .await
        .unwrap();
    let unclear = NewEvent::cause("approve_unclear").code(Some(-780));
    for i in 0..5 {
        store
            .note(id, PaymentStatus::Ready, &unclear, now + i)
            .await
            .unwrap();
    }
    let events = store.events(id).await.unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!((events[1].repeats, events[1].last_at), (5, Some(now + 4)));
    // Another code is another line.
    store
        .note(
            id,
            PaymentStatus::Ready,
            &NewEvent::cause("approve_unclear").code(Some(-500)),
            now,
        )
        .await
        .unwrap();
    assert_eq!(store.events(id).await.unwrap().len(), 3);
    // About a status the payment has left: nothing.
    store
        .note(id, PaymentStatus::Approving, &unclear, now)
        .await
        .unwrap();
    assert_eq!(store.events(id).await.unwrap().len(), 3);
    store.close().await;
}
both_backends!(notes_are_conditional_and_coalesced);

/// An idempotency key: one holder at a time; a holder that stops renewing its lock is taken over;
/// a stored pending (202) answer is handed to the next request to refresh; a 5xx frees the key.
async fn idempotency_locks_are_taken_over_only_when_dead(
    backend: Backend,
    _g: kakaopay::Generation,
) {
    use kpay_server::store::IdemBegin;
    let scratch = Scratch::new(backend).await;
    let store = Store::connect(&scratch.url).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let begin = |token: &'static str, at: i64| {
        let store = store.clone();
        async move {
            store
                .idem_begin("k1", "h1", token, at, 10_000)
                .await
                .unwrap()
        }
    };
    assert_eq!(begin("a", now).await, IdemBegin::Started { fresh: true });
    assert_eq!(begin("b", now + 1).await, IdemBegin::InFlight);
    assert_eq!(
        store
            .idem_begin("k1", "other", "b", now, 10_000)
            .await
            .unwrap(),
        IdemBegin::Mismatch
    );
    // The holder renews: still in flight after the first lock would have run out.
    assert!(store.idem_renew("k1", "a", now + 20_000).await.unwrap());
    assert_eq!(begin("b", now + 15_000).await, IdemBegin::InFlight);
    // It stops renewing (it died): taken over, not fresh.
    assert_eq!(
        begin("b", now + 21_000).await,
        IdemBegin::Started { fresh: false }
    );
    assert!(
        !store.idem_renew("k1", "a", now + 40_000).await.unwrap(),
        "a lost it"
    );
    // A pending answer is refreshed by the next request, a final one replayed.
    store.idem_finish("k1", "b", 202, "{}").await.unwrap();
    assert_eq!(
        begin("c", now + 22_000).await,
        IdemBegin::Started { fresh: false }
    );
    store
        .idem_finish("k1", "c", 200, "{\"ok\":1}")
        .await
        .unwrap();
    assert_eq!(
        begin("d", now + 23_000).await,
        IdemBegin::Done {
            status: 200,
            body: "{\"ok\":1}".into()
        }
    );
    // A 5xx frees the key.
    assert_eq!(
        store.idem_begin("k2", "h", "e", now, 10_000).await.unwrap(),
        IdemBegin::Started { fresh: true }
    );
    store.idem_release("k2", "e").await.unwrap();
    assert_eq!(
        store.idem_begin("k2", "h", "f", now, 10_000).await.unwrap(),
        IdemBegin::Started { fresh: true }
    );
    store.close().await;
}
both_backends!(idempotency_locks_are_taken_over_only_when_dead);

/// The callback budget: at most `max` per window, then refused until the window has passed. The
/// re-send claim: one winner among many, at most `max` re-sends.
async fn budgets_and_resend_claims(backend: Backend, _g: kakaopay::Generation) {
    let scratch = Scratch::new(backend).await;
    let store = Store::connect(&scratch.url).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let id = "pay_lease_0003";
    store
        .insert_payment(&record(3, now), &NewEvent::cause("created"))
        .await
        .unwrap();
    let mut taken = 0;
    for i in 0..12 {
        taken += usize::from(
            store
                .take_callback_budget(id, now + i, 60_000, 5)
                .await
                .unwrap(),
        );
    }
    assert_eq!(taken, 5);
    assert!(
        store
            .take_callback_budget(id, now + 61_000, 60_000, 5)
            .await
            .unwrap()
    );
    store
        .transition(
            id,
            PaymentStatus::Ready,
            PaymentStatus::Approving,
            &Changes {
                approve_started_at: Some(now),
                ..Changes::default()
            },
            &NewEvent::cause("approve_claimed"),
            now,
        )
        .await
        .unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_resend(id, now, now + 5, 2).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1, "one re-sender per approve");
    assert!(store.claim_resend(id, now + 5, now + 9, 2).await.unwrap());
    assert!(
        !store.claim_resend(id, now + 9, now + 12, 2).await.unwrap(),
        "at most 2"
    );
    store.close().await;
}
both_backends!(budgets_and_resend_claims);
