-- Ferry registry schema, PostgreSQL flavour (kept in step with ../sqlite/0001_initial.sql).
-- Text keys use the "C" collation so ORDER BY matches byte order (and Rust's `str` order)
-- whatever the database's default collation is.
-- Versions are stored as their canonical semver text; callers order them with `Version`.

CREATE TABLE devices (
    device_id        TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    device_type      TEXT   NOT NULL,
    token_sha256     TEXT   NOT NULL,
    group_name       TEXT   NOT NULL DEFAULT 'default',
    upgrader_version TEXT,
    main_version     TEXT,
    last_seen        BIGINT,
    enrolled_at      BIGINT NOT NULL
);
-- One credential identifies one device.
CREATE UNIQUE INDEX devices_token_sha256 ON devices (token_sha256);

CREATE TABLE device_groups (
    group_name TEXT   NOT NULL PRIMARY KEY,
    chunk_size BIGINT NOT NULL CHECK (chunk_size >= 0)
);

CREATE TABLE releases (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    component    TEXT COLLATE "C" NOT NULL,
    version      TEXT COLLATE "C" NOT NULL,
    device_types TEXT   NOT NULL, -- JSON array of strings
    target_name  TEXT   NOT NULL,
    length       BIGINT NOT NULL,
    sha256       TEXT   NOT NULL,
    go_live      BIGINT,
    created_at   BIGINT NOT NULL,
    UNIQUE (component, version)
);

CREATE TABLE release_blacklist (
    component TEXT COLLATE "C" NOT NULL,
    version   TEXT COLLATE "C" NOT NULL,
    device_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (component, version, device_id),
    FOREIGN KEY (component, version) REFERENCES releases (component, version) ON DELETE CASCADE
);

CREATE TABLE reports (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at      BIGINT  NOT NULL,
    device_id        TEXT COLLATE "C" NOT NULL,
    component        TEXT    NOT NULL,
    from_version     TEXT    NOT NULL,
    to_version       TEXT    NOT NULL,
    outcome          TEXT    NOT NULL,
    reason           TEXT    NOT NULL,
    log_tail         TEXT    NOT NULL, -- JSON array of strings
    bytes_downloaded BIGINT  NOT NULL,
    rolled_back      BOOLEAN NOT NULL
);
CREATE INDEX reports_newest ON reports (received_at DESC, id DESC);
CREATE INDEX reports_device_newest ON reports (device_id, received_at DESC, id DESC);

CREATE TABLE backups (
    device_id  TEXT COLLATE "C" NOT NULL,
    component  TEXT COLLATE "C" NOT NULL,
    version    TEXT COLLATE "C" NOT NULL,
    length     BIGINT NOT NULL,
    sha256     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, component, version)
);

CREATE TABLE tuf_metadata (
    name    TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    content BYTEA NOT NULL
);
