-- Conversation rows carry the owner's settings. Rows are made by the messages projection
-- (first message) or by the conversation_settings projection (set_conversations on a missing
-- row); settings change only through im.user.<owner>.conversation events, and
-- settings_sequence (an IM_USER sequence) guards them against replays.
ALTER TABLE user_conversations_v1
    ADD COLUMN recv_msg_opt             integer NOT NULL DEFAULT 0,
    ADD COLUMN is_pinned                boolean NOT NULL DEFAULT false,
    ADD COLUMN attached_info            text    NOT NULL DEFAULT '',
    ADD COLUMN is_private_chat          boolean NOT NULL DEFAULT false,
    ADD COLUMN group_at_type            integer NOT NULL DEFAULT 0,
    ADD COLUMN ex                       text    NOT NULL DEFAULT '',
    ADD COLUMN burn_duration            integer NOT NULL DEFAULT 0,
    ADD COLUMN min_seq                  bigint  NOT NULL DEFAULT 0,
    ADD COLUMN max_seq                  bigint  NOT NULL DEFAULT 0,
    ADD COLUMN msg_destruct_time        bigint  NOT NULL DEFAULT 0,
    ADD COLUMN latest_msg_destruct_time bigint  NOT NULL DEFAULT 0,
    ADD COLUMN is_msg_destruct          boolean NOT NULL DEFAULT false,
    ADD COLUMN settings_sequence        bigint  NOT NULL DEFAULT 0;

INSERT INTO projections (name, version, active) VALUES ('conversation_settings', 1, true);
