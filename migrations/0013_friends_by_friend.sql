-- Who lists a user as a friend: read on every nickname or face change (1209 and the friend
-- logs of those users), which would otherwise scan friends_v1.
CREATE INDEX friends_v1_by_friend ON friends_v1 (friend_user_id) WHERE NOT deleted;
