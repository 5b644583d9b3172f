//! Server notifications (friend, block, profile and group changes): the `MsgData` OpenIM's
//! SDKs expect, in the `n_` conversation of the pair of users or of the group.
//!
//! As upstream ships them, these notifications are not stored: they are pushed with seq 0,
//! and a client that missed one catches up through the version logs. Those marked
//! `isSendMsg` also get a stored copy in the pair's chat conversation (so "you are now
//! friends" shows in the chat, counts as unread and makes the conversation).

use jetim_schemas::events::msg::MsgSent;
use serde_json::json;

use crate::conversation::{SessionType, chat_conversation_id, notification_twin};
use crate::options::{
    CONVERSATION_UPDATE, HISTORY, IS_NOT_NOTIFICATION, OFFLINE_PUSH, PERSISTENT,
    SENDER_CONVERSATION_UPDATE, SENDER_SYNC, UNREAD_COUNT,
};
use crate::service::new_message_id;

/// `msgFrom` of server-made messages.
const SYSTEM_MSG_FROM: i32 = 200;

/// A notification from one user to another.
#[derive(Debug, Clone)]
pub struct Notification {
    /// OpenIM's notification content type (1201, 1203, …).
    pub content_type: i32,
    /// Who it is from (the user who acted).
    pub send_id: String,
    /// Who it is about or for (for a group notification, the group ID).
    pub recv_id: String,
    /// The group a group notification (session 3) is in; empty for one between users.
    pub group_id: String,
    /// The Tips, as the SDKs parse them.
    pub tips: serde_json::Value,
    /// Whether a recipient who is offline gets an offline push.
    pub offline_push: bool,
    /// Now, milliseconds since the epoch.
    pub now_ms: i64,
}

impl Notification {
    fn message(&self, conversation_id: String, options: &[(&str, bool)]) -> MsgSent {
        MsgSent {
            conversation_id,
            seq: 0,
            server_msg_id: new_message_id(),
            client_msg_id: new_message_id(),
            send_id: self.send_id.clone(),
            recv_id: self.recv_id.clone(),
            group_id: self.group_id.clone(),
            sender_platform_id: 0,
            sender_nickname: String::new(),
            sender_face_url: String::new(),
            session_type: self.session().number(),
            msg_from: SYSTEM_MSG_FROM,
            content_type: self.content_type,
            content: json!({ "detail": self.tips.to_string() }).to_string(),
            send_time: self.now_ms,
            create_time: self.now_ms,
            options: options
                .iter()
                .map(|(key, value)| ((*key).to_owned(), *value))
                .collect(),
            offline_push: None,
            at_user_ids: Vec::new(),
            attached_info: String::new(),
            ex: String::new(),
        }
    }

    fn session(&self) -> SessionType {
        if self.group_id.is_empty() {
            SessionType::Single
        } else {
            SessionType::Group
        }
    }

    fn chat(&self) -> String {
        chat_conversation_id(self.session(), &self.send_id, &self.recv_id, &self.group_id)
    }

    /// The push-only message, in the pair's `n_` conversation: never stored (seq 0), pushed
    /// to the receiver and to the sender's own connections.
    pub fn push_only(&self) -> MsgSent {
        self.message(
            notification_twin(&self.chat()),
            &[
                (IS_NOT_NOTIFICATION, false),
                (SENDER_SYNC, true),
                (HISTORY, false),
                (PERSISTENT, false),
                (UNREAD_COUNT, false),
                (CONVERSATION_UPDATE, false),
                (SENDER_CONVERSATION_UPDATE, false),
                (OFFLINE_PUSH, self.offline_push),
            ],
        )
    }

    /// The notification stored in the `n_` conversation with a seq of its own, as OpenIM
    /// stores its reliability-level-2 notifications to another user (read receipts 2200):
    /// a client that was offline gets it by seq sync. Not counted unread, no offline push.
    pub fn stored_in_notifications(&self) -> MsgSent {
        self.message(
            notification_twin(&self.chat()),
            &[
                (IS_NOT_NOTIFICATION, false),
                (SENDER_SYNC, true),
                (HISTORY, true),
                (PERSISTENT, true),
                (UNREAD_COUNT, false),
                (CONVERSATION_UPDATE, false),
                (SENDER_CONVERSATION_UPDATE, false),
                (OFFLINE_PUSH, false),
            ],
        )
    }

    /// The stored copy in the pair's chat conversation (`isSendMsg`): counted unread and
    /// updating the conversation, as OpenIM stores it.
    pub fn chat_copy(&self) -> MsgSent {
        self.message(
            self.chat(),
            &[(OFFLINE_PUSH, self.offline_push), (UNREAD_COUNT, true)],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Options;

    fn approved() -> Notification {
        Notification {
            content_type: 1201,
            send_id: "bob".into(),
            recv_id: "alice".into(),
            tips: json!({"fromToUserID": {"fromUserID": "alice", "toUserID": "bob"}}),
            group_id: String::new(),
            offline_push: true,
            now_ms: 7,
        }
    }

    #[test]
    fn the_push_goes_to_the_n_twin_unstored_and_the_copy_to_the_chat_stored() {
        let notification = approved();
        let push = notification.push_only();
        assert_eq!(push.conversation_id, "n_alice_bob");
        let options = Options(push.options.clone());
        assert!(!options.is_stored());
        assert!(options.is(SENDER_SYNC));
        assert_eq!(push.msg_from, 200);
        let content: serde_json::Value = serde_json::from_str(&push.content).unwrap();
        let detail: serde_json::Value =
            serde_json::from_str(content["detail"].as_str().unwrap()).unwrap();
        assert_eq!(detail["fromToUserID"]["toUserID"], "bob");

        let copy = notification.chat_copy();
        assert_eq!(copy.conversation_id, "si_alice_bob");
        let kept = notification.stored_in_notifications();
        assert_eq!(kept.conversation_id, "n_alice_bob");
        assert!(Options(kept.options.clone()).is_stored());
        assert!(!Options(kept.options.clone()).is(UNREAD_COUNT));
        let options = Options(copy.options.clone());
        assert!(options.is_stored());
        assert!(options.is(IS_NOT_NOTIFICATION));
        assert_ne!(copy.client_msg_id, push.client_msg_id);
    }

    #[test]
    fn a_group_notification_goes_to_the_groups_n_twin_and_its_copy_to_sg() {
        let notification = Notification {
            content_type: 1501,
            send_id: "alice".into(),
            recv_id: "g1".into(),
            group_id: "g1".into(),
            tips: json!({}),
            offline_push: false,
            now_ms: 7,
        };
        let push = notification.push_only();
        assert_eq!(push.conversation_id, "n_g1");
        assert_eq!(push.session_type, 3);
        assert_eq!(push.group_id, "g1");
        let copy = notification.chat_copy();
        assert_eq!(copy.conversation_id, "sg_g1");
        assert!(Options(copy.options.clone()).is_stored());
    }
}
