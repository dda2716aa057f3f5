-- Ferry registry schema, SQLite flavour (kept in step with ../postgres/0001_initial.sql).
-- Versions are stored as their canonical semver text; callers order them with `Version`.
-- u64 values (lengths, Unix milliseconds) are stored as INTEGER and must fit in 63 bits.

CREATE TABLE devices (
    device_id        TEXT    NOT NULL PRIMARY KEY,
    device_type      TEXT    NOT NULL,
    token_sha256     TEXT    NOT NULL,
    group_name       TEXT    NOT NULL DEFAULT 'default',
    upgrader_version TEXT,
    main_version     TEXT,
    last_seen        INTEGER,
    enrolled_at      INTEGER NOT NULL
);
-- One credential identifies one device.
CREATE UNIQUE INDEX devices_token_sha256 ON devices (token_sha256);

CREATE TABLE device_groups (
    group_name TEXT    NOT NULL PRIMARY KEY,
    chunk_size INTEGER NOT NULL CHECK (chunk_size >= 0)
);

CREATE TABLE releases (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    component    TEXT    NOT NULL,
    version      TEXT    NOT NULL,
    device_types TEXT    NOT NULL, -- JSON array of strings
    target_name  TEXT    NOT NULL,
    length       INTEGER NOT NULL,
    sha256       TEXT    NOT NULL,
    go_live      INTEGER,
    created_at   INTEGER NOT NULL,
    UNIQUE (component, version)
);

CREATE TABLE release_blacklist (
    component TEXT NOT NULL,
    version   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    PRIMARY KEY (component, version, device_id),
    FOREIGN KEY (component, version) REFERENCES releases (component, version) ON DELETE CASCADE
);

CREATE TABLE reports (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at      INTEGER NOT NULL,
    device_id        TEXT    NOT NULL,
    component        TEXT    NOT NULL,
    from_version     TEXT    NOT NULL,
    to_version       TEXT    NOT NULL,
    outcome          TEXT    NOT NULL,
    reason           TEXT    NOT NULL,
    log_tail         TEXT    NOT NULL, -- JSON array of strings
    bytes_downloaded INTEGER NOT NULL,
    rolled_back      BOOLEAN NOT NULL
);
CREATE INDEX reports_newest ON reports (received_at DESC, id DESC);
CREATE INDEX reports_device_newest ON reports (device_id, received_at DESC, id DESC);

CREATE TABLE backups (
    device_id  TEXT    NOT NULL,
    component  TEXT    NOT NULL,
    version    TEXT    NOT NULL,
    length     INTEGER NOT NULL,
    sha256     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, component, version)
);

CREATE TABLE tuf_metadata (
    name    TEXT NOT NULL PRIMARY KEY,
    content BLOB NOT NULL
);
