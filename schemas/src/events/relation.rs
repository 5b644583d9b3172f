//! Events on `im.user.<userID>.friend` and `im.user.<userID>.black`: friend requests,
//! friendships and blocks.
//!
//! A friend request lives on its addressee's subject (`to_user_id`), with its answer, so the
//! addressee's subject orders everything that decides it. A friendship row belongs to its
//! owner: one side's delete, remark or pin touches only the owner's subject. Accepting a request
//! and importing friends make both directions at once, in one event.

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// How a friendship came about (OpenIM's `addSource`).
pub mod add_source {
    /// Imported by an admin.
    pub const IMPORT: i32 = 1;
    /// An accepted request.
    pub const REQUEST: i32 = 2;
}

/// `friend.requested` v1, on the addressee's subject: a request (new, or replacing an earlier
/// one between the same two users, whatever its state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FriendRequested {
    /// The applicant.
    pub from_user_id: String,
    /// The addressee.
    pub to_user_id: String,
    /// The applicant's message.
    pub req_msg: String,
    /// Extension data.
    pub ex: String,
    /// When, milliseconds since the epoch.
    pub create_time: i64,
}

impl Event for FriendRequested {
    const KIND: &'static str = "friend.requested";
    const VERSION: u32 = 1;
}

/// `friend.request.handled` v1, on the addressee's subject: the addressee's answer to a
/// pending request. Accepting (`handle_result` 1) also answers a pending request the other
/// way, and makes the friendship in both directions (`add_source` 2) where it is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FriendRequestHandled {
    /// The applicant.
    pub from_user_id: String,
    /// The addressee, who answered.
    pub to_user_id: String,
    /// 1 accepted, -1 refused.
    pub handle_result: i32,
    /// The addressee's message.
    pub handle_msg: String,
    /// When, milliseconds since the epoch.
    pub handle_time: i64,
}

impl FriendRequestHandled {
    /// Whether the request was accepted.
    pub fn accepted(&self) -> bool {
        self.handle_result == 1
    }
}

impl Event for FriendRequestHandled {
    const KIND: &'static str = "friend.request.handled";
    const VERSION: u32 = 1;
}

/// `friend.imported` v1, on the owner's subject: an admin made the owner and each listed user
/// friends, in both directions (`add_source` 1), where they were not already.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FriendsImported {
    /// The owner.
    pub owner_user_id: String,
    /// The new friends.
    pub friend_user_ids: Vec<String>,
    /// The admin who imported them.
    pub operator_user_id: String,
    /// When, milliseconds since the epoch.
    pub create_time: i64,
}

impl Event for FriendsImported {
    const KIND: &'static str = "friend.imported";
    const VERSION: u32 = 1;
}

/// `friend.deleted` v1, on the owner's subject: the owner's side of a friendship is gone; the
/// other user still lists the owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FriendDeleted {
    /// The owner.
    pub owner_user_id: String,
    /// The ex-friend.
    pub friend_user_id: String,
}

impl Event for FriendDeleted {
    const KIND: &'static str = "friend.deleted";
    const VERSION: u32 = 1;
}

/// `friend.updated` v1, on the owner's subject: the owner's remark, pin or extension data on
/// some of their friends; an absent field is unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FriendsUpdated {
    /// The owner.
    pub owner_user_id: String,
    /// The friends changed.
    pub friend_user_ids: Vec<String>,
    /// New remark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    /// New pin state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_pinned: Option<bool>,
    /// New extension data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ex: Option<String>,
}

impl Event for FriendsUpdated {
    const KIND: &'static str = "friend.updated";
    const VERSION: u32 = 1;
}

/// `black.added` v1, on the owner's subject: the owner blocks a user (again: the row is
/// replaced).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlackAdded {
    /// The owner.
    pub owner_user_id: String,
    /// The blocked user.
    pub black_user_id: String,
    /// Who did it (the owner, or an admin).
    pub operator_user_id: String,
    /// Extension data.
    pub ex: String,
    /// When, milliseconds since the epoch.
    pub create_time: i64,
}

impl Event for BlackAdded {
    const KIND: &'static str = "black.added";
    const VERSION: u32 = 1;
}

/// `black.removed` v1, on the owner's subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlackRemoved {
    /// The owner.
    pub owner_user_id: String,
    /// The user no longer blocked.
    pub black_user_id: String,
}

impl Event for BlackRemoved {
    const KIND: &'static str = "black.removed";
    const VERSION: u32 = 1;
}
