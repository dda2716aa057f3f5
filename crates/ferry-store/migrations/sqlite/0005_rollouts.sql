-- Staged rollouts: a release's wave plan and the halt its failure threshold may set (kept in
-- step with ../postgres/0005_rollouts.sql).

CREATE TABLE rollouts (
    component     TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    plan          TEXT    NOT NULL, -- JSON ferry_core::rollout::RolloutPlan
    created_at    INTEGER NOT NULL,
    halted_reason TEXT,
    halted_at     INTEGER,
    PRIMARY KEY (component, version),
    FOREIGN KEY (component, version) REFERENCES releases (component, version) ON DELETE CASCADE
);

CREATE INDEX reports_by_release ON reports (component, to_version);
