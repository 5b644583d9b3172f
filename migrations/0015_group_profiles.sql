-- The group_profiles projection, version 1: a member who set no group nickname or avatar
-- shows their profile's, so a profile change is an update in the member log of each of the
-- user's groups. It reads im.user.<userID>.account and writes only the member version logs
-- (group_member_versions_v1, group_member_changes_v1); this table keeps, per user, the
-- IM_USER sequence of the last change applied, so a redelivery changes nothing.
CREATE TABLE group_profile_positions_v1 (
    user_id         text   PRIMARY KEY,
    stream_sequence bigint NOT NULL
);

INSERT INTO projections (name, version, active) VALUES ('group_profiles', 1, true);
