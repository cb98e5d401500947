//! Single payments through the typed client over real HTTP, in both generations: the status graph,
//! amount arithmetic and every error code the spec lists for ready, approve, cancel and order.

mod common;
use common::*;
use kakaopay::*;

#[tokio::test]
async fn ready_approve_partial_and_full_cancel() {
    let env = env().await;
    for generation in GENERATIONS {
        let client = env.client(generation);
        let req = ready_req("TC0ONETIME", "order-1", "user-1", 33_000)
            .tax_free_amount(11_000)
            .build()
            .unwrap();
        let ready = client.ready(&req).await.unwrap();
        assert_eq!(ready.tid.as_str().len(), 20);
        assert!(ready.tid.as_str().starts_with('T'));
        for url in [
            &ready.next_redirect_pc_url,
            &ready.next_redirect_mobile_url,
            &ready.next_redirect_app_url,
        ] {
            assert!(url.as_deref().unwrap().starts_with(&env.base()));
        }
        assert!(ready.created_at.is_some());
        assert_eq!(order(&client, &ready.tid).await.status, OrderStatus::Ready);

        let token = env.authorize(&ready.tid, "CARD").await;
        assert_eq!(
            order(&client, &ready.tid).await.status,
            OrderStatus::AuthPassword
        );
        let approved = client
            .approve(&approve_req(&ready.tid, token).total_amount(won(33_000)))
            .await
            .unwrap();
        assert_eq!(approved.aid.as_str().len(), 20);
        assert_eq!(approved.payment_method_type, Some(PaymentMethodType::Card));
        // VAT defaulted on ready: (33000 - 11000) / 11 = 2000.
        assert_eq!(
            approved.amount,
            AmountBreakdown {
                total: won(33_000),
                tax_free: won(11_000),
                vat: won(2000),
                ..Default::default()
            }
        );
        let card = approved.card_info.clone().unwrap();
        assert_eq!(card.bin.as_deref(), Some("111111"));
        assert_eq!(card.install_month.as_deref(), Some("00"));
        assert_eq!(
            card.installment_type.is_some(),
            generation == Generation::Open
        );
        assert_eq!(
            card.purchase_corp.is_some(),
            generation == Generation::Legacy
        );

        // Partial: 5,500 of which 1,000 tax-free, VAT defaulted: round((5500-1000)/11) = 409.
        let c1 = client
            .cancel(&cancel_req(&ready.tid, 5500, 1000).expect_available(won(33_000)))
            .await
            .unwrap();
        assert_eq!(c1.status, OrderStatus::PartCancelPayment);
        assert_eq!(c1.approved_cancel_amount.total, won(5500));
        assert_eq!(c1.approved_cancel_amount.tax_free, won(1000));
        assert_eq!(c1.approved_cancel_amount.vat, won(409));
        assert_eq!(c1.cancel_available_amount.total, won(27_500));
        assert_eq!(c1.cancel_available_amount.tax_free, won(10_000));
        assert_eq!(c1.cancel_available_amount.vat, won(1591));
        assert_ne!(c1.aid, approved.aid);

        // Over-cancel and a stale guard are refused with -710 and change nothing.
        let e = client
            .cancel(&cancel_req(&ready.tid, 27_501, 0))
            .await
            .unwrap_err();
        assert_eq!(code(&e), -710);
        let e = client
            .cancel(&cancel_req(&ready.tid, 100, 0).expect_available(won(33_000)))
            .await
            .unwrap_err();
        assert_eq!(code(&e), -710);

        // The rest, with explicit VAT: the payment is fully cancelled.
        let c2 = client
            .cancel(
                &cancel_req(&ready.tid, 27_500, 10_000)
                    .vat(won(1591))
                    .expect_available(won(27_500))
                    .payload(Payload::parse("환불 완료").unwrap()),
            )
            .await
            .unwrap();
        assert_eq!(c2.status, OrderStatus::CancelPayment);
        assert_eq!(c2.canceled_amount, c2.amount);
        assert_eq!(c2.cancel_available_amount, AmountBreakdown::default());
        assert_eq!(c2.payload.as_deref(), Some("환불 완료"));

        let o = order(&client, &ready.tid).await;
        assert_eq!(o.status, OrderStatus::CancelPayment);
        assert!(o.canceled_at.is_some());
        let kinds: Vec<_> = o
            .payment_action_details
            .iter()
            .map(|a| a.payment_action_type.clone().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                PaymentActionType::Payment,
                PaymentActionType::Cancel,
                PaymentActionType::Cancel
            ]
        );
        assert_eq!(o.payment_action_details[1].amount, Some(won(5500)));
        assert_eq!(
            o.payment_action_details[2].payload.as_deref(),
            Some("환불 완료")
        );
        assert_eq!(o.selected_card_info.unwrap().install_month, Some(0));

        // Cancelling a fully cancelled payment: -784.
        let e = client
            .cancel(&cancel_req(&ready.tid, 1, 0))
            .await
            .unwrap_err();
        assert_eq!(code(&e), -784);
    }
}

