-- /statistics/user/active counts messages by send time across conversations.
CREATE INDEX messages_v1_by_send_time ON messages_v1 (send_time);
