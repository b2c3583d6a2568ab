-- Secrets that change between runs and must survive them (a QuickBooks refresh token Intuit
-- rotated). `value` is `aes-256-gcm:` + base64(nonce || ciphertext || tag) when
-- SYNCCTL_STATE_KEY was set at save time (the name is the associated data, so a value cannot
-- be moved to another name), else `plain:` + the value; see docs/connectors/quickbooks.md.
CREATE TABLE sync_credential (
    name       text PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
