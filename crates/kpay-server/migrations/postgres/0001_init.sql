-- Payments: one row per KakaoPay TID, the merchant's truth about every won.
CREATE TABLE payments (
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
    amount_total          BIGINT NOT NULL CHECK (amount_total > 0),
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
    CHECK (canceled_total <= amount_total)
);
CREATE INDEX payments_created ON payments (created_at DESC, id DESC);
CREATE INDEX payments_status_created ON payments (status, created_at DESC);
CREATE INDEX payments_partner_order ON payments (partner_order_id);
CREATE INDEX payments_next_check ON payments (next_check_at) WHERE next_check_at IS NOT NULL;

-- Refunds: each a record with its own AID and status.
CREATE TABLE refunds (
    id              TEXT PRIMARY KEY,
    payment_id      TEXT NOT NULL REFERENCES payments (id),
    status          TEXT NOT NULL,
    amount          BIGINT NOT NULL CHECK (amount > 0),
    tax_free        BIGINT NOT NULL,
    vat             BIGINT NOT NULL,
    green_deposit   BIGINT NOT NULL DEFAULT 0,
    cancelable_before BIGINT NOT NULL,
    reason          TEXT,
    aid             TEXT UNIQUE,
    failure_code    TEXT,
    failure_message TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX refunds_payment ON refunds (payment_id, created_at);

-- Append-only log of every change: before, after, cause, upstream code, time.
CREATE TABLE payment_events (
    id            BIGSERIAL PRIMARY KEY,
    payment_id    TEXT NOT NULL REFERENCES payments (id),
    from_status   TEXT,
    to_status     TEXT NOT NULL,
    cause         TEXT NOT NULL,
    upstream_code BIGINT,
    detail        TEXT,
    at            BIGINT NOT NULL
);
CREATE INDEX payment_events_payment ON payment_events (payment_id, id);

CREATE TABLE idempotency_keys (
    key             TEXT PRIMARY KEY,
    request_hash    TEXT NOT NULL,
    state           TEXT NOT NULL,
    response_status BIGINT,
    response_body   TEXT,
    created_at      BIGINT NOT NULL,
    locked_until    BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    key_hash   TEXT NOT NULL UNIQUE,
    prefix     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE reconciler_runs (
    id          TEXT PRIMARY KEY,
    instance    TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    checked     BIGINT NOT NULL,
    changed     BIGINT NOT NULL,
    mismatches  BIGINT NOT NULL
);
CREATE INDEX reconciler_runs_started ON reconciler_runs (started_at DESC);
