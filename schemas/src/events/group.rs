//! Events on `im.conv.sg_<groupID>.group`: a group's whole state.
//!
//! Every change to a group (its info, members, roles, mutes, applications, dismissal) is on
//! the one subject of the group's conversation, so that subject orders everything that
//! decides a command: a command is decided on the group as the projection shows it and
//! appended only if nothing reached the subject since (`Nats-Expected-Last-Subject-Sequence`).
//! A command that changes several things (accepting an application adds the member) is one
//! event.

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// Member roles (OpenIM's `roleLevel`).
pub mod role {
    /// The owner; exactly one per group.
    pub const OWNER: i32 = 100;
    /// An admin.
    pub const ADMIN: i32 = 60;
    /// An ordinary member.
    pub const MEMBER: i32 = 20;
}

/// How a member came in (OpenIM's `joinSource`).
pub mod join_source {
    /// Added by an admin or at creation.
    pub const ADMIN: i32 = 1;
    /// Invited by a member.
    pub const INVITATION: i32 = 2;
    /// Found by search.
    pub const SEARCH: i32 = 3;
    /// Through a QR code.
    pub const QR_CODE: i32 = 4;
}

/// Group status (OpenIM's `status`).
pub mod status {
    /// In use.
    pub const OK: i32 = 0;
    /// Dismissed by its owner.
    pub const DISMISSED: i32 = 2;
    /// Only the owner and admins may send.
    pub const MUTED: i32 = 3;
}

/// The settable part of a group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupProfile {
    /// The name.
    pub name: String,
    /// The avatar.
    pub face_url: String,
    /// The announcement.
    pub notification: String,
    /// The introduction.
    pub introduction: String,
    /// Extension data.
    pub ex: String,
    /// Join policy: 0 applications need approval and invitations join directly, 1 everything
    /// needs approval unless an owner or admin invites, 2 anyone joins directly.
    pub need_verification: i32,
    /// Whether members may see each other's info (a flag for clients).
    pub look_member_info: i32,
    /// Whether members may befriend each other (a flag for clients).
    pub apply_member_friend: i32,
}

/// A member as they come in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMember {
    /// The user.
    pub user_id: String,
    /// 100, 60 or 20.
    pub role_level: i32,
    /// 1 admin, 2 invitation, 3 search, 4 QR code.
    pub join_source: i32,
    /// Who brought them in ("" for none).
    pub inviter_user_id: String,
}

/// `group.created` v1: a new group with its first members (the owner among them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCreated {
    /// The group.
    pub group_id: String,
    /// Who created it.
    pub creator_user_id: String,
    /// Always 2 (OpenIM's working group).
    pub group_type: i32,
    /// Its info.
    pub profile: GroupProfile,
    /// Everyone in it, the owner first.
    pub members: Vec<NewMember>,
    /// When, milliseconds since the epoch.
    pub create_time: i64,
}

impl Event for GroupCreated {
    const KIND: &'static str = "group.created";
    const VERSION: u32 = 1;
}

/// `group.info.set` v1: some of the group's info changed (absent fields unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfoSet {
    /// The group.
    pub group_id: String,
    /// Who changed it.
    pub operator_user_id: String,
    /// The new name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The new avatar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face_url: Option<String>,
    /// The new announcement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<String>,
    /// The new introduction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduction: Option<String>,
    /// The new extension data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ex: Option<String>,
    /// The new join policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub need_verification: Option<i32>,
    /// The new member-info flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub look_member_info: Option<i32>,
    /// The new befriend flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_member_friend: Option<i32>,
    /// When, milliseconds since the epoch.
    pub time: i64,
}

impl Event for GroupInfoSet {
    const KIND: &'static str = "group.info.set";
    const VERSION: u32 = 1;
}

/// `group.members.joined` v1: users came in (invited, or joined where the policy lets them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersJoined {
    /// The group.
    pub group_id: String,
    /// Who let them in (the inviter, or the user who joined).
    pub operator_user_id: String,
    /// The new members.
    pub members: Vec<NewMember>,
    /// When, milliseconds since the epoch.
    pub join_time: i64,
    /// The first seq they may read, when history for new members is off (the group's next
    /// seq at the time); `None` when they read the whole history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_from_seq: Option<u64>,
}

impl Event for MembersJoined {
    const KIND: &'static str = "group.members.joined";
    const VERSION: u32 = 1;
}

/// `group.members.left` v1: members quit or were kicked. They keep reading the timeline up to
/// `max_seq`, and nothing after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersLeft {
    /// The group.
    pub group_id: String,
    /// Who removed them (themselves, for a quit).
    pub operator_user_id: String,
    /// Who left.
    pub user_ids: Vec<String>,
    /// True for a kick, false for a quit.
    pub kicked: bool,
    /// The group's last seq they may read.
    pub max_seq: u64,
    /// When, milliseconds since the epoch.
    pub time: i64,
}

