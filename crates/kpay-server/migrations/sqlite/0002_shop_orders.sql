-- The demo shop's own orders: what was bought, and the payment that pays for it.
CREATE TABLE shop_orders (
    id          TEXT PRIMARY KEY,
    payment_id  TEXT,
    guest       TEXT NOT NULL,
    lines       TEXT NOT NULL,
    total       BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
