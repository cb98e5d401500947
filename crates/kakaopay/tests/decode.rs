//! Decoding of answers shaped like the captures in `shared/spec/kakaopay-api.md`: both
//! generations, explicit nulls and absent keys, CARD and MONEY, partial and full cancel.

use kakaopay::*;

fn won(n: i64) -> Amount {
    Amount::new(n).unwrap()
}

/// Current generation approve (2024 capture): explicit nulls, `installment_type`, no legacy corps.
#[test]
fn open_card_approve_with_explicit_nulls() {
    let body = r#"{
        "aid":"A6a8d38329fd342cdd39","tid":"T6a8d38329fd342cdd38","cid":"TC0ONETIME","sid":null,
        "partner_order_id":"order-1","partner_user_id":"user-1","payment_method_type":"CARD",
        "item_name":"초코파이","item_code":null,"quantity":1,
        "amount":{"total":2200,"tax_free":0,"vat":200,"point":0,"discount":0,"green_deposit":0},
        "card_info":{"kakaopay_purchase_corp":"비씨카드","kakaopay_purchase_corp_code":"104",
          "kakaopay_issuer_corp":"수협은행","kakaopay_issuer_corp_code":"212","bin":"111111",
          "card_type":"신용","install_month":"00","approved_id":"11111111","card_mid":"111111",
          "interest_free_install":"N","installment_type":"CARD_INSTALLMENT","card_item_code":"111111"},
        "sequential_payment_methods":null,"created_at":"2024-03-04T15:01:02",
        "approved_at":"2024-03-04T15:01:30","payload":null}"#;
    let a: ApproveResponse = serde_json::from_str(body).unwrap();
    assert_eq!(a.tid.as_str(), "T6a8d38329fd342cdd38");
    assert_eq!(a.sid, None);
    assert_eq!(a.payment_method_type, Some(PaymentMethodType::Card));
    assert_eq!(a.amount.total, won(2200));
    assert_eq!(a.amount.vat, won(200));
    let card = a.card_info.unwrap();
    assert_eq!(card.install_month.as_deref(), Some("00"));
    assert_eq!(
        card.installment_type,
        Some(InstallmentType::CardInstallment)
    );
    assert_eq!(card.purchase_corp, None);
    assert_eq!(a.sequential_payment_methods, None);
    assert_eq!(a.approved_at.unwrap().to_string(), "2024-03-04T15:01:30");
}

/// Legacy approve (2023 capture): absent keys, legacy corp fields, no `green_deposit`.
#[test]
fn legacy_card_approve_with_absent_keys() {
    let body = r#"{"aid":"A5678901234567890123","tid":"T1234567890123456789","cid":"TC0ONETIME",
        "partner_order_id":"partner_order_id","partner_user_id":"partner_user_id",
        "payment_method_type":"CARD","item_name":"초코파이","quantity":1,
        "amount":{"total":2200,"tax_free":0,"vat":200,"point":0,"discount":0},
        "card_info":{"purchase_corp":"신한카드","purchase_corp_code":"05","issuer_corp":"신한카드",
          "issuer_corp_code":"05","kakaopay_purchase_corp":"신한","kakaopay_purchase_corp_code":"101",
          "kakaopay_issuer_corp":"신한","kakaopay_issuer_corp_code":"101","bin":"111111",
          "card_type":"체크","install_month":"00","approved_id":"11111111","card_mid":"111111",
          "interest_free_install":"N","card_item_code":"111111"},
        "created_at":"2023-07-15T21:18:22","approved_at":"2023-07-15T21:18:40"}"#;
    let a: ApproveResponse = serde_json::from_str(body).unwrap();
    assert_eq!(a.amount.green_deposit, Amount::ZERO);
    let card = a.card_info.unwrap();
    assert_eq!(card.purchase_corp_code.as_deref(), Some("05"));
    assert_eq!(card.installment_type, None);
    assert_eq!(a.payload, None);
    assert_eq!(a.item_code, None);
}

/// MONEY approve (doc sample §9): no card_info at all.
#[test]
fn money_approve() {
    let body = r#"{"aid":"A5678901234567890123","tid":"T1234567890123456789","cid":"TC0ONETIME",
        "partner_order_id":"partner_order_id","partner_user_id":"partner_user_id",
        "payment_method_type":"MONEY","item_name":"초코파이","quantity":1,
        "amount":{"total":2200,"tax_free":0,"vat":200,"point":0,"discount":0,"green_deposit":0},
        "created_at":"2016-11-15T21:18:22","approved_at":"2016-11-15T21:20:47"}"#;
    let a: ApproveResponse = serde_json::from_str(body).unwrap();
    assert_eq!(a.payment_method_type, Some(PaymentMethodType::Money));
    assert!(a.card_info.is_none());
}

