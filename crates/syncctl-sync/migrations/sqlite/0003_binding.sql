-- What each sync is bound to: both connectors' kind, endpoint and object, the key rule and the
-- field mapping. State (links, base values) only makes sense against these; a run whose config
-- points elsewhere is refused unless it is rebound deliberately (`--rebind`).
CREATE TABLE sync_binding (
    sync_name   text PRIMARY KEY,
    binding     TEXT NOT NULL,          -- JSON: {source, target, key, fields}
    fingerprint text NOT NULL,          -- sha256 of the binding JSON
    bound_run   text NOT NULL,
    bound_at    TEXT NOT NULL
);
