-- codis-fe's own state: users and their roles, browser sessions, API tokens, product lines
-- registered through the API, isolation settings, the audit history and metric history.
-- Times are milliseconds since the Unix epoch.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    global_admin  INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until  INTEGER NOT NULL DEFAULT 0
);

-- A role granted on one product line; product '*' grants it on every product line.
CREATE TABLE user_roles (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    product TEXT    NOT NULL,
    role    TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    PRIMARY KEY (user_id, product)
);

-- Browser sessions: only the SHA-256 of the cookie value is kept.
CREATE TABLE sessions (
    id_hash    TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
);

-- API tokens for tools: only the SHA-256 of the token is kept; products is a JSON array.
CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    token_hash TEXT    NOT NULL UNIQUE,
    role       TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    products   TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

-- Product lines registered through the API (the others come from the coordinator or a list).
CREATE TABLE products (
    name       TEXT    PRIMARY KEY,
    dashboard  TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE isolation (
    product TEXT PRIMARY KEY,
    mode    TEXT NOT NULL CHECK (mode IN ('physical', 'logical'))
);

-- The audit history. A change is inserted with outcome NULL before it is sent to the
-- dashboard and completed once (outcome, status, duration) after; nothing else may change it.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    time        INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    product     TEXT,
    action      TEXT    NOT NULL,
    target      TEXT,
    params      TEXT,
    outcome     TEXT,
    status      INTEGER,
    duration_ms INTEGER
);
CREATE INDEX audit_product_time ON audit (product, time);
CREATE INDEX audit_time ON audit (time);

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit history is append-only');
END;

CREATE TRIGGER audit_complete_once BEFORE UPDATE ON audit
WHEN OLD.outcome IS NOT NULL
  OR NEW.outcome IS NULL
  OR NEW.id IS NOT OLD.id OR NEW.time IS NOT OLD.time OR NEW.actor IS NOT OLD.actor
  OR NEW.source IS NOT OLD.source OR NEW.product IS NOT OLD.product
  OR NEW.action IS NOT OLD.action OR NEW.target IS NOT OLD.target OR NEW.params IS NOT OLD.params
BEGIN
    SELECT RAISE(ABORT, 'the audit history is append-only');
END;

-- Samples of each product line's totals, for charts (kept 7 days).
CREATE TABLE history (
    product TEXT    NOT NULL,
    time    INTEGER NOT NULL,
    ops     INTEGER NOT NULL,
    memory  INTEGER NOT NULL,
    keys    INTEGER NOT NULL,
    PRIMARY KEY (product, time)
);