/// Subscription approve: a SID, numbers sent as strings.
#[test]
fn subscription_approve_with_sid_and_string_numbers() {
    let body = r#"{"aid":"A5678901234567890123","tid":"T1234567890123456789","cid":"TCSUBSCRIP",
        "sid":"S1234567890987654321","partner_order_id":"sub-1","partner_user_id":"user-1",
        "payment_method_type":"MONEY","quantity":"1",
        "amount":{"total":"9900","tax_free":"0","vat":"900","point":"0","discount":"0"}}"#;
    let a: ApproveResponse = serde_json::from_str(body).unwrap();
    assert_eq!(a.sid.unwrap().as_str(), "S1234567890987654321");
    assert_eq!(a.quantity, Some(1));
    assert_eq!(a.amount.total, won(9900));
}

/// Real current-generation partial cancel (§3.5): 1,100,000 with VAT 100,000, cancel 1,100.
#[test]
fn open_partial_cancel() {
    let body = r#"{"aid":"A7a8d38329fd342cdd40","tid":"T6a8d38329fd342cdd38","cid":"TC0ONETIME",
        "status":"PART_CANCEL_PAYMENT","partner_order_id":"o","partner_user_id":"u",
        "payment_method_type":"CARD","item_name":"노트북","item_code":null,"quantity":1,
        "amount":{"total":1100000,"tax_free":0,"vat":100000,"point":0,"discount":0,"green_deposit":0},
        "approved_cancel_amount":{"total":1100,"tax_free":0,"vat":100,"point":0,"discount":0,"green_deposit":0},
        "canceled_amount":{"total":1100,"tax_free":0,"vat":100,"point":0,"discount":0,"green_deposit":0},
        "cancel_available_amount":{"total":1098900,"tax_free":0,"vat":99900,"point":0,"discount":0,"green_deposit":0},
        "created_at":"2024-05-01T10:00:00","approved_at":"2024-05-01T10:00:30",
        "canceled_at":"2024-05-01T11:00:00","payload":null}"#;
    let c: CancelResponse = serde_json::from_str(body).unwrap();
    assert_eq!(c.status, OrderStatus::PartCancelPayment);
    assert_eq!(c.approved_cancel_amount.vat, won(100));
    assert_eq!(c.cancel_available_amount.total, won(1_098_900));
    assert_eq!(c.cancel_available_amount.vat, won(99_900));
    assert_eq!(default_vat(won(1100), Amount::ZERO), Some(won(100)));
}

/// Legacy order after a full cancel (§9), with a MONEY action entry carrying only five keys.
#[test]
fn legacy_order_after_full_cancel() {
    let body = r#"{"tid":"T1234567890123456789","cid":"TC0ONETIME","status":"CANCEL_PAYMENT",
        "partner_order_id":"partner_order_id","partner_user_id":"partner_user_id",
        "payment_method_type":"MONEY","item_name":"초코파이","quantity":1,
        "amount":{"total":2200,"tax_free":0,"vat":200,"point":0,"discount":0},
        "canceled_amount":{"total":2200,"tax_free":0,"vat":200,"point":0,"discount":0},
        "cancel_available_amount":{"total":0,"tax_free":0,"vat":0,"point":0,"discount":0},
        "created_at":"2023-07-15T21:18:22","approved_at":"2023-07-15T21:18:40",
        "canceled_at":"2023-07-15T21:30:00",
        "payment_action_details":[
          {"aid":"A5678901234567890123","approved_at":"2023-07-15T21:18:40","point_amount":0,
           "discount_amount":0,"payment_action_type":"PAYMENT"},
          {"aid":"A6678901234567890123","approved_at":"2023-07-15T21:30:00","amount":2200,
           "point_amount":0,"discount_amount":0,"payment_action_type":"CANCEL","payload":"환불"}]}"#;
    let o: OrderResponse = serde_json::from_str(body).unwrap();
    assert_eq!(o.status, OrderStatus::CancelPayment);
    assert!(o.status.is_paid());
    assert_eq!(o.cancel_available_amount.unwrap().total, Amount::ZERO);
    assert_eq!(o.payment_action_details.len(), 2);
    assert_eq!(o.payment_action_details[0].amount, None);
    assert_eq!(
        o.payment_action_details[1].payment_action_type,
        Some(PaymentActionType::Cancel)
    );
    assert_eq!(o.payment_action_details[1].payload.as_deref(), Some("환불"));
    assert!(o.selected_card_info.is_none());
}

