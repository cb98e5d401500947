-- Events (contract §6), written in the same transaction as the change they tell of (a
-- transactional outbox): an event exists if and only if its change happened. `data` is
-- {"object": …} with the object as the API showed it right after the change; `object_version`
-- is the object's version then (it grows with every change), so receivers can drop stale events.
ALTER TABLE payments ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE subscriptions ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
-- SQLite has one writer: `seq` (the rowid) is commit order. No index on type: a type filter
-- reads along seq (every renewal writes two events).
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    object_version BIGINT NOT NULL,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
