//! Subscriptions end to end against the built-in sandbox over HTTP, on SQLite and PostgreSQL:
//! registration (paid first period, or a 0-won trial), renewals by the test clock, dunning,
//! lost answers judged by KakaoPay's status, cancel now and at the period's end, extra charges
//! under an Idempotency-Key, and two instances on one PostgreSQL both running the scheduler.
#![cfg(feature = "sandbox")]

mod common;
use common::*;
use kakaopay::Generation;
use serde_json::{Value, json};
use std::time::Duration;

const DAY: i64 = 86_400;

async fn quiet(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, Generation::Open, |c| {
        // Only the test clock's own passes run the scheduler, so every step is deterministic.
        c.reconcile_interval = Duration::from_secs(3600);
    })
    .await
}

/// Creates a subscription and lets the buyer register it; returns it.
async fn registered(app: &TestApp, body: Value) -> Value {
    let (status, s) = app.post("/api/v1/subscriptions", body).await;
    assert_eq!(status, 201, "{s}");
    assert_eq!(s["status"], "incomplete");
    assert!(s["redirect_url"].as_str().is_some(), "{s}");
    let p = app
        .payment(s["registration_payment_id"].as_str().unwrap())
        .await;
    let callback = app.authorize(&p).await;
    let (status, _, _) = app.browse(&callback).await;
    assert_eq!(status, 200);
    let s = sub(app, s["id"].as_str().unwrap()).await;
    assert_eq!(s["status"], "active", "{s}");
    s
}

async fn sub(app: &TestApp, id: &str) -> Value {
    let (status, s) = app.get(&format!("/api/v1/subscriptions/{id}")).await;
    assert_eq!(status, 200, "{s}");
    s
}

async fn charges(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, c) = app
        .get(&format!("/api/v1/subscriptions/{id}/charges"))
        .await;
    assert_eq!(status, 200, "{c}");
    c["data"].as_array().unwrap().clone()
}

