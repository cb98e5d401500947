-- Subscriptions (issue 10). A SID-only registration (a trial: KakaoPay's 0-won ready, ISSUED_SID)
-- is a payment of 0 won that belongs to a subscription; every other payment still charges ≥ 1 won.
ALTER TABLE payments ADD COLUMN subscription_id TEXT;
ALTER TABLE payments DROP CONSTRAINT IF EXISTS payments_amount_total_check;
ALTER TABLE payments ADD CONSTRAINT payments_amount_total_check
    CHECK (amount_total > 0 OR (amount_total = 0 AND subscription_id IS NOT NULL));
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
    id              BIGSERIAL PRIMARY KEY,
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id),
    from_status     TEXT,
    to_status       TEXT NOT NULL,
    cause           TEXT NOT NULL,
    upstream_code   BIGINT,
    detail          TEXT,
    at              BIGINT NOT NULL
);
CREATE INDEX subscription_events_sub ON subscription_events (subscription_id, id);
