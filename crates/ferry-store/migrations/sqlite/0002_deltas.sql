-- Delta packages per release and per-device delta-failure records (kept in step with
-- ../postgres/0002_deltas.sql).

CREATE TABLE release_deltas (
    component    TEXT    NOT NULL,
    to_version   TEXT    NOT NULL,
    from_version TEXT    NOT NULL,
    target_name  TEXT    NOT NULL,
    length       INTEGER NOT NULL,
    sha256       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (component, to_version, from_version),
    FOREIGN KEY (component, to_version) REFERENCES releases (component, version) ON DELETE CASCADE
);

-- One standing record per device and component: the newest failure replaces an older one,
-- a successful full install deletes it.
CREATE TABLE delta_failures (
    device_id    TEXT    NOT NULL,
    component    TEXT    NOT NULL,
    from_version TEXT    NOT NULL,
    to_version   TEXT    NOT NULL,
    target_name  TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    reason       TEXT    NOT NULL,
    files        TEXT    NOT NULL, -- JSON array of {path, expected, found}
    failed_at    INTEGER NOT NULL,
    PRIMARY KEY (device_id, component)
);