impl Event for MembersLeft {
    const KIND: &'static str = "group.members.left";
    const VERSION: u32 = 1;
}

/// `group.applied` v1: a user asks to join (or a member's invitation waits for approval). A
/// new application replaces the user's earlier one, whatever its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupApplied {
    /// The group.
    pub group_id: String,
    /// Who would join.
    pub user_id: String,
    /// Their message.
    pub req_msg: String,
    /// 2 invitation, 3 search, 4 QR code.
    pub join_source: i32,
    /// The member who invited them, "" when they applied themselves.
    pub inviter_user_id: String,
    /// Extension data.
    pub ex: String,
    /// When, milliseconds since the epoch.
    pub req_time: i64,
}

impl Event for GroupApplied {
    const KIND: &'static str = "group.applied";
    const VERSION: u32 = 1;
}

/// `group.application.handled` v1: an owner or admin answered a pending application;
/// accepting adds the member in the same event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupApplicationHandled {
    /// The group.
    pub group_id: String,
    /// The applicant.
    pub user_id: String,
    /// 1 accepted, -1 refused.
    pub handle_result: i32,
    /// The answer's message.
    pub handled_msg: String,
    /// Who answered.
    pub handler_user_id: String,
    /// When, milliseconds since the epoch.
    pub handle_time: i64,
    /// The member it made, when accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<NewMember>,
    /// As [`MembersJoined::history_from_seq`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_from_seq: Option<u64>,
}

impl GroupApplicationHandled {
    /// Whether the application was accepted.
    pub const fn accepted(&self) -> bool {
        self.handle_result == 1
    }
}

impl Event for GroupApplicationHandled {
    const KIND: &'static str = "group.application.handled";
    const VERSION: u32 = 1;
}

/// `group.owner.transferred` v1: the owner handed the group over. The new owner's old role
/// goes to the old owner, and a mute on the new owner ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerTransferred {
    /// The group.
    pub group_id: String,
    /// Who did it (the owner, or an app admin).
    pub operator_user_id: String,
    /// The owner until now.
    pub old_owner_user_id: String,
    /// The owner from now.
    pub new_owner_user_id: String,
    /// The role the old owner takes (the new owner's previous one).
    pub old_owner_role_level: i32,
    /// When, milliseconds since the epoch.
    pub time: i64,
}

impl Event for OwnerTransferred {
    const KIND: &'static str = "group.owner.transferred";
    const VERSION: u32 = 1;
}

/// `group.dismissed` v1: the group is dismissed and every member removed; they keep reading
/// up to `max_seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDismissed {
    /// The group.
    pub group_id: String,
    /// Who dismissed it.
    pub operator_user_id: String,
    /// The group's last seq the former members may read.
    pub max_seq: u64,
    /// When, milliseconds since the epoch.
    pub time: i64,
}

impl Event for GroupDismissed {
    const KIND: &'static str = "group.dismissed";
    const VERSION: u32 = 1;
}

/// `group.member.muted` v1: a member may not send until `mute_end_time` (0 lifts a mute).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberMuted {
    /// The group.
    pub group_id: String,
    /// Who did it.
    pub operator_user_id: String,
    /// The member.
    pub user_id: String,
    /// Milliseconds since the epoch; 0 when the mute is lifted.
    pub mute_end_time: i64,
    /// When, milliseconds since the epoch.
    pub time: i64,
}

impl Event for MemberMuted {
    const KIND: &'static str = "group.member.muted";
    const VERSION: u32 = 1;
}

/// `group.muted` v1: only the owner and admins may send (or, when lifted, everyone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMuted {
    /// The group.
    pub group_id: String,
    /// Who did it.
    pub operator_user_id: String,
    /// Muted or not.
    pub muted: bool,
    /// When, milliseconds since the epoch.
    pub time: i64,
}

impl Event for GroupMuted {
    const KIND: &'static str = "group.muted";
    const VERSION: u32 = 1;
}

/// A change to one member's info (absent fields unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfoChange {
    /// The member.
    pub user_id: String,
    /// Their nickname in the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    /// Their avatar in the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face_url: Option<String>,
    /// Their role (60 or 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_level: Option<i32>,
    /// Extension data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ex: Option<String>,
}

/// `group.members.info.set` v1: members' nicknames, avatars, roles or extension data changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersInfoSet {
    /// The group.
    pub group_id: String,
    /// Who changed them.
    pub operator_user_id: String,
    /// The changes.
    pub changes: Vec<MemberInfoChange>,
    /// When, milliseconds since the epoch.
    pub time: i64,
}

impl Event for MembersInfoSet {
    const KIND: &'static str = "group.members.info.set";
    const VERSION: u32 = 1;
}