#[tokio::test]
async fn money_payment_and_default_vat_on_ready() {
    let env = env().await;
    for generation in GENERATIONS {
        let client = env.client(generation);
        let (tid, approved) = paid(&env, &client, 2200, "MONEY").await;
        assert_eq!(approved.payment_method_type, Some(PaymentMethodType::Money));
        assert!(approved.card_info.is_none());
        assert_eq!(approved.amount.vat, won(200));
        let o = order(&client, &tid).await;
        assert_eq!(o.status, OrderStatus::SuccessPayment);
        // An uncancelled payment can be cancelled in full (observed behaviour, not the doc sample).
        assert_eq!(o.cancel_available_amount.unwrap().total, won(2200));
        assert!(o.selected_card_info.is_none());
        let full = client.cancel(&cancel_req(&tid, 2200, 0)).await.unwrap();
        assert_eq!(full.status, OrderStatus::CancelPayment);
        assert_eq!(full.approved_cancel_amount.vat, won(200));
    }
}

#[tokio::test]
async fn green_deposit_payments_cancel_in_full_only() {
    let env = env().await;
    for generation in GENERATIONS {
        let client = env.client(generation);
        let req = ready_req("TC0ONETIME", "order-1", "user-1", 5000)
            .green_deposit(1000)
            .build()
            .unwrap();
        let ready = client.ready(&req).await.unwrap();
        let token = env.authorize(&ready.tid, "CARD").await;
        let approved = client
            .approve(&approve_req(&ready.tid, token))
            .await
            .unwrap();
        assert_eq!(approved.amount.green_deposit, won(1000));
        let e = client
            .cancel(&cancel_req(&ready.tid, 1000, 0))
            .await
            .unwrap_err();
        assert_eq!(code(&e), -784);
        let c = client
            .cancel(&cancel_req(&ready.tid, 5000, 0))
            .await
            .unwrap();
        assert_eq!(c.status, OrderStatus::CancelPayment);
        assert_eq!(c.canceled_amount.green_deposit, won(1000));
    }
}

#[tokio::test]
async fn approve_errors() {
    let env = env().await;
    for generation in GENERATIONS {
        let client = env.client(generation);
        let ready = client
            .ready(
                &ready_req("TC0ONETIME", "order-1", "user-1", 1000)
                    .build()
                    .unwrap(),
            )
            .await
            .unwrap();
        let fake = PgToken::parse("0123456789abcdef0123").unwrap();

        // -701: the buyer has not authenticated yet.
        let e = client
            .approve(&approve_req(&ready.tid, fake.clone()))
            .await
            .unwrap_err();
        assert_eq!(code(&e), -701);
        assert!(!e.may_have_applied());

        let token = env.authorize(&ready.tid, "CARD").await;
        // -708: wrong pg_token.
        let e = client
            .approve(&approve_req(&ready.tid, fake))
            .await
            .unwrap_err();
        assert_eq!(code(&e), -708);
        // -706 / -707: ids differ from ready.
        let mut req = approve_req(&ready.tid, token.clone());
        req.partner_order_id = "other-order".parse().unwrap();
        assert_eq!(code(&client.approve(&req).await.unwrap_err()), -706);
        let mut req = approve_req(&ready.tid, token.clone());
        req.partner_user_id = "other-user".parse().unwrap();
        assert_eq!(code(&client.approve(&req).await.unwrap_err()), -707);
        // -722: total_amount differs from ready.
        let e = client
            .approve(&approve_req(&ready.tid, token.clone()).total_amount(won(999)))
            .await
            .unwrap_err();
        assert_eq!(code(&e), -722);
        // -731: wrong CID for this TID, and an unknown CID.
        let mut req = approve_req(&ready.tid, token.clone());
        req.cid = "TCSUBSCRIP".parse().unwrap();
        assert_eq!(code(&client.approve(&req).await.unwrap_err()), -731);
        req.cid = "TCUNKNOWN0".parse().unwrap();
        assert_eq!(code(&client.approve(&req).await.unwrap_err()), -731);
        // -721: unknown TID.
        let e = client
            .approve(&approve_req(
                &"T0000000000000000000".parse().unwrap(),
                token.clone(),
            ))
            .await
            .unwrap_err();
        assert_eq!(code(&e), -721);

        // Success, then -702 on a second approve (which "may have applied": it did).
        client
            .approve(&approve_req(&ready.tid, token.clone()))
            .await
            .unwrap();
        let e = client
            .approve(&approve_req(&ready.tid, token))
            .await
            .unwrap_err();
        assert_eq!(code(&e), -702);
        assert!(e.may_have_applied());
        assert_eq!(e.api().unwrap().status, 400);
    }
}

