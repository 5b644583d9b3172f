//! Events on `im.user.<ownerUserID>.conversation`: a user's settings for their conversations.

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// `conversation.set` v1: settings of one of the owner's conversations changed (the row is
/// made if missing). An absent field is unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSet {
    /// The owner.
    pub owner_user_id: String,
    /// The conversation.
    pub conversation_id: String,
    /// 1 single, 3 group, 4 notification.
    pub conversation_type: i32,
    /// The peer, for single and notification conversations.
    pub user_id: String,
    /// The group, for group conversations.
    pub group_id: String,
    /// 0 receive, 1 do not receive, 2 receive without offline push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recv_msg_opt: Option<i32>,
    /// Pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_pinned: Option<bool>,
    /// Opaque client data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached_info: Option<String>,
    /// Burn after reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_private_chat: Option<bool>,
    /// Mention state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_at_type: Option<i32>,
    /// Opaque client data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ex: Option<String>,
    /// Seconds a private-chat message lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burn_duration: Option<i32>,
    /// Messages older than this age (seconds) are destroyed for the owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_destruct_time: Option<i64>,
    /// Whether message destruction is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_msg_destruct: Option<bool>,
}

impl ConversationSet {
    /// Folds a later change into this one: later values win.
    pub fn merge(&mut self, later: Self) {
        self.recv_msg_opt = later.recv_msg_opt.or(self.recv_msg_opt);
        self.is_pinned = later.is_pinned.or(self.is_pinned);
        self.attached_info = later.attached_info.or(self.attached_info.take());
        self.is_private_chat = later.is_private_chat.or(self.is_private_chat);
        self.group_at_type = later.group_at_type.or(self.group_at_type);
        self.ex = later.ex.or(self.ex.take());
        self.burn_duration = later.burn_duration.or(self.burn_duration);
        self.msg_destruct_time = later.msg_destruct_time.or(self.msg_destruct_time);
        self.is_msg_destruct = later.is_msg_destruct.or(self.is_msg_destruct);
    }
}

impl Event for ConversationSet {
    const KIND: &'static str = "conversation.set";
    const VERSION: u32 = 1;
}

/// One conversation in a [`ConversationsDeleted`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedConversation {
    /// The conversation.
    pub conversation_id: String,
    /// 1 single, 3 group, 4 notification (the row is made hidden if the projection has not
    /// seen it yet).
    pub conversation_type: i32,
    /// The peer, for single and notification conversations.
    pub user_id: String,
    /// The group, for group conversations.
    pub group_id: String,
    /// Its max seq when it was deleted: the row stays out of the owner's lists until a
    /// message after this seq arrives.
    pub through_seq: u64,
}

/// `conversation.deleted` v1: the owner removed conversations from their list. The rows lose
/// their settings and are hidden until a newer message brings them back, as OpenIM makes a
/// new row then. Messages stay pullable (deleting them is `/msg/clear_conversation_msg`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationsDeleted {
    /// The owner.
    pub owner_user_id: String,
    /// The conversations.
    pub conversations: Vec<DeletedConversation>,
}

impl Event for ConversationsDeleted {
    const KIND: &'static str = "conversation.deleted";
    const VERSION: u32 = 1;
}
