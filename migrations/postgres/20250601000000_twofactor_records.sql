-- twofactor: one row per user holding all of their 2FA state (see twofactor::store::sql).
CREATE TABLE IF NOT EXISTS twofactor_records (
    user_id    TEXT        NOT NULL PRIMARY KEY,
    version    BIGINT      NOT NULL CHECK (version > 0),
    record     JSONB       NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
