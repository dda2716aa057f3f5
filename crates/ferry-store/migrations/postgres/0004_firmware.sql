-- Firmware metadata managed by operators and published as TUF targets `firmware/{id}.json`
-- (kept in step with ../sqlite/0004_firmware.sql). `content` is the canonical JSON document.

CREATE TABLE firmware (
    id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    content    BYTEA  NOT NULL,
    updated_at BIGINT NOT NULL
);
