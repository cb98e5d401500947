-- Events (contract §6), written in the same transaction as the change they tell of (a
-- transactional outbox): an event exists if and only if its change happened. `data` is
-- {"object": …} with the object as the API showed it right after the change; `object_version`
-- is the object's version then (it grows with every change), so receivers can drop stale events.
ALTER TABLE payments ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE subscriptions ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
-- PostgreSQL numbers rows when they are inserted, not when they commit: a reader that saw seq
-- 11 could miss 10 committing after it. So the feed is ordered by (tx, seq) and only shows
-- transactions older than every one still running (pg_snapshot_xmin): nothing can appear
-- behind a cursor later.
-- Two indexes only (every renewal writes two events): the id, and the feed's order (a type
-- filter reads along it).
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    seq BIGSERIAL NOT NULL,
    tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
    type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    object_version BIGINT NOT NULL,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX events_order ON events (tx, seq);
