-- Exactly once under crashes (issue: idempotency takeover, retry storms).

-- An Idempotency-Key names an effect: the payment or refund it created carries the key, written in
-- the same transaction as the record, so a retry after a crash finds the effect instead of
-- performing it again.
ALTER TABLE payments ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX payments_idempotency_key ON payments (idempotency_key) WHERE idempotency_key IS NOT NULL;
ALTER TABLE refunds ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX refunds_idempotency_key ON refunds (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- One payment per merchant order that can still be, or has been, paid: the payment holds the
-- order's slot (its partner_order_id) until it ends unpaid (quit, failed, expired), when the slot
-- is set NULL and a new payment may take it. A slot rather than a partial index over the status:
-- the hot path's status changes then never touch the unique index.
ALTER TABLE payments ADD COLUMN order_slot TEXT;
UPDATE payments SET order_slot = partner_order_id
    WHERE status IN ('ready', 'approving', 'approved', 'partially_canceled', 'canceled');
CREATE UNIQUE INDEX payments_order_slot ON payments (order_slot);

-- The lock of an in-flight key belongs to one request, which renews it while it runs.
ALTER TABLE idempotency_keys ADD COLUMN lock_token TEXT;

-- Bounded calls toward KakaoPay per payment:
--   check_attempts: lookups in a row that left the payment unclear (back-off exponent);
--   resend_count:   approve re-sends after a lookup found the buyer authenticated;
--   callback_window/callback_calls: order lookups caused by browser callbacks in the current minute;
--   claim_window/claim_calls: approve claims (each an approve call) in the current minute. Separate,
--   so that forged cancel/fail callbacks cannot spend the real buyer's approve.
ALTER TABLE payments ADD COLUMN check_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE payments ADD COLUMN resend_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE payments ADD COLUMN callback_window BIGINT;
ALTER TABLE payments ADD COLUMN callback_calls BIGINT NOT NULL DEFAULT 0;
ALTER TABLE payments ADD COLUMN claim_window BIGINT;
ALTER TABLE payments ADD COLUMN claim_calls BIGINT NOT NULL DEFAULT 0;

-- Repeated identical outcomes are one event row with a count and the time of the last one.
ALTER TABLE payment_events ADD COLUMN repeats BIGINT NOT NULL DEFAULT 1;
ALTER TABLE payment_events ADD COLUMN last_at BIGINT;
