-- The relations projection, version 1: friend requests, friendships and blocks, built from
-- im.user.<userID>.friend and im.user.<userID>.black. Each row keeps the IM_USER sequence of
-- the last event that changed it; a delete leaves a tombstone (deleted = true) so an older
-- event replayed later cannot bring the row back.
CREATE TABLE friend_requests_v1 (
    from_user_id    text    NOT NULL,
    to_user_id      text    NOT NULL,
    req_msg         text    NOT NULL,
    ex              text    NOT NULL,
    create_time     bigint  NOT NULL,
    -- 0 pending, 1 accepted, -1 refused.
    handle_result   integer NOT NULL,
    handle_msg      text    NOT NULL,
    handler_user_id text    NOT NULL,
    handle_time     bigint  NOT NULL,
    stream_sequence bigint  NOT NULL,
    PRIMARY KEY (from_user_id, to_user_id)
);

CREATE INDEX friend_requests_v1_to ON friend_requests_v1 (to_user_id, create_time);

CREATE TABLE friends_v1 (
    owner_user_id    text    NOT NULL,
    friend_user_id   text    NOT NULL,
    remark           text    NOT NULL,
    is_pinned        boolean NOT NULL,
    ex               text    NOT NULL,
    add_source       integer NOT NULL,
    operator_user_id text    NOT NULL,
    create_time      bigint  NOT NULL,
    deleted          boolean NOT NULL,
    stream_sequence  bigint  NOT NULL,
    PRIMARY KEY (owner_user_id, friend_user_id)
);

CREATE TABLE blacks_v1 (
    owner_user_id    text    NOT NULL,
    black_user_id    text    NOT NULL,
    ex               text    NOT NULL,
    operator_user_id text    NOT NULL,
    create_time      bigint  NOT NULL,
    deleted          boolean NOT NULL,
    stream_sequence  bigint  NOT NULL,
    PRIMARY KEY (owner_user_id, black_user_id)
);

-- Version logs for incremental sync, as conversation_versions_v1 / conversation_changes_v1:
-- per owner a log ID and a counter bumped once per applied batch that changed the owner's
-- rows; per element only its latest change (1 insert, 2 delete, 3 update). The friend log also
-- holds the sort marker element '____S_O_R_T_I_D____', changed whenever a pin changes.
CREATE TABLE friend_versions_v1 (
    owner_user_id text   PRIMARY KEY,
    version_id    text   NOT NULL,
    version       bigint NOT NULL
);

CREATE TABLE friend_changes_v1 (
    owner_user_id text     NOT NULL,
    element_id    text     NOT NULL,
    state         smallint NOT NULL,
    version       bigint   NOT NULL,
    PRIMARY KEY (owner_user_id, element_id)
);

CREATE INDEX friend_changes_v1_by_version ON friend_changes_v1 (owner_user_id, version);

CREATE TABLE black_versions_v1 (
    owner_user_id text   PRIMARY KEY,
    version_id    text   NOT NULL,
    version       bigint NOT NULL
);

CREATE TABLE black_changes_v1 (
    owner_user_id text     NOT NULL,
    element_id    text     NOT NULL,
    state         smallint NOT NULL,
    version       bigint   NOT NULL,
    PRIMARY KEY (owner_user_id, element_id)
);

CREATE INDEX black_changes_v1_by_version ON black_changes_v1 (owner_user_id, version);

INSERT INTO projections (name, version, active) VALUES ('relations', 1, true);
