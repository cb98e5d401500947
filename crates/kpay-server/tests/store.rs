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
