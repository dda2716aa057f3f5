-- Firmware metadata managed by operators and published as TUF targets `firmware/{id}.json`
-- (kept in step with ../postgres/0004_firmware.sql). `content` is the canonical JSON document.

CREATE TABLE firmware (
    id         TEXT    NOT NULL PRIMARY KEY,
    content    BLOB    NOT NULL,
    updated_at INTEGER NOT NULL
);
