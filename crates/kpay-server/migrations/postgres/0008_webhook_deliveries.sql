-- Deliveries of events to webhook endpoints. The fan-out follows the events feed with one
-- cursor (webhook_fanout, locked by whichever instance fans out) and adds a delivery per
-- endpoint that wants the event; workers lease due deliveries (FOR UPDATE SKIP LOCKED on
-- PostgreSQL: each to one instance), send them and record every attempt. A lease that runs
-- out (a crash mid-delivery) makes the delivery due again: it is sent again with the same
-- webhook-id.
CREATE TABLE webhook_deliveries (
    event_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    -- Attempts of this round (a redeliver starts a new round); every attempt ever made is in
    -- webhook_attempts.
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    lease_owner TEXT,
    lease_until BIGINT,
    last_status_code BIGINT,
    last_error TEXT,
    event_created_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    delivered_at BIGINT,
    PRIMARY KEY (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at);

CREATE TABLE webhook_attempts (
    id BIGSERIAL PRIMARY KEY,
    event_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    status_code BIGINT,
    error TEXT,
    response TEXT
);
CREATE INDEX webhook_attempts_event ON webhook_attempts (event_id, id);

CREATE TABLE webhook_fanout (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    cursor_tx BIGINT NOT NULL,
    cursor_seq BIGINT NOT NULL
);
INSERT INTO webhook_fanout (id, cursor_tx, cursor_seq) VALUES (1, 0, 0);

-- Since when every attempt to the endpoint failed (cleared by a success): five days of that
-- disables it.
ALTER TABLE webhook_endpoints ADD COLUMN failing_since BIGINT;
