//! Revoking: who may revoke what, how a revoked message reads, and the notification the other
//! side gets.

use jetim_readmodel::messages::StoredMessage;
use jetim_schemas::events::msg::{MsgRevoked, MsgSent};
use jetim_schemas::openim::sdkws::MsgData;
use serde_json::json;

use crate::Rejection;
use crate::conversation::notification_twin;
use crate::options::{OFFLINE_PUSH, UNREAD_COUNT};

/// Who is revoking.
#[derive(Debug, Clone)]
pub struct Revoker {
    /// The user revoking.
    pub user_id: String,
    /// Whether they are an app admin.
    pub is_admin: bool,
    /// Their nickname, shown in the revoked message.
    pub nickname: String,
}

/// Decides a revoke of `stored`.
pub fn decide(
    stored: &StoredMessage,
    revoker: &Revoker,
    now_ms: i64,
) -> Result<MsgRevoked, Rejection> {
    let message = &stored.message;
    if stored.revoked.is_some() {
        return Err(Rejection::AlreadyRevoked(format!(
            "message {} of {} is already revoked",
            message.seq, message.conversation_id
        )));
    }
    match message.session_type {
        1 => {
            if message.send_id != revoker.user_id && !revoker.is_admin {
                return Err(Rejection::NoPermission(format!(
                    "only {} (the sender) may revoke message {}",
                    message.send_id, message.seq
                )));
            }
        }
        3 => {
            return Err(Rejection::UnknownGroup(format!(
                "group {:?} does not exist",
                message.group_id
            )));
        }
        other => {
            return Err(Rejection::Invalid(format!(
                "messages of sessionType {other} cannot be revoked"
            )));
        }
    }
    Ok(MsgRevoked {
        conversation_id: message.conversation_id.clone(),
        seq: message.seq,
        client_msg_id: message.client_msg_id.clone(),
        revoker_id: revoker.user_id.clone(),
        revoker_role: 0,
        revoker_nickname: revoker.nickname.clone(),
        revoke_time: now_ms,
        is_admin_revoke: revoker.is_admin && revoker.user_id != message.send_id,
    })
}

/// A stored message as a pull returns it: a revoked one reads as contentType 2101 with
/// OpenIM's `MessageRevokedContent` inside `{"detail": …}`.
pub fn as_pulled(stored: &StoredMessage) -> MsgData {
    let mut data = MsgData {
        is_read: stored.is_read,
        ..stored.message.to_msg_data()
    };
    if stored.hidden {
        // Deleted by the viewer for themselves: status 4 with no content.
        data.status = 4;
        data.content.clear();
        return data;
    }
    if let Some(revoked) = &stored.revoked {
        let detail = json!({
            "revokerID": revoked.revoker_id,
            "revokerRole": revoked.revoker_role,
            "clientMsgID": revoked.client_msg_id,
            "revokerNickname": revoked.revoker_nickname,
            "revokeTime": revoked.revoke_time,
            "sourceMessageSendTime": stored.message.send_time,
            "sourceMessageSendID": stored.message.send_id,
            "sourceMessageSenderNickname": stored.message.sender_nickname,
            "sessionType": stored.message.session_type,
            "seq": stored.message.seq,
            "ex": stored.message.ex,
        });
        data.content_type = 2101;
        data.content = json!({ "detail": detail.to_string() })
            .to_string()
            .into_bytes();
    }
    data
}

