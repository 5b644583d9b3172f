-- delete_conversations hides a row from its owner's lists until a message after the seq the
-- conversation had when it was deleted. NULL: not hidden. Visibility is decided when reading
-- (the conversation's max seq against this column), so the two projections that write
-- user_conversations_v1 may apply in any order and still agree.
ALTER TABLE user_conversations_v1 ADD COLUMN hidden_through_seq bigint;