#[tokio::test]
async fn expiry_on_the_sandbox_clock() {
    let env = env().await;
    for generation in GENERATIONS {
        let client = env.client(generation);
        let ready = client
            .ready(
                &ready_req("TC0ONETIME", "order-1", "user-1", 1000)
                    .build()
                    .unwrap(),
            )
            .await
            .unwrap();
        let token = env.authorize(&ready.tid, "MONEY").await;
        let (status, body) = env
            .helper(
                "/test/v1/clock/advance",
                Some(serde_json::json!({"seconds": 15 * 60})),
            )
            .await;
        assert_eq!(status, 200);
        assert!(KstDateTime::parse(body["now"].as_str().unwrap()).is_some());
        let e = client
            .approve(&approve_req(&ready.tid, token))
            .await
            .unwrap_err();
        assert_eq!(code(&e), -723);
        // An expired order keeps its last pending status; it can no longer be authorized.
        assert_eq!(
            order(&client, &ready.tid).await.status,
            OrderStatus::AuthPassword
        );
        let (status, body) = env
            .helper(&format!("/test/v1/payments/{}/authorize", ready.tid), None)
            .await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["error"]["code"], "expired");
    }
}

#[tokio::test]
async fn cancel_errors() {
    let env = env().await;
    for generation in GENERATIONS {
        let client = env.client(generation);
        let ready = client
            .ready(
                &ready_req("TC0ONETIME", "order-1", "user-1", 1000)
                    .build()
                    .unwrap(),
            )
            .await
            .unwrap();
        // -784: nothing to cancel before approve.
        assert_eq!(
            code(
                &client
                    .cancel(&cancel_req(&ready.tid, 1000, 0))
                    .await
                    .unwrap_err()
            ),
            -784
        );
        // -721 and -731.
        let unknown = "T0000000000000000000".parse().unwrap();
        assert_eq!(
            code(
                &client
                    .cancel(&cancel_req(&unknown, 1, 0))
                    .await
                    .unwrap_err()
            ),
            -721
        );
        let mut wrong = cancel_req(&ready.tid, 1, 0);
        wrong.cid = "TCSUBSCRIP".parse().unwrap();
        assert_eq!(code(&client.cancel(&wrong).await.unwrap_err()), -731);
        let (tid, _) = paid(&env, &client, 1000, "CARD").await;
        // Tax-free part larger than the payment's tax-free part: -710.
        assert_eq!(
            code(
                &client
                    .cancel(&cancel_req(&tid, 500, 100))
                    .await
                    .unwrap_err()
            ),
            -710
        );
        // Explicit VAT above what is left: -710.
        assert_eq!(
            code(
                &client
                    .cancel(&cancel_req(&tid, 500, 0).vat(won(200)))
                    .await
                    .unwrap_err()
            ),
            -710
        );
        let o = order(&client, &tid).await;
        assert_eq!(o.status, OrderStatus::SuccessPayment);
        assert_eq!(o.canceled_amount.unwrap().total, Amount::ZERO);
    }
}

