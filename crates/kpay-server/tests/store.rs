//! The store alone, on both databases: leases hand each due payment to exactly one worker,
//! conditional transitions let exactly one of many concurrent actors win, the state machine is
//! asked for every status written, and a broken row is an error naming it, never a guess.

mod common;
use common::*;
use kakaopay::{Amount, Cid, ItemName, PartnerOrderId, PartnerUserId, Quantity, Tid};
use kpay_server::domain::{
    Amounts, Cause, Channel, Detail, Event, Payment, PaymentChange, PaymentId, PaymentStatus,
    Redirects, Timestamp,
};
use kpay_server::store::{Store, StoreError};
use std::collections::HashSet;
use std::time::Duration;

fn record(i: usize, now: Timestamp) -> Payment {
    let mut p = Payment::ready(
        PaymentId::generate(),
        Cid::parse("TC0ONETIME").unwrap(),
        Tid::parse(format!("T{i:019}")).unwrap(),
        (
            PartnerOrderId::parse(format!("o{i}")).unwrap(),
            PartnerUserId::parse("u").unwrap(),
        ),
        (
            ItemName::parse("i").unwrap(),
            None,
            Quantity::new(1).unwrap(),
        ),
        Amounts::for_order(Amount::new(1000).unwrap(), Amount::ZERO, None).unwrap(),
        Channel::Pc,
        Redirects {
            url: "http://x/info".into(),
            pc: None,
            mobile: None,
            app: None,
        },
        None,
        None,
        now,
        Duration::ZERO,
    );
    p.next_check_at = Some(now.minus(Duration::from_secs(1)));
    p
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn leases_are_exclusive(backend: Backend, _g: kakaopay::Generation) {
    let scratch = Scratch::new(backend).await;
    let store = Store::connect(&scratch.url).await.unwrap();
    let now = Timestamp::now();
    let mut ids = Vec::new();
    for i in 0..120 {
        let p = record(i, now);
        ids.push(p.id.clone());
        store.insert_payment(&p, Detail::none()).await.unwrap();
    }
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = store
                        .lease_due(&format!("worker-{w}"), now, ms(60_000), 7)
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
            .lease_due("late", now, ms(60_000), 10)
            .await
            .unwrap()
            .is_empty()
    );
    store.release(&ids[1], "someone-else").await.unwrap();
    assert!(
        store
            .lease_due("late", now, ms(60_000), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .lease_due("late", now.plus(ms(61_000)), ms(60_000), 200)
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
    let now = Timestamp::now();
    let p = record(1, now);
    let id = p.id.clone();
    store.insert_payment(&p, Detail::none()).await.unwrap();
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let store = store.clone();
            let p = p.clone();
            tokio::spawn(async move {
                store
                    .transition(
                        &p,
                        PaymentStatus::Ready,
                        Event::ApproveClaimed,
                        &PaymentChange::default(),
                        Detail::none(),
                        now,
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        if let Some(to) = t.await.unwrap() {
            assert_eq!(to, PaymentStatus::Approving, "the machine's answer");
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
    let events = store.events(&id).await.unwrap();
    assert_eq!(events.len(), 2, "one creation, one claim");
    assert_eq!(events[1].cause, Cause::ApproveClaimed);
    assert_eq!(
        (events[1].from, events[1].to),
        (Some(PaymentStatus::Ready), PaymentStatus::Approving)
    );
    // An event the machine refuses writes nothing.
    let refused = store
        .transition(
            &p,
            PaymentStatus::Approving,
            Event::FullyRefunded,
            &PaymentChange::default(),
            Detail::none(),
            now,
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Transition(_))),
        "{refused:?}"
    );
    assert_eq!(store.events(&id).await.unwrap().len(), 2);
    assert_eq!(
        store.payment(&id).await.unwrap().unwrap().status,
        PaymentStatus::Approving
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
    let now = Timestamp::now();
    let p = record(2, now);
    let id = &p.id;
    store.insert_payment(&p, Detail::none()).await.unwrap();
    let unclear = || Detail::none().code(Some(-780));
    for i in 0..5 {
        store
            .note(
                id,
                PaymentStatus::Ready,
                Cause::ApproveUnclear,
                unclear(),
                now.plus(ms(i)),
            )
            .await
            .unwrap();
    }
    let events = store.events(id).await.unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        (events[1].repeats, events[1].last_at),
        (5, Some(now.plus(ms(4))))
    );
    // Another code is another line.
    store
        .note(
            id,
            PaymentStatus::Ready,
            Cause::ApproveUnclear,
            Detail::none().code(Some(-500)),
            now,
        )
        .await
        .unwrap();
    assert_eq!(store.events(id).await.unwrap().len(), 3);
    // About a status the payment has left: nothing.
    store
        .note(
            id,
            PaymentStatus::Approving,
            Cause::ApproveUnclear,
            unclear(),
            now,
        )
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
    let now = Timestamp::now();
    let at = |n: u64| now.plus(ms(n));
    let begin = |token: &'static str, at: Timestamp| {
        let store = store.clone();
        async move {
            store
                .idem_begin("k1", "h1", token, at, ms(10_000))
                .await
                .unwrap()
        }
    };
    assert_eq!(begin("a", now).await, IdemBegin::Started { fresh: true });
    assert_eq!(begin("b", at(1)).await, IdemBegin::InFlight);
    assert_eq!(
        store
            .idem_begin("k1", "other", "b", now, ms(10_000))
            .await
            .unwrap(),
        IdemBegin::Mismatch
    );
    // The holder renews: still in flight after the first lock would have run out.
    assert!(store.idem_renew("k1", "a", at(20_000)).await.unwrap());
    assert_eq!(begin("b", at(15_000)).await, IdemBegin::InFlight);
    // It stops renewing (it died): taken over, not fresh.
    assert_eq!(
        begin("b", at(21_000)).await,
        IdemBegin::Started { fresh: false }
    );
    assert!(
        !store.idem_renew("k1", "a", at(40_000)).await.unwrap(),
        "a lost it"
    );
    // A pending answer is refreshed by the next request, a final one replayed.
    store.idem_finish("k1", "b", 202, "{}").await.unwrap();
    assert_eq!(
        begin("c", at(22_000)).await,
        IdemBegin::Started { fresh: false }
    );
    store
        .idem_finish("k1", "c", 200, "{\"ok\":1}")
        .await
        .unwrap();
    assert_eq!(
        begin("d", at(23_000)).await,
        IdemBegin::Done {
            status: 200,
            body: "{\"ok\":1}".into()
        }
    );
    // A 5xx frees the key.
    assert_eq!(
        store
            .idem_begin("k2", "h", "e", now, ms(10_000))
            .await
            .unwrap(),
        IdemBegin::Started { fresh: true }
    );
    store.idem_release("k2", "e").await.unwrap();
    assert_eq!(
        store
            .idem_begin("k2", "h", "f", now, ms(10_000))
            .await
            .unwrap(),
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
    let now = Timestamp::now();
    let at = move |n: u64| now.plus(ms(n));
    let p = record(3, now);
    let id = p.id.clone();
    store.insert_payment(&p, Detail::none()).await.unwrap();
    let mut taken = 0;
    for i in 0..12 {
        taken += usize::from(
            store
                .take_callback_budget(&id, at(i), ms(60_000), 5)
                .await
                .unwrap(),
        );
    }
    assert_eq!(taken, 5);
    assert!(
        store
            .take_callback_budget(&id, at(61_000), ms(60_000), 5)
            .await
            .unwrap()
    );
    store
        .transition(
            &p,
            PaymentStatus::Ready,
            Event::ApproveClaimed,
            &PaymentChange {
                approve_started_at: Some(now),
                ..PaymentChange::default()
            },
            Detail::none(),
            now,
        )
        .await
        .unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            let id = id.clone();
            tokio::spawn(async move { store.claim_resend(&id, now, at(5), 2).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1, "one re-sender per approve");
    assert!(store.claim_resend(&id, at(5), at(9), 2).await.unwrap());
    assert!(
        !store.claim_resend(&id, at(9), at(12), 2).await.unwrap(),
        "at most 2"
    );
    store.close().await;
}
both_backends!(budgets_and_resend_claims);

/// A row the domain cannot read is an error that names the table, the row and the column: never
/// 0 won, never `failed`.
async fn broken_rows_are_refused_by_name(backend: Backend, _g: kakaopay::Generation) {
    let scratch = Scratch::new(backend).await;
    let store = Store::connect(&scratch.url).await.unwrap();
    let now = Timestamp::now();
    let (a, b) = (record(4, now), record(5, now));
    store.insert_payment(&a, Detail::none()).await.unwrap();
    store.insert_payment(&b, Detail::none()).await.unwrap();
    scratch
        .execute(&format!(
            "UPDATE payments SET tid = 'not a TID!' WHERE id = '{}'",
            a.id
        ))
        .await;
    scratch
        .execute(&format!(
            "UPDATE payments SET status = 'paid_maybe' WHERE id = '{}'",
            b.id
        ))
        .await;
    match store.payment(&a.id).await {
        Err(StoreError::Corrupt { table, id, field }) => {
            assert_eq!(
                (table, id.as_str(), field),
                ("payments", a.id.as_str(), "tid")
            );
        }
        other => panic!("a broken TID was read as {other:?}"),
    }
    let err = store.payment(&b.id).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("corrupt payments row {}: invalid status", b.id)
    );
    assert!(matches!(
        store.status_counts().await,
        Err(StoreError::Corrupt {
            field: "status",
            ..
        })
    ));
    store.close().await;
}
both_backends!(broken_rows_are_refused_by_name);

/// A due payment whose row cannot be read does not stop the reconciler: the others are leased,
/// the broken one is given back and set aside (due again in an hour), loudly logged.
async fn a_broken_due_row_is_set_aside(backend: Backend, _g: kakaopay::Generation) {
    let scratch = Scratch::new(backend).await;
    let store = Store::connect(&scratch.url).await.unwrap();
    let now = Timestamp::now();
    let ps: Vec<_> = (10..14).map(|i| record(i, now)).collect();
    for p in &ps {
        store.insert_payment(p, Detail::none()).await.unwrap();
    }
    scratch
        .execute(&format!(
            "UPDATE payments SET channel = 'fax' WHERE id = '{}'",
            ps[1].id
        ))
        .await;
    let due = store.lease_due("w", now, ms(60_000), 10).await.unwrap();
    let ids: HashSet<_> = due.iter().map(|p| p.id.clone()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(!ids.contains(&ps[1].id));
    // Given back and not due again within the hour; due after it.
    assert!(
        store
            .lease_due("w2", now.plus(ms(61_000)), ms(60_000), 10)
            .await
            .unwrap()
            .len()
            == 3
    );
    let later = store
        .lease_due("w3", now.plus(Duration::from_secs(3700)), ms(60_000), 10)
        .await
        .unwrap();
    assert!(
        later.iter().all(|p| p.id != ps[1].id),
        "still unreadable, set aside again"
    );
    store.close().await;
}
both_backends!(a_broken_due_row_is_set_aside);

/// An event carries the version the row really got, even when the caller's copy of the
/// payment was older than the row (the rendered JSON is corrected in the same statement).
async fn an_event_has_the_rows_version(backend: Backend, _g: kakaopay::Generation) {
    let scratch = Scratch::new(backend).await;
    let store = Store::connect(&scratch.url).await.unwrap();
    let now = Timestamp::now();
    let p = record(7, now);
    store.insert_payment(&p, Detail::none()).await.unwrap();
    assert_eq!(p.version, 1);
    // A claim (no event) moves the row to version 2; `p` stays the stale copy.
    store
        .transition(
            &p,
            PaymentStatus::Ready,
            Event::ApproveClaimed,
            &PaymentChange::default(),
            Detail::none(),
            now,
        )
        .await
        .unwrap()
        .unwrap();
    let fresh = store.payment(&p.id).await.unwrap().unwrap();
    assert_eq!(fresh.version, 2);
    store
        .transition(
            &p,
            PaymentStatus::Approving,
            Event::ApproveFailed,
            &PaymentChange::default(),
            Detail::none(),
            now,
        )
        .await
        .unwrap()
        .unwrap();
    // (On PostgreSQL the feed waits for older transactions of the cluster, other tests' too.)
    let mut page = store.events_page(None, None, 10).await.unwrap();
    for _ in 0..100 {
        if !page.events.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        page = store.events_page(None, None, 10).await.unwrap();
    }
    assert_eq!(page.events.len(), 1, "only the failure is news: {page:?}");
    let e = &page.events[0];
    assert_eq!(e.object_version, 3);
    let data: serde_json::Value = serde_json::from_str(&e.data).unwrap();
    assert_eq!(data["object"]["version"], 3, "{data}");
    // (A bare store renders the id only; the server renders the API's view.)
    assert_eq!(data["object"]["id"], p.id.as_str(), "{data}");
    assert_eq!(store.payment(&p.id).await.unwrap().unwrap().version, 3);
    store.close().await;
}
both_backends!(an_event_has_the_rows_version);
