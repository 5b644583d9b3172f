-- `jetim ops rebuild` replaces a read model's tables with copies rebuilt from the log. The
-- registry says when each projection's tables were last rebuilt, and how many times.
ALTER TABLE projections
    ADD COLUMN rebuilt_at timestamptz,
    ADD COLUMN rebuilds   integer NOT NULL DEFAULT 0;
