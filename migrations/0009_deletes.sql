-- Deletes and clears. hidden_messages_v1: messages a member deleted for themselves (they read
-- as status 4 with empty content). messages_v1.deleted: deleted for everyone (the seq reads as
-- a placeholder). conversation_seqs_v1.min_seq: cleared for everyone below it; a member's own
-- clear raises user_conversations_v1.min_seq.
CREATE TABLE hidden_messages_v1 (
    owner_user_id   text   NOT NULL,
    conversation_id text   NOT NULL,
    seq             bigint NOT NULL,
    PRIMARY KEY (owner_user_id, conversation_id, seq)
);

ALTER TABLE messages_v1 ADD COLUMN deleted boolean NOT NULL DEFAULT false;
ALTER TABLE conversation_seqs_v1 ADD COLUMN min_seq bigint NOT NULL DEFAULT 0;
