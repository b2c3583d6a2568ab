-- syncctl sync state store: the PostgreSQL schema, for DBAs.
--
-- syncctl applies it itself (embedded migrations, tracked in _sqlx_migrations) the first time
-- `syncctl sync run` opens a postgres:// state store; with `?schema=NAME` in the state URL the
-- tables live in that schema (created if missing). To provision by hand instead, run the
-- statements below as the owner of that schema. Everything after this header is
-- crates/syncctl-sync/migrations/postgres/*.sql in order, verbatim (a test keeps it so).

-- syncctl sync state store, PostgreSQL. Embedded in the binary (sqlx::migrate!) and applied
-- by `syncctl sync run`; docs/sync_schema.sql is a copy for DBAs (a test keeps them equal).

-- One row per run of a sync (dry runs are never recorded).
CREATE TABLE sync_run (
    run_id      text PRIMARY KEY,
    sync_name   text NOT NULL,
    direction   text NOT NULL,
    status      text NOT NULL,            -- running | succeeded | failed | interrupted
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    invoked_by  text NOT NULL,            -- user@host and orchestrator context
    args        jsonb NOT NULL,           -- effective settings (never secrets)
    counts      jsonb,                    -- the result's source/target/conflicts counts
    error       text
);
CREATE INDEX sync_run_by_sync ON sync_run (sync_name, started_at DESC);

-- A matched pair of records and the field values both sides had when last synced (the base
-- of the three-way merge).
CREATE TABLE sync_link (
    link_id           bigserial PRIMARY KEY,
    sync_name         text NOT NULL,
    source_key        text NOT NULL,
    target_key        text NOT NULL,
    natural_key       text,
    base              jsonb NOT NULL,
    source_updated_at timestamptz,
    target_updated_at timestamptz,
    source_deleted    boolean NOT NULL DEFAULT false,
    target_deleted    boolean NOT NULL DEFAULT false,
    created_run       text NOT NULL,
    updated_run       text NOT NULL,
    updated_at        timestamptz NOT NULL,
    UNIQUE (sync_name, source_key),
    UNIQUE (sync_name, target_key)
);

-- The per-record audit. Rows are written as `planned` before anything is sent, then updated
-- with the outcome; a run killed in between leaves them `planned` and the next run marks
-- them `interrupted`.
CREATE TABLE sync_change (
    change_id   bigserial PRIMARY KEY,
    run_id      text NOT NULL REFERENCES sync_run (run_id),
    seq         integer NOT NULL,
    link_id     bigint,
    side        text NOT NULL,            -- source | target
    record_key  text,
    action      text NOT NULL,            -- create | update | delete | archive | link | conflict | reject
    before      jsonb,
    after       jsonb,
    status      text NOT NULL,            -- planned | applied | failed | rejected | queued | stale | not_found | skipped | interrupted
    error       text,
    created_at  timestamptz NOT NULL,
    finished_at timestamptz
);
CREATE INDEX sync_change_by_run ON sync_change (run_id, seq);
CREATE INDEX sync_change_by_link ON sync_change (link_id);

-- Fields changed to different values on both sides since the base.
CREATE TABLE sync_conflict (
    conflict_id  bigserial PRIMARY KEY,
    sync_name    text NOT NULL,
    link_id      bigint NOT NULL,
    source_key   text NOT NULL,
    target_key   text NOT NULL,
    fields       jsonb NOT NULL,          -- {"field": {"base": …, "source": …, "target": …}}
    strategy     text NOT NULL,
    status       text NOT NULL,           -- open | resolved | applied | auto_resolved | superseded
    resolution   jsonb,                   -- {"keep": "source"} | {"keep": "target"} | {"values": {…}}
    detected_run text NOT NULL,
    detected_at  timestamptz NOT NULL,
    resolved_by  text,
    resolved_at  timestamptz,
    applied_run  text,
    applied_at   timestamptz
);
CREATE INDEX sync_conflict_by_sync ON sync_conflict (sync_name, status);
CREATE UNIQUE INDEX sync_conflict_one_open_per_link ON sync_conflict (link_id)
    WHERE status IN ('open', 'resolved');

-- Incremental read positions (the last modified time seen), per side.
CREATE TABLE sync_cursor (
    sync_name  text NOT NULL,
    side       text NOT NULL,
    value      timestamptz NOT NULL,
    run_id     text NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (sync_name, side)
);

-- Records to read again on the next run whatever their cursor says (failed, rejected, stale,
-- skipped because a breaker opened).
CREATE TABLE sync_pending (
    sync_name  text NOT NULL,
    side       text NOT NULL,
    record_key text NOT NULL,
    reason     text NOT NULL,
    run_id     text NOT NULL,
    attempts   integer NOT NULL,
    PRIMARY KEY (sync_name, side, record_key)
);

-- Circuit-breaker state per connector endpoint, shared by every run and pod.
CREATE TABLE sync_breaker (
    endpoint   text PRIMARY KEY,
    state      jsonb NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Who holds a sync. On PostgreSQL the lock itself is pg_try_advisory_lock; this row says who.
CREATE TABLE sync_lock (
    sync_name   text PRIMARY KEY,
    owner       text NOT NULL,
    host        text NOT NULL,
    pid         integer NOT NULL,
    acquired_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);

-- Which record a change came from (the other side's key), so that the next run can adopt a
-- record a killed run created before it could link it.
ALTER TABLE sync_change ADD COLUMN origin_key text;

-- What each sync is bound to: both connectors' kind, endpoint and object, the key rule and the
-- field mapping. State (links, base values) only makes sense against these; a run whose config
-- points elsewhere is refused unless it is rebound deliberately (`--rebind`).
CREATE TABLE sync_binding (
    sync_name   text PRIMARY KEY,
    binding     jsonb NOT NULL,         -- {source, target, key, fields}
    fingerprint text NOT NULL,          -- sha256 of the binding JSON
    bound_run   text NOT NULL,
    bound_at    timestamptz NOT NULL
);

-- Secrets that change between runs and must survive them (a QuickBooks refresh token Intuit
-- rotated). `value` is `aes-256-gcm:` + base64(nonce || ciphertext || tag) when
-- SYNCCTL_STATE_KEY was set at save time (the name is the associated data, so a value cannot
-- be moved to another name), else `plain:` + the value; see docs/connectors/quickbooks.md.
CREATE TABLE sync_credential (
    name       text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Each audit row is inserted `planned` and updated once with its outcome. No query looks audit
-- rows up by link, so that index only cost an entry per insert and another per update; without
-- it, and with room left on each page, the outcome is written beside the row (a HOT update)
-- instead of adding a version to every index (measured: the outcome UPDATE of a 1 000-row
-- page took half the time).
DROP INDEX IF EXISTS sync_change_by_link;
ALTER TABLE sync_change SET (fillfactor = 50);
