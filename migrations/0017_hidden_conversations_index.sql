-- The messages projection brings back the conversation rows their owners deleted
-- (hidden_through_seq set) when a newer message arrives, checking the rows of every message
-- in a batch. Almost no row is hidden, so an index on just the hidden ones lets that check
-- touch nothing instead of joining the batch with every row (measured: 0.5 ms a batch at
-- 3,000 messages/s, the messages projection's costliest statement after the insert).
CREATE INDEX user_conversations_v1_hidden ON user_conversations_v1 (conversation_id, owner_user_id)
    WHERE hidden_through_seq IS NOT NULL;
