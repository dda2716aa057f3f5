-- Delta packages per release and per-device delta-failure records (kept in step with
-- ../sqlite/0002_deltas.sql).

CREATE TABLE release_deltas (
    component    TEXT COLLATE "C" NOT NULL,
    to_version   TEXT COLLATE "C" NOT NULL,
    from_version TEXT COLLATE "C" NOT NULL,
    target_name  TEXT   NOT NULL,
    length       BIGINT NOT NULL,
    sha256       TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (component, to_version, from_version),
    FOREIGN KEY (component, to_version) REFERENCES releases (component, version) ON DELETE CASCADE
);

-- One standing record per device and component: the newest failure replaces an older one,
-- a successful full install deletes it.
CREATE TABLE delta_failures (
    device_id    TEXT COLLATE "C" NOT NULL,
    component    TEXT COLLATE "C" NOT NULL,
    from_version TEXT   NOT NULL,
    to_version   TEXT   NOT NULL,
    target_name  TEXT   NOT NULL,
    state        TEXT   NOT NULL,
    reason       TEXT   NOT NULL,
    files        TEXT   NOT NULL, -- JSON array of {path, expected, found}
    failed_at    BIGINT NOT NULL,
    PRIMARY KEY (device_id, component)
);
