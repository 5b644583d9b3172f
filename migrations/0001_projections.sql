-- The registry of read-model projections. Each projection version reads the log with its own
-- durable consumer (<name>_v<version>) into its own tables; exactly one version of a
-- projection is active (serving reads) at a time. `jetim ops rebuild` adds a version, fills
-- it from stream sequence 1, and switches `active` in one transaction when it has caught up.
CREATE TABLE projections (
    name            text        NOT NULL,
    version         integer     NOT NULL CHECK (version > 0),
    active          boolean     NOT NULL DEFAULT false,
    -- The highest stream sequence whose effects are committed in this version's tables.
    stream_sequence bigint      NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    activated_at    timestamptz,
    PRIMARY KEY (name, version)
);

CREATE UNIQUE INDEX projections_one_active ON projections (name) WHERE active;
