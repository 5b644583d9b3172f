//! Events on a conversation timeline, `im.conv.<conversationID>.msg`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::{Event, TimelineEvent};
use crate::openim::sdkws::{MsgData, OfflinePushInfo};

/// Offline-push hints a message carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflinePush {
    /// Notification title.
    pub title: String,
    /// Notification text.
    pub desc: String,
    /// Extension data.
    pub ex: String,
    /// iOS sound.
    pub ios_push_sound: String,
    /// iOS badge.
    pub ios_badge_count: bool,
}

/// `msg.sent` v1: a stored message, with the seq the append path assigned. The body is the
/// message as readable JSON (content is the client's JSON as text), so `nats stream view`
/// shows what was said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsgSent {
    /// The conversation the message belongs to.
    pub conversation_id: String,
    /// Its seq in the conversation (assigned by the append path).
    pub seq: u64,
    /// Server-assigned ID, 32 hex characters.
    pub server_msg_id: String,
    /// The client's ID; (conversation, clientMsgID) is unique.
    pub client_msg_id: String,
    /// Sender.
    pub send_id: String,
    /// Receiver (single and notification sessions).
    pub recv_id: String,
    /// Group (group sessions).
    pub group_id: String,
    /// The sender's platform.
    pub sender_platform_id: i32,
    /// The sender's nickname as the client sent it.
    pub sender_nickname: String,
    /// The sender's face URL as the client sent it.
    pub sender_face_url: String,
    /// OpenIM session type (1, 3, 4).
    pub session_type: i32,
    /// 100 user, 200 system.
    pub msg_from: i32,
    /// OpenIM content type.
    pub content_type: i32,
    /// The content: UTF-8 JSON, kept as the client wrote it.
    pub content: String,
    /// Server time of the send, milliseconds since the epoch.
    pub send_time: i64,
    /// Client time of creation, milliseconds since the epoch.
    pub create_time: i64,
    /// Options; a missing key means true.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, bool>,
    /// Offline-push hints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_push: Option<OfflinePush>,
    /// Mentioned users.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub at_user_ids: Vec<String>,
    /// Opaque client data.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub attached_info: String,
    /// Opaque client data.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ex: String,
}

impl Event for MsgSent {
    const KIND: &'static str = "msg.sent";
    const VERSION: u32 = 1;
}

impl TimelineEvent for MsgSent {
    fn set_seq(&mut self, seq: u64) {
        self.seq = seq;
    }
}

impl MsgSent {
    /// The message as the wire carries it (status 2: sent).
    pub fn to_msg_data(&self) -> MsgData {
        MsgData {
            send_id: self.send_id.clone(),
            recv_id: self.recv_id.clone(),
            group_id: self.group_id.clone(),
            client_msg_id: self.client_msg_id.clone(),
            server_msg_id: self.server_msg_id.clone(),
            sender_platform_id: self.sender_platform_id,
            sender_nickname: self.sender_nickname.clone(),
            sender_face_url: self.sender_face_url.clone(),
            session_type: self.session_type,
            msg_from: self.msg_from,
            content_type: self.content_type,
            content: self.content.clone().into_bytes(),
            seq: i64::try_from(self.seq).unwrap_or(i64::MAX),
            send_time: self.send_time,
            create_time: self.create_time,
            status: 2,
            is_read: false,
            options: self.options.clone().into_iter().collect(),
            offline_push_info: self.offline_push.as_ref().map(|push| OfflinePushInfo {
                title: push.title.clone(),
                desc: push.desc.clone(),
                ex: push.ex.clone(),
                i_os_push_sound: push.ios_push_sound.clone(),
                i_os_badge_count: push.ios_badge_count,
                signal_info: String::new(),
            }),
            at_user_id_list: self.at_user_ids.clone(),
            attached_info: self.attached_info.clone(),
            ex: self.ex.clone(),
            ..MsgData::default()
        }
    }
}

/// How a read mark changes the reader's read position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadMode {
    /// Raise it to `has_read_seq` if that is higher (mark as read).
    Raise,
    /// Set it to `has_read_seq`, even lower (`set_conversation_has_read_seq`).
    Set,
}

/// `conversation.read` v1 on `im.conv.<conversationID>.read`: a member read up to a seq, and
/// (in single chats) marked the peer's messages at `seqs` read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationRead {
    /// The conversation.
    pub conversation_id: String,
    /// The reader.
    pub user_id: String,
    /// The new read position.
    pub has_read_seq: u64,
    /// Raise or set.
    pub mode: ReadMode,
    /// Messages marked read (single chats): the peer's messages among them get `isRead`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seqs: Vec<u64>,
    /// Also mark every seq after the previous read position up to `has_read_seq`.
    #[serde(default)]
    pub from_seq: u64,
}

impl Event for ConversationRead {
    const KIND: &'static str = "conversation.read";
    const VERSION: u32 = 1;
}

/// `msg.revoked` v1 on `im.conv.<conversationID>.revoke`: a message was revoked. It stays in
/// the log and the read model; reads render it as a revoked message (contentType 2101).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsgRevoked {
    /// The conversation.
    pub conversation_id: String,
    /// The revoked message's seq.
    pub seq: u64,
    /// The revoked message's clientMsgID.
    pub client_msg_id: String,
    /// Who revoked it.
    pub revoker_id: String,
    /// The revoker's role: 0 for the sender or an app admin in single chats; group roles
    /// (100 owner, 60 admin, 20 member) in groups.
    pub revoker_role: i32,
    /// The revoker's nickname at the time.
    pub revoker_nickname: String,
    /// When, milliseconds since the epoch.
    pub revoke_time: i64,
    /// Whether an admin revoked someone else's message.
    pub is_admin_revoke: bool,
}

impl Event for MsgRevoked {
    const KIND: &'static str = "msg.revoked";
    const VERSION: u32 = 1;
}

/// `msg.deleted` v1 on `im.conv.<conversationID>.delete`: messages hidden for one member, or
/// deleted for everyone (their seqs then read as placeholders). The log keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsgsDeleted {
    /// The conversation.
    pub conversation_id: String,
    /// Who deleted them.
    pub user_id: String,
    /// The messages.
    pub seqs: Vec<u64>,
    /// Deleted for every member, not only for `user_id`.
    pub for_everyone: bool,
}

impl Event for MsgsDeleted {
    const KIND: &'static str = "msg.deleted";
    const VERSION: u32 = 1;
}

/// `conversation.cleared` v1 on `im.conv.<conversationID>.delete`: history up to
/// `min_seq - 1` is gone for `user_id` (or for everyone); their read position moves to it.
/// An admin's purge by age (`/msg/delete_msg_physical`) clears for everyone with an empty
/// `user_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationCleared {
    /// The conversation.
    pub conversation_id: String,
    /// The member who cleared it; empty for an admin's purge.
    pub user_id: String,
    /// The first seq still readable (the max seq at the time plus one).
    pub min_seq: u64,
    /// Cleared for every member, not only for `user_id`.
    pub for_everyone: bool,
}

impl Event for ConversationCleared {
    const KIND: &'static str = "conversation.cleared";
    const VERSION: u32 = 1;
}