#[tokio::test]
async fn quit_and_fail_helpers() {
    let env = env().await;
    for generation in GENERATIONS {
        let client = env.client(generation);
        let a = client
            .ready(
                &ready_req("TC0ONETIME", "order-1", "user-1", 1000)
                    .build()
                    .unwrap(),
            )
            .await
            .unwrap();
        let (status, body) = env
            .helper(&format!("/test/v1/payments/{}/quit", a.tid), None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(body["status"], "QUIT_PAYMENT");
        assert_eq!(
            body["redirect_url"],
            "https://shop.example/pay/cancel?order=1"
        );
        assert_eq!(
            order(&client, &a.tid).await.status,
            OrderStatus::QuitPayment
        );
        let e = client
            .approve(&approve_req(
                &a.tid,
                PgToken::parse("0123456789abcdef0123").unwrap(),
            ))
            .await
            .unwrap_err();
        assert_eq!(code(&e), -783);

        let b = client
            .ready(
                &ready_req("TC0ONETIME", "order-1", "user-1", 1000)
                    .build()
                    .unwrap(),
            )
            .await
            .unwrap();
        let (status, body) = env
            .helper(&format!("/test/v1/payments/{}/fail", b.tid), None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(body["status"], "FAIL_AUTH_PASSWORD");
        assert_eq!(
            body["redirect_url"],
            "https://shop.example/pay/fail?order=1"
        );
        assert_eq!(
            order(&client, &b.tid).await.status,
            OrderStatus::FailAuthPassword
        );
        // A finished payment can no longer be authorized.
        let (status, _) = env
            .helper(&format!("/test/v1/payments/{}/authorize", b.tid), None)
            .await;
        assert_eq!(status, 409);
    }
    // Unknown TIDs: 404 with a JSON error.
    for action in ["authorize", "quit", "fail"] {
        let (status, body) = env
            .helper(
                &format!("/test/v1/payments/T0000000000000000000/{action}"),
                None,
            )
            .await;
        assert_eq!(status, 404);
        assert_eq!(body["error"]["code"], "not_found");
    }
}

#[tokio::test]
async fn authorize_keeps_the_approval_url_query_and_respects_the_method_restriction() {
    let env = env().await;
    let client = env.client(Generation::Open);
    let req = ready_req("TC0ONETIME", "order-1", "user-1", 1000)
        .payment_method_type(PaymentMethodType::Money)
        .build()
        .unwrap();
    let ready = client.ready(&req).await.unwrap();
    let (status, body) = env
        .helper(
            &format!("/test/v1/payments/{}/authorize", ready.tid),
            Some(serde_json::json!({"payment_method_type": "CARD"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = env
        .helper(&format!("/test/v1/payments/{}/authorize", ready.tid), None)
        .await;
    assert_eq!(status, 200);
    let token = body["pg_token"].as_str().unwrap();
    assert_eq!(token.len(), 20);
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(
        body["redirect_url"],
        format!("https://shop.example/pay/approve?order=1&lang=ko&pg_token={token}")
    );
    // Authorizing again (a refresh) returns the same token.
    let (_, again) = env
        .helper(&format!("/test/v1/payments/{}/authorize", ready.tid), None)
        .await;
    assert_eq!(again["pg_token"], token);
    let approved = client
        .approve(&approve_req(&ready.tid, PgToken::parse(token).unwrap()))
        .await
        .unwrap();
    assert_eq!(approved.payment_method_type, Some(PaymentMethodType::Money));
}

#[tokio::test]
async fn ready_validation_errors() {
    let env = env().await;
    for generation in GENERATIONS {
        let client = env.client(generation);
        // Unknown CID: -731.
        let e = client
            .ready(&ready_req("TCUNKNOWN0", "o", "u", 1000).build().unwrap())
            .await
            .unwrap_err();
        assert_eq!(code(&e), -731);
        // A zero total on a single-payment CID: parameter error.
        let e = client
            .ready(&ready_req("TC0ONETIME", "o", "u", 0).build().unwrap())
            .await
            .unwrap_err();
        assert_eq!(code(&e), -2);
        assert_eq!(e.api().unwrap().status, 400);
    }
}

/// 100 concurrent approves of one TID: exactly one success, 99 documented errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_approves_succeed_exactly_once() {
    let env = env().await;
    for generation in GENERATIONS {
        let client = env.client(generation);
        let ready = client
            .ready(
                &ready_req("TC0ONETIME", "order-1", "user-1", 1000)
                    .build()
                    .unwrap(),
            )
            .await
            .unwrap();
        let token = env.authorize(&ready.tid, "CARD").await;
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let client = client.clone();
                let req = approve_req(&ready.tid, token.clone());
                tokio::spawn(async move { client.approve(&req).await })
            })
            .collect();
        let mut ok = 0;
        let mut codes = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(e) => codes.push(code(&e)),
            }
        }
        assert_eq!(ok, 1);
        assert_eq!(codes.len(), 99);
        assert!(codes.iter().all(|c| *c == -702 || *c == -785), "{codes:?}");
        let o = order(&client, &ready.tid).await;
        assert_eq!(o.payment_action_details.len(), 1);
    }
}

/// Concurrent partial refunds never exceed the paid amount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cancels_never_exceed_the_payment() {
    let env = env().await;
    let client = env.client(Generation::Open);
    let (tid, _) = paid(&env, &client, 10_000, "CARD").await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            let req = cancel_req(&tid, 300, 0);
            tokio::spawn(async move { client.cancel(&req).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(code(&e), -710),
        }
    }
    assert_eq!(ok, 33);
    let o = order(&client, &tid).await;
    assert_eq!(o.canceled_amount.unwrap().total, won(9900));
    assert_eq!(o.cancel_available_amount.unwrap().total, won(100));
}