/// Current-generation order of a card payment: `selected_card_info.install_month` is a number;
/// `payment_action_details: null` is an empty history.
#[test]
fn open_order_with_selected_card_info() {
    let body = r#"{"tid":"T6a8d38329fd342cdd38","cid":"TC0ONETIME","status":"SUCCESS_PAYMENT",
        "partner_order_id":"o","partner_user_id":"u","payment_method_type":"CARD",
        "amount":{"total":2200,"tax_free":0,"vat":200,"point":0,"discount":0,"green_deposit":0},
        "canceled_amount":null,"cancel_available_amount":null,
        "item_name":"초코파이","item_code":null,"quantity":1,"created_at":"2024-03-04T15:01:02",
        "approved_at":"2024-03-04T15:01:30","canceled_at":null,
        "selected_card_info":{"card_bin":"111111","install_month":3,"installment_type":"SHARE_INSTALLMENT",
          "card_corp_name":"신한","interest_free_install":"Y"},
        "payment_action_details":null}"#;
    let o: OrderResponse = serde_json::from_str(body).unwrap();
    let card = o.selected_card_info.unwrap();
    assert_eq!(card.install_month, Some(3));
    assert_eq!(
        card.installment_type,
        Some(InstallmentType::ShareInstallment)
    );
    assert!(o.payment_action_details.is_empty());
    assert_eq!(o.canceled_amount, None);
}

/// Ready answers: legacy (2020 capture, `tms_result`) and current (app schemes absent).
#[test]
fn ready_answers_of_both_generations() {
    let legacy = r#"{"tid":"T1234567890123456789","tms_result":false,
        "next_redirect_app_url":"https://mockup-pg-web.kakao.com/v1/xxxxxxxxxx/aInfo",
        "next_redirect_mobile_url":"https://mockup-pg-web.kakao.com/v1/xxxxxxxxxx/mInfo",
        "next_redirect_pc_url":"https://mockup-pg-web.kakao.com/v1/xxxxxxxxxx/info",
        "android_app_scheme":"kakaotalk://kakaopay/pg?url=https://mockup-pg-web.kakao.com/v1/xxxxxxxxxx/order",
        "ios_app_scheme":"kakaotalk://kakaopay/pg?url=https://mockup-pg-web.kakao.com/v1/xxxxxxxxxx/order",
        "created_at":"2020-12-01T14:22:01"}"#;
    let r: ReadyResponse = serde_json::from_str(legacy).unwrap();
    assert_eq!(r.tms_result, Some(false));
    assert!(r.android_app_scheme.unwrap().starts_with("kakaotalk://"));
    let open = r#"{"tid":"T6a8d38329fd342cdd38","next_redirect_app_url":"https://a/aInfo",
        "next_redirect_mobile_url":"https://a/mInfo","next_redirect_pc_url":"https://a/info",
        "created_at":"2024-03-04T15:01:02"}"#;
    let r: ReadyResponse = serde_json::from_str(open).unwrap();
    assert_eq!(r.android_app_scheme, None);
    assert_eq!(r.next_redirect_pc_url.as_deref(), Some("https://a/info"));
}

/// Subscription inactivate and status answers.
#[test]
fn subscription_management_answers() {
    let inactive = r#"{"cid":"TCSUBSCRIP","sid":"S1234567890987654321","status":"INACTIVE",
        "created_at":"2024-01-01T00:00:00","last_approved_at":"2024-02-01T00:00:00",
        "inactivated_at":"2024-03-01T00:00:00"}"#;
    let r: SubscriptionInactiveResponse = serde_json::from_str(inactive).unwrap();
    assert_eq!(r.status, SubscriptionStatus::Inactive);
    let status = r#"{"available":true,"cid":"TCSUBSCRIP","sid":"S1234567890987654321","status":"ACTIVE",
        "payment_method_type":"CARD","item_name":"월 구독","created_at":"2024-01-01T00:00:00",
        "last_approved_at":null,"inactivated_at":null,"use_point_status":"N"}"#;
    let r: SubscriptionStatusResponse = serde_json::from_str(status).unwrap();
    assert_eq!(r.available, Some(true));
    assert_eq!(r.last_approved_at, None);
}

/// Unknown enum values and extra keys do not break decoding.
#[test]
fn future_values_decode() {
    let body = r#"{"tid":"T6a8d38329fd342cdd38","cid":"TC0ONETIME","status":"SOMETHING_NEW",
        "partner_order_id":"o","partner_user_id":"u","payment_method_type":"POINT",
        "brand_new_field":{"x":1}}"#;
    let o: OrderResponse = serde_json::from_str(body).unwrap();
    assert_eq!(o.status, OrderStatus::Unknown("SOMETHING_NEW".into()));
    assert_eq!(
        o.payment_method_type,
        Some(PaymentMethodType::Unknown("POINT".into()))
    );
}
