-- The merchant's webhook endpoints (contract §6). The signing secret is sealed with the
-- server's encryption key (the same vault as the SIDs, bound to the endpoint's id); after a
-- rotation the previous one keeps signing until previous_until.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    description TEXT,
    status TEXT NOT NULL CHECK (status IN ('enabled', 'disabled')),
    disabled_reason TEXT,
    secret_sealed TEXT NOT NULL,
    previous_secret_sealed TEXT,
    previous_until BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_created ON webhook_endpoints (created_at, id);
