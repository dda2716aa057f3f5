-- Security alerts from device preflight and the rollout halts they cause (kept in step with
-- ../postgres/0003_alerts.sql).

CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at INTEGER NOT NULL,
    device_id   TEXT    NOT NULL,
    component   TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    stage       TEXT    NOT NULL,
    findings    TEXT    NOT NULL, -- JSON array of {severity, rule, location, message}
    evidence    TEXT    NOT NULL, -- JSON array of {kind, detail}
    detected_at INTEGER NOT NULL,
    message     TEXT    NOT NULL
);
CREATE INDEX alerts_newest ON alerts (received_at DESC, id DESC);

-- A release listed here is offered to no device; the first alert that halted it is kept
-- until an operator resumes the release (which deletes the row).
CREATE TABLE release_halts (
    component TEXT    NOT NULL,
    version   TEXT    NOT NULL,
    alert_id  INTEGER NOT NULL REFERENCES alerts (id),
    since     INTEGER NOT NULL,
    PRIMARY KEY (component, version),
    FOREIGN KEY (component, version) REFERENCES releases (component, version) ON DELETE CASCADE
);
