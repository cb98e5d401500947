//! Subscriptions with `TCSUBSCRIP` in both generations: the SID from the first approve, charges
//! without the buyer, status, inactivation, and -750/-751/-753.

mod common;
use common::*;
use kakaopay::*;

fn sub_cid() -> Cid {
    "TCSUBSCRIP".parse().unwrap()
}

async fn first_payment(env: &Env, client: &Client, total: i64) -> (Tid, ApproveResponse) {
    let ready = client
        .ready(
            &ready_req("TCSUBSCRIP", "sub-order-1", "subscriber-1", total)
                .item_name("월간 구독")
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let token = env.authorize(&ready.tid, "CARD").await;
    let req = ApproveRequest::new(
        sub_cid(),
        ready.tid.clone(),
        "sub-order-1".parse().unwrap(),
        "subscriber-1".parse().unwrap(),
        token,
    );
    let approved = client.approve(&req).await.unwrap();
    (ready.tid, approved)
}

fn charge(sid: &Sid, order: &str, user: &str, total: i64) -> SubscriptionRequest {
    SubscriptionRequest::new(
        sub_cid(),
        sid.clone(),
        order.parse().unwrap(),
        user.parse().unwrap(),
        Quantity::new(1).unwrap(),
        won(total),
    )
}

#[tokio::test]
async fn subscription_lifecycle() {
    let env = env().await;
    for generation in GENERATIONS {
        let client = env.client(generation);
        let (first_tid, approved) = first_payment(&env, &client, 9900).await;
        let sid = approved
            .sid
            .clone()
            .expect("a subscription CID's approve issues a SID");
        assert_eq!(sid.as_str().len(), 20);
        assert!(sid.as_str().starts_with('S'));

        let status = client
            .subscription_status(&SidRequest::new(sub_cid(), sid.clone()))
            .await
            .unwrap();
        assert_eq!(status.status, SubscriptionStatus::Active);
        assert_eq!(status.available, Some(true));
        assert_eq!(status.item_name.as_deref(), Some("월간 구독"));
        assert_eq!(status.payment_method_type, Some(PaymentMethodType::Card));

        // A charge without the buyer: new TID and AID, VAT defaulted, cancellable as usual.
        let charged = client
            .subscription(
                &charge(&sid, "sub-order-2", "subscriber-1", 9900)
                    .payload(Payload::parse("2월분").unwrap()),
            )
            .await
            .unwrap();
        assert_ne!(charged.tid, first_tid);
        assert_ne!(charged.aid, approved.aid);
        assert_eq!(charged.sid.as_ref(), Some(&sid));
        assert_eq!(charged.amount.vat, won(900));
        assert_eq!(charged.payload.as_deref(), Some("2월분"));
        let o = client
            .order(&OrderRequest::new(sub_cid(), charged.tid.clone()))
            .await
            .unwrap();
        assert_eq!(o.status, OrderStatus::SuccessPayment);
        let c = client
            .cancel(&CancelRequest::new(
                sub_cid(),
                charged.tid.clone(),
                won(9900),
                Amount::ZERO,
            ))
            .await
            .unwrap();
        assert_eq!(c.status, OrderStatus::CancelPayment);
        let status = client
            .subscription_status(&SidRequest::new(sub_cid(), sid.clone()))
            .await
            .unwrap();
        assert!(status.last_approved_at.is_some());

        // -753: another user.
        let e = client
            .subscription(&charge(&sid, "sub-order-3", "someone-else", 9900))
            .await
            .unwrap_err();
        assert_eq!(code(&e), -753);
        // -750: unknown SID; -731: not a subscription CID.
        let unknown: Sid = "S0000000000000000000".parse().unwrap();
        assert_eq!(
            code(
                &client
                    .subscription(&charge(&unknown, "x", "subscriber-1", 1))
                    .await
                    .unwrap_err()
            ),
            -750
        );
        let mut wrong = charge(&sid, "x", "subscriber-1", 1);
        wrong.cid = cid();
        assert_eq!(code(&client.subscription(&wrong).await.unwrap_err()), -731);

        // Inactivate: status INACTIVE, later charges -751, a second inactivate -751.
        let inactive = client
            .inactivate_subscription(&SidRequest::new(sub_cid(), sid.clone()))
            .await
            .unwrap();
        assert_eq!(inactive.status, SubscriptionStatus::Inactive);
        assert!(inactive.inactivated_at.is_some());
        assert_eq!(
            code(
                &client
                    .subscription(&charge(&sid, "sub-order-4", "subscriber-1", 9900))
                    .await
                    .unwrap_err()
            ),
            -751
        );
        assert_eq!(
            code(
                &client
                    .inactivate_subscription(&SidRequest::new(sub_cid(), sid.clone()))
                    .await
                    .unwrap_err()
            ),
            -751
        );
        let status = client
            .subscription_status(&SidRequest::new(sub_cid(), sid.clone()))
            .await
            .unwrap();
        assert_eq!(status.status, SubscriptionStatus::Inactive);
        assert_eq!(status.available, Some(false));
        assert_eq!(
            code(
                &client
                    .subscription_status(&SidRequest::new(sub_cid(), unknown))
                    .await
                    .unwrap_err()
            ),
            -750
        );
    }
}

/// A 0-won first payment on a subscription CID only registers the SID (`ISSUED_SID`).
#[tokio::test]
async fn zero_won_registration_issues_only_a_sid() {
    let env = env().await;
    let client = env.client(Generation::Open);
    let (tid, approved) = first_payment(&env, &client, 0).await;
    assert!(approved.sid.is_some());
    let o = client
        .order(&OrderRequest::new(sub_cid(), tid))
        .await
        .unwrap();
    assert_eq!(o.status, OrderStatus::IssuedSid);
    assert_eq!(
        o.payment_action_details[0].payment_action_type,
        Some(PaymentActionType::IssuedSid)
    );
}

/// A configured monthly limit answers -752.
#[tokio::test]
async fn monthly_limit() {
    let env = env_with(kakaopay_sandbox::SandboxConfig {
        sid_monthly_limit: Some(1),
        ..Default::default()
    })
    .await;
    let client = env.client(Generation::Legacy);
    let (_, approved) = first_payment(&env, &client, 1000).await;
    let sid = approved.sid.unwrap();
    client
        .subscription(&charge(&sid, "a", "subscriber-1", 1000))
        .await
        .unwrap();
    assert_eq!(
        code(
            &client
                .subscription(&charge(&sid, "b", "subscriber-1", 1000))
                .await
                .unwrap_err()
        ),
        -752
    );
}
