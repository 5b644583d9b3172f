-- The users projection, version 1: one row per registered user, built from
-- im.user.<userID>.account events. stream_sequence is the IM_USER sequence of the last event
-- applied to the row; older or repeated events are ignored, so replays change nothing.
CREATE TABLE users_v1 (
    user_id             text    PRIMARY KEY,
    nickname            text    NOT NULL,
    face_url            text    NOT NULL,
    ex                  text    NOT NULL,
    app_manger_level    integer NOT NULL,
    global_recv_msg_opt integer NOT NULL,
    -- Milliseconds since the epoch, as OpenIM reports it.
    create_time         bigint  NOT NULL,
    stream_sequence     bigint  NOT NULL
);

CREATE INDEX users_v1_by_create_time ON users_v1 (create_time, user_id);
CREATE INDEX users_v1_by_nickname ON users_v1 (lower(nickname));

INSERT INTO projections (name, version, active) VALUES ('users', 1, true);
