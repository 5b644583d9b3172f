-- The clientMsgID index compares its keys byte by byte (text_pattern_ops) instead of by the
-- database's collation. It serves only equality lookups (a conversation and a clientMsgID),
-- which give the same answer either way, so a collation's order bought nothing and cost a
-- locale comparison for every key compared: building the index over 200,000 rows shaped
-- like `jetim bench rebuild`'s took 237-255 ms with the collation and 166-188 ms bytewise in
-- psql; in the rebuild, both deferred indexes together took 197-303 ms against 226-347 in
-- seven turns (docs/performance.md, rebuild). Every message inserted compares keys too.
--
-- Upgrading rebuilds the index once, holding messages_v1 locked while it does (about a
-- second per million messages on a small machine).
DROP INDEX messages_v1_by_client_msg_id;
CREATE INDEX messages_v1_by_client_msg_id
    ON messages_v1 (conversation_id text_pattern_ops, client_msg_id text_pattern_ops);