async fn advance(app: &TestApp, seconds: i64) -> Value {
    let (status, body) = app
        .post("/api/v1/test/clock/advance", json!({ "seconds": seconds }))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn monthly(user: &str) -> Value {
    json!({"partner_user_id": user, "item_name": "월간 커피 구독", "amount": 9900, "interval": "month"})
}

/// At most one success per period, whatever happened.
fn one_success_per_period(list: &[Value]) {
    let mut seen = std::collections::HashSet::new();
    for c in list.iter().filter(|c| c["status"] == "succeeded") {
        if let Some(n) = c["period"].as_i64() {
            assert!(seen.insert(n), "period {n} charged twice: {list:?}");
        }
    }
}

async fn register_renew_and_refund(backend: Backend, _g: Generation) {
    let app = quiet(backend).await;
    let s = registered(&app, monthly("member-1")).await;
    let id = s["id"].as_str().unwrap();
    // The first payment is an ordinary payment: listed, refundable, the first charge.
    let list = charges(&app, id).await;
    assert_eq!(list.len(), 1);
    assert_eq!(
        (&list[0]["kind"], &list[0]["status"], &list[0]["period"]),
        (&json!("registration"), &json!("succeeded"), &json!(0))
    );
    let first = list[0]["payment_id"].as_str().unwrap();
    assert_eq!(app.payment(first).await["status"], "approved");
    assert_eq!(app.payment(first).await["subscription_id"], json!(id));
    let (_, page) = app.get("/api/v1/payments").await;
    assert!(
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == first)
    );
    // The SID is KakaoPay's billing credential: never returned, and sealed at rest.
    let tid = app.payment(first).await["tid"].as_str().unwrap().to_owned();
    let record = app.kakaopay_record(&tid).await;
    let sid = record["sid"]
        .as_str()
        .expect("KakaoPay issued a SID")
        .to_owned();
    assert_eq!(s["sid_last4"].as_str().unwrap(), &sid[sid.len() - 4..]);
    assert!(!s.to_string().contains(&sid));
    let stored = app
        .scratch
        .query_text(&format!(
            "SELECT sid_sealed FROM subscriptions WHERE id = '{id}'"
        ))
        .await;
    assert!(
        stored.starts_with("v1:") && !stored.contains(&sid),
        "{stored}"
    );

    // Nothing is due before the period ends; at its end the scheduler renews once.
    advance(&app, 20 * DAY).await;
    assert_eq!(charges(&app, id).await.len(), 1);
    let done = advance(&app, 12 * DAY).await;
    assert_eq!(done["still_due"], 0, "{done}");
    let list = charges(&app, id).await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(
        (&list[1]["kind"], &list[1]["status"], &list[1]["period"]),
        (&json!("renewal"), &json!("succeeded"), &json!(1))
    );
    let s = sub(&app, id).await;
    assert_eq!(s["next_period"], 2);
    assert_eq!(s["current_period_start"], list[1]["period_start"]);
    // The renewal's payment is refundable like any payment.
    let renewal = list[1]["payment_id"].as_str().unwrap();
    let (status, refunded) = app
        .post(&format!("/api/v1/payments/{renewal}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200, "{refunded}");
    assert_eq!(refunded["status"], "canceled");
    // A further advance by less than a period charges nothing more.
    advance(&app, DAY).await;
    assert_eq!(charges(&app, id).await.len(), 2);
    one_success_per_period(&charges(&app, id).await);
    app.stop().await;
}
both_backends!(register_renew_and_refund);

async fn a_trial_registers_for_0_won_and_charges_at_its_end(backend: Backend, _g: Generation) {
    let app = quiet(backend).await;
    let mut body = monthly("member-2");
    body["trial_days"] = json!(14);
    let s = registered(&app, body).await;
    let id = s["id"].as_str().unwrap();
    assert!(s["trial_end"].is_string(), "{s}");
    let reg = app
        .payment(s["registration_payment_id"].as_str().unwrap())
        .await;
    assert_eq!(reg["amount"]["total"], 0);
    let record = app.kakaopay_record(reg["tid"].as_str().unwrap()).await;
    assert_eq!(record["status"], "ISSUED_SID", "{record}");
    // Not a sale: not in the payments list, not a charge.
    let (_, page) = app.get("/api/v1/payments").await;
    assert!(
        !page["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == reg["id"])
    );
    assert!(charges(&app, id).await.is_empty());
    advance(&app, 13 * DAY).await;
    assert!(charges(&app, id).await.is_empty());
    advance(&app, 2 * DAY).await;
    let list = charges(&app, id).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        (&list[0]["period"], &list[0]["status"]),
        (&json!(0), &json!("succeeded"))
    );
    assert_eq!(list[0]["period_start"], s["trial_end"]);
    app.stop().await;
}
both_backends!(a_trial_registers_for_0_won_and_charges_at_its_end);

async fn refused_renewals_are_dunned_then_given_up(backend: Backend, _g: Generation) {
    let app = quiet(backend).await;
    let s = registered(&app, monthly("member-3")).await;
    let id = s["id"].as_str().unwrap();
    // A soft refusal (-780 USER_LOCKED, which might have applied: a status lookup shows it did
    // not): past_due, retried a day later, and that retry pays.
    app.fault(json!({"endpoint":"subscription","action":"error","error_code":-780,"method_result_code":"USER_LOCKED","count":1})).await;
    advance(&app, 32 * DAY).await;
    advance(&app, 60).await;
    let s = sub(&app, id).await;
    assert_eq!(s["status"], "past_due", "{s}");
    let list = charges(&app, id).await;
    assert_eq!(
        (&list[1]["status"], &list[1]["kakaopay_code"]),
        (&json!("failed"), &json!(-780))
    );
    advance(&app, DAY).await;
    let s = sub(&app, id).await;
    assert_eq!(
        s["status"], "active",
        "a later success returns it to active: {s}"
    );
    let list = charges(&app, id).await;
    assert_eq!(
        (&list[2]["status"], &list[2]["period"], &list[2]["attempt"]),
        (&json!("succeeded"), &json!(1), &json!(2))
    );
    // Every retry refused: 1, 3, 5, 7 days after the first refusal, then unpaid.
    app.fault(json!({"endpoint":"subscription","action":"error","error_code":-782,"count":100}))
        .await;
    advance(&app, 31 * DAY).await;
    assert_eq!(sub(&app, id).await["status"], "past_due");
    for _ in 0..4 {
        advance(&app, 2 * DAY).await;
    }
    let s = sub(&app, id).await;
    assert_eq!(s["status"], "unpaid", "{s}");
    let period2: Vec<Value> = charges(&app, id)
        .await
        .into_iter()
        .filter(|c| c["period"] == 2)
        .collect();
    assert_eq!(
        period2.len(),
        5,
        "the first try and four retries: {period2:?}"
    );
    // Unpaid is not renewed any more.
    advance(&app, 40 * DAY).await;
    assert_eq!(
        charges(&app, id)
            .await
            .iter()
            .filter(|c| c["period"] == 2)
            .count(),
        5
    );
    app.stop().await;
}
both_backends!(refused_renewals_are_dunned_then_given_up);

async fn a_hard_refusal_stops_at_once(backend: Backend, _g: Generation) {
    let app = TestApp::spawn_with(backend, Generation::Open, |c| {
        c.reconcile_interval = Duration::from_secs(3600);
        c.dunning_final = kpay_server::domain::DunningFinal::Canceled;
    })
    .await;
    let s = registered(&app, monthly("member-4")).await;
    let id = s["id"].as_str().unwrap();
    app.fault(json!({"endpoint":"subscription","action":"error","error_code":-753,"count":1}))
        .await;
    advance(&app, 32 * DAY).await;
    let s = sub(&app, id).await;
    assert_eq!(
        s["status"], "canceled",
        "-753 cannot be retried; --dunning-final canceled: {s}"
    );
    assert!(
        s["inactivated_at"].is_string(),
        "the SID was inactivated: {s}"
    );
    assert_eq!(charges(&app, id).await.len(), 2);
    app.stop().await;
}
both_backends!(a_hard_refusal_stops_at_once);

async fn lost_answers_are_judged_by_kakaopays_status(backend: Backend, _g: Generation) {
    let app = quiet(backend).await;
    let s = registered(&app, monthly("member-5")).await;
    let id = s["id"].as_str().unwrap();
    // Charged, answer lost: unknown, never re-sent; the status lookup finds the charge.
    app.fault(json!({"endpoint":"subscription","action":"commit_then_drop","count":1}))
        .await;
    advance(&app, 32 * DAY).await;
    let list = charges(&app, id).await;
    assert_eq!(list[1]["status"], "unknown", "{list:?}");
    advance(&app, 60).await;
    let list = charges(&app, id).await;
    assert_eq!(list.len(), 2, "not re-sent: {list:?}");
    assert_eq!(list[1]["status"], "succeeded", "{list:?}");
    assert!(
        list[1]["payment_id"].is_null(),
        "no TID came back: {list:?}"
    );
    assert_eq!(sub(&app, id).await["next_period"], 2);
    // Not charged, answer lost (a dropped request): found not applied, then charged once.
    app.fault(json!({"endpoint":"subscription","action":"drop","count":1}))
        .await;
    advance(&app, 31 * DAY).await;
    assert_eq!(charges(&app, id).await[2]["status"], "unknown");
    advance(&app, 60).await;
    let list = charges(&app, id).await;
    assert_eq!(
        (&list[2]["status"], &list[2]["failure"]),
        (&json!("failed"), &json!("not_applied")),
        "{list:?}"
    );
    assert_eq!(
        (&list[3]["status"], &list[3]["period"]),
        (&json!("succeeded"), &json!(2)),
        "{list:?}"
    );
    assert!(list[3]["payment_id"].is_string());
    one_success_per_period(&list);
    app.stop().await;
}
both_backends!(lost_answers_are_judged_by_kakaopays_status);

async fn cancel_now_at_period_end_and_sync(backend: Backend, _g: Generation) {
    let app = quiet(backend).await;
    let a = registered(&app, monthly("member-6")).await;
    let a_id = a["id"].as_str().unwrap();
    let (status, c) = app
        .post(&format!("/api/v1/subscriptions/{a_id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["status"], "canceled");
    assert!(c["inactivated_at"].is_string(), "{c}");
    let (status, again) = app
        .post(&format!("/api/v1/subscriptions/{a_id}/cancel"), json!({}))
        .await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (409, Some("invalid_state"))
    );
    let (status, synced) = app
        .post(&format!("/api/v1/subscriptions/{a_id}/sync"), json!({}))
        .await;
    assert_eq!((status, synced["status"].as_str()), (200, Some("canceled")));
    advance(&app, 40 * DAY).await;
    assert_eq!(
        charges(&app, a_id).await.len(),
        1,
        "a canceled subscription is not charged"
    );

    let b = registered(&app, monthly("member-7")).await;
    let b_id = b["id"].as_str().unwrap();
    let (status, c) = app
        .post(
            &format!("/api/v1/subscriptions/{b_id}/cancel"),
            json!({"at_period_end": true}),
        )
        .await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(
        (&c["status"], &c["cancel_at_period_end"]),
        (&json!("active"), &json!(true))
    );
    advance(&app, 32 * DAY).await;
    let b = sub(&app, b_id).await;
    assert_eq!(b["status"], "canceled", "{b}");
    assert_eq!(
        charges(&app, b_id).await.len(),
        1,
        "the period's end is not charged"
    );

    // An extra charge under an Idempotency-Key is made once.
    let c_sub = registered(&app, monthly("member-8")).await;
    let c_id = c_sub["id"].as_str().unwrap();
    let path = format!("/api/v1/subscriptions/{c_id}/charge");
    let (s1, first) = app
        .post_keyed(
            &path,
            "extra-1",
            json!({"amount": 3000, "item_name": "원두 추가"}),
        )
        .await;
    let (s2, second) = app
        .post_keyed(
            &path,
            "extra-1",
            json!({"amount": 3000, "item_name": "원두 추가"}),
        )
        .await;
    assert_eq!((s1, s2), (201, 201), "{first} {second}");
    assert_eq!(first["id"], second["id"]);
    assert_eq!(first["status"], "succeeded");
    assert_eq!(
        charges(&app, c_id)
            .await
            .iter()
            .filter(|c| c["kind"] == "extra")
            .count(),
        1
    );
    let (status, bad) = app.post(&path, json!({"amount": 0})).await;
    assert_eq!(
        (status, bad["error"]["field"].as_str()),
        (400, Some("amount"))
    );
    app.stop().await;
}
both_backends!(cancel_now_at_period_end_and_sync);

async fn an_unfinished_registration_expires(backend: Backend, _g: Generation) {
    let app = quiet(backend).await;
    let (status, s) = app.post("/api/v1/subscriptions", monthly("member-9")).await;
    assert_eq!(status, 201, "{s}");
    let id = s["id"].as_str().unwrap();
    advance(&app, 16 * 60).await;
    assert_eq!(sub(&app, id).await["status"], "incomplete_expired");
    // Bad input names the field.
    for (body, field) in [
        (
            json!({"partner_user_id":"u","item_name":"x","amount":100,"interval":"hour"}),
            "interval",
        ),
        (
            json!({"partner_user_id":"u","item_name":"x","amount":100,"interval":"day","interval_count":400}),
            "interval_count",
        ),
        (
            json!({"partner_user_id":"u","item_name":"x","amount":100,"interval":"day","trial_days":1000}),
            "trial_days",
        ),
        (
            json!({"partner_user_id":"u","item_name":"x","amount":-5,"interval":"day"}),
            "amount",
        ),
    ] {
        let (status, e) = app.post("/api/v1/subscriptions", body).await;
        assert_eq!(
            (status, e["error"]["field"].as_str()),
            (400, Some(field)),
            "{e}"
        );
    }
    let (status, _) = app.get("/api/v1/subscriptions/sub_nope").await;
    assert_eq!(status, 404);
    let (status, page) = app
        .get("/api/v1/subscriptions?status=incomplete_expired")
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
    app.stop().await;
}
both_backends!(an_unfinished_registration_expires);

/// Two instances on one PostgreSQL (sharing the sandbox and the SID key), both running the
/// scheduler at once over the same due subscriptions: every period is charged exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_renew_each_period_exactly_once() {
    let key = secrecy::SecretString::from("11".repeat(32));
    let a = TestApp::spawn_with(Backend::Postgres, Generation::Open, |c| {
        c.encryption_key = Some(key.clone());
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..24 {
        ids.push(
            registered(&a, monthly(&format!("twin-{i}"))).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let scratch2 = a.scratch.sibling();
    let mut c = config(&scratch2, Generation::Open);
    c.kakaopay_url = Some(format!("{}/sandbox", a.base));
    c.encryption_key = Some(key.clone());
    let b = TestApp::start(scratch2, c).await;
    // Both jump a month (the second only levels with the sandbox) and both schedulers run.
    let (ra, rb) = tokio::join!(
        a.post("/api/v1/test/clock/advance", json!({"seconds": 32 * DAY})),
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            b.post("/api/v1/test/clock/advance", json!({"seconds": 0}))
                .await
        }
    );
    assert_eq!((ra.0, rb.0), (200, 200), "{ra:?} {rb:?}");
    advance(&a, 0).await;
    advance(&b, 0).await;
    let (_, ledger) = a.sandbox_get("/payments").await;
    for id in &ids {
        let at_kakaopay = ledger["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["partner_order_id"] == json!(format!("{id}-1")))
            .count();
        assert_eq!(at_kakaopay, 1, "KakaoPay charged period 1 of {id} once");
        let list = charges(&a, id).await;
        one_success_per_period(&list);
        assert!(
            list.iter()
                .any(|c| c["period"] == 1 && c["status"] == "succeeded"),
            "{id}: {list:?}"
        );
        assert_eq!(list.len(), 2, "one attempt for period 1: {list:?}");
    }
    b.stop().await;
    a.stop().await;
}

/// A charge KakaoPay made is never dropped, even when another instance judges its attempt
/// while the call is out. The test clocks make that happen: B's renewal call is held by the
/// sandbox while A, its clock moved past B's attempt's window, looks the attempt up, judges it
/// and charges the period itself. Whatever KakaoPay ends up holding for the period, the ledger
/// holds too, TID for TID, with at most one success per period; a second charge at KakaoPay
/// shows as `late_charge` in the log for the operator. (Why one instance's test clock must
/// not move while another has a call out: see README.) This test found that a late answer's
/// payment was refused by the order's unique slot (the other charge's) and lost.
#[tokio::test]
async fn a_late_answer_is_recorded_never_dropped() {
    let key = secrecy::SecretString::from("22".repeat(32));
    let a = TestApp::spawn_with(Backend::Postgres, Generation::Open, |c| {
        c.encryption_key = Some(key.clone());
    })
    .await;
    let id = registered(&a, monthly("late-1")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let scratch2 = a.scratch.sibling();
    let mut c = config(&scratch2, Generation::Open);
    c.kakaopay_url = Some(format!("{}/sandbox", a.base));
    c.encryption_key = Some(key.clone());
    let b = TestApp::start(scratch2, c).await;
    advance(&b, 0).await;
    // B's next renewal call waits 1.5 s at KakaoPay (under its 2 s timeout) before it applies.
    a.fault(json!({"endpoint":"subscription","action":"delay","delay_ms":1500,"count":1}))
        .await;
    let (rb, ra) = tokio::join!(advance(&b, 32 * DAY), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        advance(&a, 33 * DAY).await
    });
    assert!(rb.is_object() && ra.is_object());
    advance(&a, 0).await;
    advance(&b, 0).await;
    let (_, ledger) = a.sandbox_get("/payments").await;
    let at_kakaopay: Vec<&Value> = ledger["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["partner_order_id"] == json!(format!("{id}-1")))
        .collect();
    let (_, page) = a.get(&format!("/api/v1/payments?q={id}-1")).await;
    let recorded: Vec<String> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["partner_order_id"] == json!(format!("{id}-1")))
        .map(|p| p["tid"].as_str().unwrap().to_owned())
        .collect();
    // Whatever KakaoPay charged for the period, the ledger has, TID for TID.
    for p in &at_kakaopay {
        assert!(
            recorded.contains(&p["tid"].as_str().unwrap().to_owned()),
            "KakaoPay's {p} is in the ledger: {recorded:?}"
        );
    }
    let list = charges(&a, &id).await;
    one_success_per_period(&list);
    if at_kakaopay.len() == 2 {
        let (_, log) = a.get(&format!("/api/v1/subscriptions/{id}/events")).await;
        assert!(
            log["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["cause"] == "late_charge"),
            "{log}"
        );
    }
    b.stop().await;
    a.stop().await;
}
