-- A message row costs less to write: the rebuild's speed and the projection's share of a
-- chat message are mostly Postgres inserting these rows (docs/performance.md, rebuild).
--
-- messages_v1.body becomes text: the event exactly as the log holds it, which is what every
-- reader decodes anyway. As jsonb, each insert parsed the JSON and wrote it again in
-- binary form; that was about a third of the insert. The search by receiver and session
-- type parses the bodies it scans instead. jsonb also refused any body holding the escape
-- of a NUL character (JSON allows it in a nickname, say): the projection retried that
-- batch for ever and every message after it waited. The revocation goes to text too.
--
-- client_msg_ids_v1 goes: a clientMsgID is found through an index on messages_v1, and the
-- lowest seq with it is the one it first became, as the separate table kept it. Every seq
-- still has its row whatever the log holds (the index is not unique), and a message costs
-- one heap row fewer.
--
-- Rows stored before this migration keep jsonb's rendering of their event (keys in jsonb's
-- order, spaces after colons); rows written after it, and every row after a rebuild, hold
-- the event byte for byte. Both decode the same.
--
-- Upgrading rewrites messages_v1 once (ALTER ... TYPE), holding it locked while it does.
-- Stop every jetim of an older build first: it would look for client_msg_ids_v1.
ALTER TABLE messages_v1
    ALTER COLUMN body TYPE text USING body::text,
    ALTER COLUMN revoked TYPE text USING revoked::text;
CREATE INDEX messages_v1_by_client_msg_id ON messages_v1 (conversation_id, client_msg_id);
DROP TABLE client_msg_ids_v1;