/// The 2101 `RevokeMsgTips` notification for the other side, in the conversation's `n_` twin.
pub fn notification(
    original: &MsgSent,
    revoked: &MsgRevoked,
    server_msg_id: String,
    client_msg_id: String,
) -> MsgSent {
    let tips = json!({
        "revokerUserID": revoked.revoker_id,
        "clientMsgID": revoked.client_msg_id,
        "revokeTime": revoked.revoke_time,
        "sesstionType": original.session_type,
        "seq": revoked.seq,
        "conversationID": revoked.conversation_id,
        "isAdminRevoke": revoked.is_admin_revoke,
    });
    let recv_id = if revoked.revoker_id == original.recv_id {
        original.send_id.clone()
    } else {
        original.recv_id.clone()
    };
    MsgSent {
        conversation_id: notification_twin(&original.conversation_id),
        seq: 0,
        server_msg_id,
        client_msg_id,
        send_id: revoked.revoker_id.clone(),
        recv_id,
        group_id: original.group_id.clone(),
        sender_platform_id: 0,
        sender_nickname: revoked.revoker_nickname.clone(),
        sender_face_url: String::new(),
        session_type: original.session_type,
        msg_from: 200,
        content_type: 2101,
        content: json!({ "detail": tips.to_string() }).to_string(),
        send_time: revoked.revoke_time,
        create_time: revoked.revoke_time,
        options: [
            (UNREAD_COUNT.to_owned(), false),
            (OFFLINE_PUSH.to_owned(), false),
        ]
        .into_iter()
        .collect(),
        offline_push: None,
        at_user_ids: Vec::new(),
        attached_info: String::new(),
        ex: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(sender: &str) -> StoredMessage {
        StoredMessage {
            message: MsgSent {
                conversation_id: "si_a_b".into(),
                seq: 4,
                server_msg_id: "s".into(),
                client_msg_id: "c".into(),
                send_id: sender.into(),
                recv_id: if sender == "a" {
                    "b".into()
                } else {
                    "a".into()
                },
                group_id: String::new(),
                sender_platform_id: 5,
                sender_nickname: "Ann".into(),
                sender_face_url: String::new(),
                session_type: 1,
                msg_from: 100,
                content_type: 101,
                content: r#"{"content":"oops"}"#.into(),
                send_time: 10,
                create_time: 9,
                options: Default::default(),
                offline_push: None,
                at_user_ids: Vec::new(),
                attached_info: String::new(),
                ex: String::new(),
            },
            is_read: false,
            revoked: None,
            hidden: false,
        }
    }

    fn revoker(user: &str, is_admin: bool) -> Revoker {
        Revoker {
            user_id: user.into(),
            is_admin,
            nickname: user.to_uppercase(),
        }
    }

    #[test]
    fn the_sender_revokes_and_the_message_then_reads_as_2101() {
        let mut message = stored("a");
        let revoked = decide(&message, &revoker("a", false), 20).unwrap();
        assert!(!revoked.is_admin_revoke);
        message.revoked = Some(revoked.clone());
        let pulled = as_pulled(&message);
        assert_eq!(pulled.content_type, 2101);
        let content: serde_json::Value = serde_json::from_slice(&pulled.content).unwrap();
        let detail: serde_json::Value =
            serde_json::from_str(content["detail"].as_str().unwrap()).unwrap();
        assert_eq!(detail["revokerID"], "a");
        assert_eq!(detail["sourceMessageSenderNickname"], "Ann");
        assert_eq!(detail["seq"], 4);

        let tips = notification(&message.message, &revoked, "s2".into(), "c2".into());
        assert_eq!(tips.conversation_id, "n_a_b");
        assert_eq!((tips.send_id.as_str(), tips.recv_id.as_str()), ("a", "b"));
        let content: serde_json::Value = serde_json::from_str(&tips.content).unwrap();
        let detail: serde_json::Value =
            serde_json::from_str(content["detail"].as_str().unwrap()).unwrap();
        assert_eq!(detail["sesstionType"], 1, "upstream's spelling");
        assert_eq!(tips.options.get("unreadCount"), Some(&false));
    }

    #[test]
    fn only_the_sender_or_an_admin_may_revoke_and_only_once() {
        let message = stored("a");
        assert!(matches!(
            decide(&message, &revoker("b", false), 20),
            Err(Rejection::NoPermission(_))
        ));
        let by_admin = decide(&message, &revoker("imAdmin", true), 20).unwrap();
        assert!(by_admin.is_admin_revoke);
        let mut revoked = message;
        revoked.revoked = Some(by_admin);
        assert!(matches!(
            decide(&revoked, &revoker("a", false), 30),
            Err(Rejection::AlreadyRevoked(_))
        ));
    }
}
