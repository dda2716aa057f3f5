-- Security alerts from device preflight and the rollout halts they cause (kept in step with
-- ../sqlite/0003_alerts.sql).

CREATE TABLE alerts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at BIGINT NOT NULL,
    device_id   TEXT COLLATE "C" NOT NULL,
    component   TEXT COLLATE "C" NOT NULL,
    version     TEXT COLLATE "C" NOT NULL,
    stage       TEXT   NOT NULL,
    findings    TEXT   NOT NULL, -- JSON array of {severity, rule, location, message}
    evidence    TEXT   NOT NULL, -- JSON array of {kind, detail}
    detected_at BIGINT NOT NULL,
    message     TEXT   NOT NULL
);
CREATE INDEX alerts_newest ON alerts (received_at DESC, id DESC);

-- A release listed here is offered to no device; the first alert that halted it is kept
-- until an operator resumes the release (which deletes the row).
CREATE TABLE release_halts (
    component TEXT COLLATE "C" NOT NULL,
    version   TEXT COLLATE "C" NOT NULL,
    alert_id  BIGINT NOT NULL REFERENCES alerts (id),
    since     BIGINT NOT NULL,
    PRIMARY KEY (component, version),
    FOREIGN KEY (component, version) REFERENCES releases (component, version) ON DELETE CASCADE
);
