-- Read state for the messages projection: each member's read position per conversation, and
-- the isRead flag single-chat messages get when the peer reads them. stream_sequence on
-- read_seqs_v1 is the IM_CONV sequence of the last event that moved the row, so a replayed
-- older event cannot move it back.
CREATE TABLE read_seqs_v1 (
    owner_user_id   text   NOT NULL,
    conversation_id text   NOT NULL,
    has_read_seq    bigint NOT NULL,
    stream_sequence bigint NOT NULL,
    PRIMARY KEY (owner_user_id, conversation_id)
);

ALTER TABLE messages_v1 ADD COLUMN is_read boolean NOT NULL DEFAULT false;
