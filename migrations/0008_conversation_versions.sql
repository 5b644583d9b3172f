-- The version log of each owner's conversations (OpenIM's incremental sync): a log ID, a
-- counter bumped once per applied batch that changed the owner's rows, and per conversation
-- only its latest change (1 insert, 2 delete, 3 update) with the version it happened at.
-- A rebuild makes new log IDs, so clients resynchronise in full, as they should.
CREATE TABLE conversation_versions_v1 (
    owner_user_id text   PRIMARY KEY,
    version_id    text   NOT NULL,
    version       bigint NOT NULL
);

CREATE TABLE conversation_changes_v1 (
    owner_user_id   text     NOT NULL,
    conversation_id text     NOT NULL,
    state           smallint NOT NULL,
    version         bigint   NOT NULL,
    PRIMARY KEY (owner_user_id, conversation_id)
);

CREATE INDEX conversation_changes_v1_by_version ON conversation_changes_v1 (owner_user_id, version);
