-- The user_settings projection, version 1: users' commands and client configuration, built
-- from im.user.<userID>.command and im.user.<userID>.config (user_id '' = app-wide entries).
-- A deletion leaves a tombstone (deleted = true) carrying its stream sequence, so an older
-- event replayed later cannot bring the row back.
CREATE TABLE user_commands_v1 (
    user_id         text    NOT NULL,
    command_type    integer NOT NULL,
    uuid            text    NOT NULL,
    value           text    NOT NULL,
    ex              text    NOT NULL,
    create_time     bigint  NOT NULL,
    deleted         boolean NOT NULL DEFAULT false,
    stream_sequence bigint  NOT NULL,
    PRIMARY KEY (user_id, command_type, uuid)
);

CREATE TABLE client_configs_v1 (
    user_id         text    NOT NULL,
    key             text    NOT NULL,
    value           text    NOT NULL,
    deleted         boolean NOT NULL DEFAULT false,
    stream_sequence bigint  NOT NULL,
    PRIMARY KEY (user_id, key)
);

INSERT INTO projections (name, version, active) VALUES ('user_settings', 1, true);
