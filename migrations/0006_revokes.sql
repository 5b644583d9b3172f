-- Revoked messages keep their row; `revoked` holds the msg.revoked event, and reads render
-- the message as OpenIM's revoked message (contentType 2101).
ALTER TABLE messages_v1 ADD COLUMN revoked jsonb;
