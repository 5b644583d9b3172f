-- The messages projection, version 1, built from im.conv.<conversationID>.msg events.
--
-- messages_v1: every stored message by (conversation, seq), the event body as JSON.
-- client_msg_ids_v1: the first seq each (conversation, clientMsgID) got; a resend beyond the
--   log's duplicate window is answered from here, so one clientMsgID never makes two messages.
--   Kept apart from messages_v1 so that every seq has its row, whatever happens.
-- conversation_seqs_v1: each conversation's max seq and the time of its last message.
-- user_conversations_v1: which conversations a user has (rows made by the first message:
--   both sides of a single chat and its n_ twin, the receiver of a notification session).
CREATE TABLE messages_v1 (
    conversation_id text    NOT NULL,
    seq             bigint  NOT NULL,
    client_msg_id   text    NOT NULL,
    server_msg_id   text    NOT NULL,
    send_id         text    NOT NULL,
    send_time       bigint  NOT NULL,
    content_type    integer NOT NULL,
    body            jsonb   NOT NULL,
    stream_sequence bigint  NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);

CREATE TABLE client_msg_ids_v1 (
    conversation_id text   NOT NULL,
    client_msg_id   text   NOT NULL,
    seq             bigint NOT NULL,
    PRIMARY KEY (conversation_id, client_msg_id)
);

CREATE TABLE conversation_seqs_v1 (
    conversation_id text   PRIMARY KEY,
    max_seq         bigint NOT NULL,
    max_seq_time    bigint NOT NULL
);

CREATE TABLE user_conversations_v1 (
    owner_user_id     text    NOT NULL,
    conversation_id   text    NOT NULL,
    conversation_type integer NOT NULL,
    user_id           text    NOT NULL,
    group_id          text    NOT NULL,
    PRIMARY KEY (owner_user_id, conversation_id)
);

INSERT INTO projections (name, version, active) VALUES ('messages', 1, true);
