-- The groups projection, version 1: groups, their members and join applications, built from
-- im.conv.sg_<groupID>.group. Every event of a group is on that one subject, so the group
-- row's stream_sequence (the last event applied to the group) guards all of the group's rows:
-- an event at or below it is skipped, which makes a replay change nothing.
CREATE TABLE groups_v1 (
    group_id                 text    PRIMARY KEY,
    group_name               text    NOT NULL,
    face_url                 text    NOT NULL,
    notification             text    NOT NULL,
    introduction             text    NOT NULL,
    ex                       text    NOT NULL,
    owner_user_id            text    NOT NULL,
    creator_user_id          text    NOT NULL,
    group_type               integer NOT NULL,
    -- 0 ok, 2 dismissed, 3 muted.
    status                   integer NOT NULL,
    need_verification        integer NOT NULL,
    look_member_info         integer NOT NULL,
    apply_member_friend      integer NOT NULL,
    create_time              bigint  NOT NULL,
    notification_update_time bigint  NOT NULL,
    notification_user_id     text    NOT NULL,
    stream_sequence          bigint  NOT NULL
);

CREATE INDEX groups_v1_by_create_time ON groups_v1 (create_time);

-- Current members only: a member who leaves is deleted (the group's stream_sequence keeps a
-- replay from bringing them back).
CREATE TABLE group_members_v1 (
    group_id         text    NOT NULL,
    user_id          text    NOT NULL,
    nickname         text    NOT NULL,
    face_url         text    NOT NULL,
    role_level       integer NOT NULL,
    join_time        bigint  NOT NULL,
    join_source      integer NOT NULL,
    inviter_user_id  text    NOT NULL,
    operator_user_id text    NOT NULL,
    mute_end_time    bigint  NOT NULL,
    ex               text    NOT NULL,
    PRIMARY KEY (group_id, user_id)
);

CREATE INDEX group_members_v1_by_user ON group_members_v1 (user_id);

-- One application per (group, user): a new one replaces the old.
CREATE TABLE group_requests_v1 (
    group_id        text    NOT NULL,
    user_id         text    NOT NULL,
    req_msg         text    NOT NULL,
    join_source     integer NOT NULL,
    inviter_user_id text    NOT NULL,
    ex              text    NOT NULL,
    req_time        bigint  NOT NULL,
    -- 0 pending, 1 accepted, -1 refused.
    handle_result   integer NOT NULL,
    handled_msg     text    NOT NULL,
    handle_user_id  text    NOT NULL,
    handle_time     bigint  NOT NULL,
    PRIMARY KEY (group_id, user_id)
);

CREATE INDEX group_requests_v1_by_user ON group_requests_v1 (user_id, req_time);

-- Version logs as conversation_versions_v1: each user's joined groups (elements: group IDs)
-- and each group's members (elements: user IDs, '' for the group's own info, and the sort
-- marker '____S_O_R_T_I_D____' for role changes).
CREATE TABLE joined_group_versions_v1 (
    owner_id   text   PRIMARY KEY,
    version_id text   NOT NULL,
    version    bigint NOT NULL
);

CREATE TABLE joined_group_changes_v1 (
    owner_id   text     NOT NULL,
    element_id text     NOT NULL,
    state      smallint NOT NULL,
    version    bigint   NOT NULL,
    PRIMARY KEY (owner_id, element_id)
);

CREATE INDEX joined_group_changes_v1_by_version ON joined_group_changes_v1 (owner_id, version);

CREATE TABLE group_member_versions_v1 (
    owner_id   text   PRIMARY KEY,
    version_id text   NOT NULL,
    version    bigint NOT NULL
);

CREATE TABLE group_member_changes_v1 (
    owner_id   text     NOT NULL,
    element_id text     NOT NULL,
    state      smallint NOT NULL,
    version    bigint   NOT NULL,
    PRIMARY KEY (owner_id, element_id)
);

CREATE INDEX group_member_changes_v1_by_version ON group_member_changes_v1 (owner_id, version);

-- The groups projection also writes members' rows in user_conversations_v1: it creates the
-- sg_ and n_ rows on joining, raises min_seq when history for new members is off, and sets
-- max_seq (the last seq they may read; 0 is no cap) when they leave, back to 0 on rejoining.

INSERT INTO projections (name, version, active) VALUES ('groups', 1, true);
