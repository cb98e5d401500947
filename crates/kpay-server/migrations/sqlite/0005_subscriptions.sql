-- Subscriptions (issue 10). A SID-only registration (a trial: KakaoPay's 0-won ready, ISSUED_SID)
-- is a payment of 0 won that belongs to a subscription; every other payment still charges >= 1 won.
-- SQLite cannot change a CHECK in place: the payments table is rebuilt the way SQLite documents
-- (new table, copy, drop, rename, indexes), in the migration's transaction. Migrations run on a
-- connection with foreign keys off (Store::connect_sqlite), as SQLite requires for this.
CREATE TABLE payments_new (
    id                    TEXT PRIMARY KEY,
    status                TEXT NOT NULL,
    cid                   TEXT NOT NULL,
    tid                   TEXT NOT NULL UNIQUE,
    aid                   TEXT UNIQUE,
    partner_order_id      TEXT NOT NULL,
    partner_user_id       TEXT NOT NULL,
    item_name             TEXT NOT NULL,
    item_code             TEXT,
    quantity              BIGINT NOT NULL,
    amount_total          BIGINT NOT NULL,
    amount_tax_free       BIGINT NOT NULL CHECK (amount_tax_free >= 0),
    amount_vat            BIGINT NOT NULL CHECK (amount_vat >= 0),
    amount_green_deposit  BIGINT NOT NULL DEFAULT 0,
    canceled_total        BIGINT NOT NULL DEFAULT 0,
    canceled_tax_free     BIGINT NOT NULL DEFAULT 0,
    canceled_vat          BIGINT NOT NULL DEFAULT 0,
    canceled_green_deposit BIGINT NOT NULL DEFAULT 0,
    payment_method_type   TEXT,
    card_info             TEXT,
    channel               TEXT NOT NULL,
    redirect_url          TEXT NOT NULL,
    redirect_pc_url       TEXT,
    redirect_mobile_url   TEXT,
    redirect_app_url      TEXT,
    return_url            TEXT,
    pg_token              TEXT,
    failure_code          TEXT,
    failure_message       TEXT,
    refund_in_flight      TEXT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    expires_at            BIGINT NOT NULL,
    approve_started_at    BIGINT,
    approved_at           BIGINT,
    canceled_at           BIGINT,
    next_check_at         BIGINT,
    lease_owner           TEXT,
    lease_until           BIGINT,
    idempotency_key       TEXT,
    order_slot            TEXT,
    check_attempts        BIGINT NOT NULL DEFAULT 0,
    resend_count          BIGINT NOT NULL DEFAULT 0,
    callback_window       BIGINT,
    callback_calls        BIGINT NOT NULL DEFAULT 0,
    claim_window          BIGINT,
    claim_calls           BIGINT NOT NULL DEFAULT 0,
    subscription_id       TEXT,
    CHECK (canceled_total <= amount_total),
    CHECK (amount_total > 0 OR (amount_total = 0 AND subscription_id IS NOT NULL))
);
INSERT INTO payments_new (id, status, cid, tid, aid, partner_order_id, partner_user_id, item_name, item_code, quantity, amount_total, amount_tax_free, amount_vat, amount_green_deposit, canceled_total, canceled_tax_free, canceled_vat, canceled_green_deposit, payment_method_type, card_info, channel, redirect_url, redirect_pc_url, redirect_mobile_url, redirect_app_url, return_url, pg_token, failure_code, failure_message, refund_in_flight, created_at, updated_at, expires_at, approve_started_at, approved_at, canceled_at, next_check_at, lease_owner, lease_until, idempotency_key, order_slot, check_attempts, resend_count, callback_window, callback_calls, claim_window, claim_calls) SELECT id, status, cid, tid, aid, partner_order_id, partner_user_id, item_name, item_code, quantity, amount_total, amount_tax_free, amount_vat, amount_green_deposit, canceled_total, canceled_tax_free, canceled_vat, canceled_green_deposit, payment_method_type, card_info, channel, redirect_url, redirect_pc_url, redirect_mobile_url, redirect_app_url, return_url, pg_token, failure_code, failure_message, refund_in_flight, created_at, updated_at, expires_at, approve_started_at, approved_at, canceled_at, next_check_at, lease_owner, lease_until, idempotency_key, order_slot, check_attempts, resend_count, callback_window, callback_calls, claim_window, claim_calls FROM payments;
DROP TABLE payments;
ALTER TABLE payments_new RENAME TO payments;
CREATE INDEX payments_created ON payments (created_at DESC, id DESC);
CREATE INDEX payments_status_created ON payments (status, created_at DESC);
CREATE INDEX payments_partner_order ON payments (partner_order_id);
CREATE INDEX payments_next_check ON payments (next_check_at) WHERE next_check_at IS NOT NULL;
CREATE UNIQUE INDEX payments_idempotency_key ON payments (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX payments_order_slot ON payments (order_slot);
CREATE INDEX payments_subscription ON payments (subscription_id) WHERE subscription_id IS NOT NULL;

-- Subscriptions (정기 결제): one row per registration, with its SID sealed (AEAD) once approved.
-- Periods are numbered from the billing anchor; next_period is the first one not yet paid.
CREATE TABLE subscriptions (
    id                      TEXT PRIMARY KEY,
    status                  TEXT NOT NULL,
    cid                     TEXT NOT NULL,
    partner_user_id         TEXT NOT NULL,
    item_name               TEXT NOT NULL,
    amount_total            BIGINT NOT NULL CHECK (amount_total > 0),
    amount_tax_free         BIGINT NOT NULL CHECK (amount_tax_free >= 0),
    amount_vat              BIGINT NOT NULL CHECK (amount_vat >= 0),
    billing_interval        TEXT NOT NULL,
    interval_count          BIGINT NOT NULL CHECK (interval_count BETWEEN 1 AND 365),
    trial_days              BIGINT NOT NULL CHECK (trial_days BETWEEN 0 AND 730),
    return_url              TEXT,
    registration_payment_id TEXT NOT NULL UNIQUE REFERENCES payments (id),
    sid_sealed              TEXT,
    sid_last4               TEXT,
    registered_at           BIGINT,
    billing_anchor          BIGINT,
    next_period             BIGINT NOT NULL DEFAULT 0,
    next_charge_at          BIGINT,
    dunning_started_at      BIGINT,
    dunning_retries         BIGINT NOT NULL DEFAULT 0,
    cancel_at_period_end    BIGINT NOT NULL DEFAULT 0,
    canceled_at             BIGINT,
    cancel_reason           TEXT,
    inactivated_at          BIGINT,
    last_charged_at         BIGINT,
    last_kakaopay_approved_at BIGINT,
    idempotency_key         TEXT,
    lease_owner             TEXT,
    lease_until             BIGINT,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL
);
CREATE INDEX subscriptions_created ON subscriptions (created_at DESC, id DESC);
CREATE INDEX subscriptions_status_created ON subscriptions (status, created_at DESC);
CREATE INDEX subscriptions_due ON subscriptions (next_charge_at) WHERE next_charge_at IS NOT NULL;
CREATE INDEX subscriptions_user ON subscriptions (partner_user_id);
CREATE UNIQUE INDEX subscriptions_idempotency_key ON subscriptions (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Every charge attempt, committed before its call. The database makes a second success for one
-- period impossible (subscription_charges_paid), and a second call while one is out or unclear
-- (subscription_charges_open: one open attempt per subscription, renewal or extra).
CREATE TABLE subscription_charges (
    id                   TEXT PRIMARY KEY,
    subscription_id      TEXT NOT NULL REFERENCES subscriptions (id),
    kind                 TEXT NOT NULL,
    period               BIGINT,
    attempt              BIGINT NOT NULL,
    status               TEXT NOT NULL,
    amount_total         BIGINT NOT NULL CHECK (amount_total > 0),
    amount_tax_free      BIGINT NOT NULL,
    amount_vat           BIGINT NOT NULL,
    item_name            TEXT NOT NULL,
    partner_order_id     TEXT NOT NULL,
    payment_id           TEXT REFERENCES payments (id),
    failure              TEXT,
    kakaopay_code        BIGINT,
    message              TEXT,
    attempted_at         BIGINT NOT NULL,
    finished_at          BIGINT,
    kakaopay_approved_at BIGINT,
    idempotency_key      TEXT,
    check_attempts       BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX subscription_charges_paid ON subscription_charges (subscription_id, period)
    WHERE status = 'succeeded' AND period IS NOT NULL;
CREATE UNIQUE INDEX subscription_charges_open ON subscription_charges (subscription_id)
    WHERE status IN ('pending', 'unknown');
CREATE UNIQUE INDEX subscription_charges_key ON subscription_charges (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX subscription_charges_sub ON subscription_charges (subscription_id, attempted_at, id);
CREATE INDEX subscription_charges_status ON subscription_charges (status) WHERE status IN ('pending', 'unknown');

CREATE TABLE subscription_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id),
    from_status     TEXT,
    to_status       TEXT NOT NULL,
    cause           TEXT NOT NULL,
    upstream_code   BIGINT,
    detail          TEXT,
    at              BIGINT NOT NULL
);
CREATE INDEX subscription_events_sub ON subscription_events (subscription_id, id);
