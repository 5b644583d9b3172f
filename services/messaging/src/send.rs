//! The send decision: a message from a client (or an admin's REST send) either becomes a
//! `msg.sent` event for one conversation, or is refused.

use jetim_schemas::events::msg::{MsgSent, OfflinePush};
use jetim_schemas::openim::sdkws::MsgData;

use crate::Rejection;
use crate::content;
use crate::conversation::{SessionType, chat_conversation_id, notification_twin};
use crate::options::{IS_NOT_NOTIFICATION, Options};

/// The longest clientMsgID, in bytes.
pub const MAX_CLIENT_MSG_ID_BYTES: usize = 64;

/// What a group send needs to know about the group and the sender's place in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupContext {
    /// The group is dismissed.
    pub dismissed: bool,
    /// The group is muted (only its owner and admins send).
    pub muted: bool,
    /// The sender's role, `None` when the sender is not a member.
    pub sender_role: Option<i32>,
    /// The sender is muted until then, milliseconds (0: not muted).
    pub sender_mute_end_time: i64,
}

/// Who is sending, and what the caller looked up about the parties.
#[derive(Debug, Clone)]
pub struct SendContext {
    /// The authenticated caller.
    pub caller: String,
    /// Whether the caller is an admin (may send as anyone, and system content).
    pub caller_is_admin: bool,
    /// The sender's appMangerLevel, or `None` if the sender is not registered.
    pub sender_level: Option<i32>,
    /// Whether the receiver of a single or notification session is registered.
    pub receiver_registered: bool,
    /// The receiver's receive option for all single chats (`globalRecvMsgOpt`).
    pub receiver_global_recv_opt: i32,
    /// The receiver's receive option on this conversation's row (`recvMsgOpt`), 0 if none.
    pub receiver_conversation_recv_opt: i32,
    /// The receiver of a single chat blocks the sender.
    pub receiver_blocks_sender: bool,
    /// The receiver of a single chat lists the sender as a friend.
    pub receiver_befriends_sender: bool,
    /// Single chats only between friends (`messaging.friend_verify`).
    pub friend_verify: bool,
    /// For a group send: the group, `None` when it does not exist.
    pub group: Option<GroupContext>,
    /// Now, milliseconds since the epoch.
    pub now_ms: i64,
    /// The serverMsgID to give the message.
    pub server_msg_id: String,
}

/// What the decision made of a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// The message, with seq 0 until the append path assigns one.
    pub message: MsgSent,
    /// Whether it is stored with a seq (false: online only, delivered but never stored).
    pub stored: bool,
    /// The receiver refuses messages (receive option 1): the sender is answered as usual,
    /// but nothing is stored or delivered. (Upstream answers 1001, which tells the sender
    /// about the receiver's setting.)
    pub refused_by_receiver: bool,
}

fn invalid(reason: impl Into<String>) -> Rejection {
    Rejection::Invalid(reason.into())
}

/// Refuses a group send unless the group is in use and the sender may post in it. App admins
/// and system accounts (level 2 and up) post in any group that exists, as upstream lets them.
fn check_group_sender(
    message: &MsgData,
    context: &SendContext,
    sender_level: i32,
) -> Result<(), Rejection> {
    use jetim_schemas::events::group::role;
    let group_id = &message.group_id;
    let Some(group) = context.group else {
        return Err(Rejection::UnknownGroup(format!(
            "group {group_id:?} does not exist"
        )));
    };
    if group.dismissed {
        return Err(Rejection::GroupDismissed(format!(
            "group {group_id:?} is dismissed"
        )));
    }
    if context.caller_is_admin || sender_level >= 2 {
        return Ok(());
    }
    let Some(sender_role) = group.sender_role else {
        return Err(Rejection::NotInGroup(format!(
            "{} is not a member of group {group_id:?}",
            message.send_id
        )));
    };
    if sender_role == role::OWNER {
        return Ok(());
    }
    if group.sender_mute_end_time > context.now_ms {
        return Err(Rejection::MutedInGroup(format!(
            "{} is muted in group {group_id:?}",
            message.send_id
        )));
    }
    if group.muted && sender_role != role::ADMIN {
        return Err(Rejection::GroupMuted(format!(
            "group {group_id:?} is muted"
        )));
    }
    Ok(())
}

/// Decides a send.
pub fn decide(message: &MsgData, context: &SendContext) -> Result<Decided, Rejection> {
    if message.send_id.is_empty() {
        return Err(invalid("sendID is empty"));
    }
    if message.send_id != context.caller && !context.caller_is_admin {
        return Err(Rejection::NoPermission(format!(
            "{} may not send as {}",
            context.caller, message.send_id
        )));
    }
    if message.client_msg_id.is_empty() {
        return Err(invalid("clientMsgID is empty"));
    }
    if message.client_msg_id.len() > MAX_CLIENT_MSG_ID_BYTES {
        return Err(invalid(format!(
            "clientMsgID is longer than {MAX_CLIENT_MSG_ID_BYTES} bytes"
        )));
    }
    let Some(sender_level) = context.sender_level else {
        return Err(Rejection::UnknownUser(format!(
            "sender {:?} is not registered",
            message.send_id
        )));
    };
    let session = SessionType::from_number(message.session_type)?;
    match session {
        SessionType::Single | SessionType::Notification => {
            if message.recv_id.is_empty() {
                return Err(invalid("recvID is empty"));
            }
            if !context.receiver_registered {
                return Err(Rejection::UnknownUser(format!(
                    "receiver {:?} is not registered",
                    message.recv_id
                )));
            }
        }
        SessionType::Group => {
            if message.group_id.is_empty() {
                return Err(invalid("groupID is empty"));
            }
            check_group_sender(message, context, sender_level)?;
        }
    }
    if session == SessionType::Notification && sender_level != 3 && !context.caller_is_admin {
        return Err(Rejection::NoPermission(format!(
            "{} is not a notification account",
            message.send_id
        )));
    }
    content::check(message.content_type, &message.content)?;
    if content::is_system_content_type(message.content_type) && !context.caller_is_admin {
        return Err(Rejection::NoPermission(format!(
            "contentType {} is for the server",
            message.content_type
        )));
    }
    let content_text =
        String::from_utf8(message.content.clone()).map_err(|_| invalid("content is not UTF-8"))?;
    // Blocks and friends-only bind single chats between ordinary users; system content
    // (notifications, read receipts) and app admins and system accounts (level 2 and up) pass.
    let relations_apply = session == SessionType::Single
        && !content::is_system_content_type(message.content_type)
        && sender_level < 2
        && !context.caller_is_admin;
    if relations_apply && context.receiver_blocks_sender {
        return Err(Rejection::Blocked(format!(
            "{} has blocked {}",
            message.recv_id, message.send_id
        )));
    }
    if relations_apply && context.friend_verify && !context.receiver_befriends_sender {
        return Err(Rejection::NotFriends(format!(
            "{} may message {} only as a friend",
            message.send_id, message.recv_id
        )));
    }

    let mut options = Options(message.options.clone().into_iter().collect());
    options.apply_content_type_overrides(message.content_type);
    // Receive options bind single chats from ordinary senders; system content, read
    // receipts and app admins (level 2 and up) pass.
    let receiver_options_apply = session == SessionType::Single
        && !content::is_system_content_type(message.content_type)
        && sender_level < 2;
    let mut refused_by_receiver = false;
    if receiver_options_apply {
        let options_in_force = [
            context.receiver_global_recv_opt,
            context.receiver_conversation_recv_opt,
        ];
        refused_by_receiver = options_in_force.contains(&1);
        if options_in_force.contains(&2) {
            options.set(crate::options::OFFLINE_PUSH, false);
        }
    }
    let chat = chat_conversation_id(
        session,
        &message.send_id,
        &message.recv_id,
        &message.group_id,
    );
    let conversation_id = if options.is(IS_NOT_NOTIFICATION) {
        chat
    } else {
        notification_twin(&chat)
    };
    // Only an admin's REST send may set the send time; everyone else gets the server's.
    let send_time = if context.caller_is_admin && message.send_time > 0 {
        message.send_time
    } else {
        context.now_ms
    };
    let msg_from = if message.msg_from == 200 { 200 } else { 100 };
    let stored = options.is_stored();
    Ok(Decided {
        message: MsgSent {
            conversation_id,
            seq: 0,
            server_msg_id: context.server_msg_id.clone(),
            client_msg_id: message.client_msg_id.clone(),
            send_id: message.send_id.clone(),
            recv_id: message.recv_id.clone(),
            group_id: message.group_id.clone(),
            sender_platform_id: message.sender_platform_id,
            sender_nickname: message.sender_nickname.clone(),
            sender_face_url: message.sender_face_url.clone(),
            session_type: session.number(),
            msg_from,
            content_type: message.content_type,
            content: content_text,
            send_time,
            create_time: if message.create_time > 0 {
                message.create_time
            } else {
                context.now_ms
            },
            options: options.0,
            offline_push: message.offline_push_info.as_ref().map(|push| OfflinePush {
                title: push.title.clone(),
                desc: push.desc.clone(),
                ex: push.ex.clone(),
                ios_push_sound: push.i_os_push_sound.clone(),
                ios_badge_count: push.i_os_badge_count,
            }),
            at_user_ids: message.at_user_id_list.clone(),
            attached_info: message.attached_info.clone(),
            ex: message.ex.clone(),
        },
        stored,
        refused_by_receiver,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(caller: &str) -> SendContext {
        SendContext {
            caller: caller.to_owned(),
            caller_is_admin: false,
            sender_level: Some(1),
            receiver_registered: true,
            receiver_global_recv_opt: 0,
            receiver_conversation_recv_opt: 0,
            receiver_blocks_sender: false,
            receiver_befriends_sender: false,
            friend_verify: false,
            group: None,
            now_ms: 1_000,
            server_msg_id: "s".repeat(32),
        }
    }

    fn text(from: &str, to: &str) -> MsgData {
        MsgData {
            send_id: from.into(),
            recv_id: to.into(),
            client_msg_id: "c1".into(),
            session_type: 1,
            content_type: 101,
            content: br#"{"content":"hi"}"#.to_vec(),
            create_time: 900,
            send_time: 5,
            ..MsgData::default()
        }
    }

    fn refused(message: &MsgData, context: &SendContext) -> Rejection {
        decide(message, context).unwrap_err()
    }

    #[test]
    fn a_text_between_two_users_goes_to_their_single_chat() {
        let decided = decide(&text("bob", "alice"), &context("bob")).unwrap();
        assert!(decided.stored);
        assert_eq!(decided.message.conversation_id, "si_alice_bob");
        assert_eq!(
            decided.message.send_time, 1_000,
            "the client's sendTime is not kept"
        );
        assert_eq!(decided.message.create_time, 900);
        assert_eq!(decided.message.content, r#"{"content":"hi"}"#);
        assert_eq!(decided.message.msg_from, 100);
    }

    #[test]
    fn a_block_refuses_with_1302_and_friends_only_with_1303() {
        let mut blocked = context("bob");
        blocked.receiver_blocks_sender = true;
        assert!(matches!(
            refused(&text("bob", "alice"), &blocked),
            Rejection::Blocked(_)
        ));
        let mut friends_only = context("bob");
        friends_only.friend_verify = true;
        assert!(matches!(
            refused(&text("bob", "alice"), &friends_only),
            Rejection::NotFriends(_)
        ));
        friends_only.receiver_befriends_sender = true;
        assert!(decide(&text("bob", "alice"), &friends_only).is_ok());
        // App admins, and an admin sending for a user, pass both.
        blocked.sender_level = Some(2);
        assert!(decide(&text("bob", "alice"), &blocked).is_ok());
        let mut admin = context("imAdmin");
        admin.caller_is_admin = true;
        admin.receiver_blocks_sender = true;
        admin.friend_verify = true;
        assert!(decide(&text("bob", "alice"), &admin).is_ok());
    }

    #[test]
    fn an_admin_may_send_as_anyone_and_set_the_send_time() {
        let mut admin = context("imAdmin");
        admin.caller_is_admin = true;
        let decided = decide(&text("bob", "alice"), &admin).unwrap();
        assert_eq!(decided.message.send_time, 5);
        assert!(matches!(
            refused(&text("bob", "alice"), &context("mallory")),
            Rejection::NoPermission(_)
        ));
    }

    #[test]
    fn a_notification_option_routes_to_the_twin_and_typing_is_not_stored() {
        let mut message = text("a", "b");
        message.options.insert("isNotNotification".into(), false);
        assert_eq!(
            decide(&message, &context("a"))
                .unwrap()
                .message
                .conversation_id,
            "n_a_b"
        );
        let mut typing = text("a", "b");
        typing.content_type = 113;
        typing.content = br#"{"msgTips":"..."}"#.to_vec();
        assert!(!decide(&typing, &context("a")).unwrap().stored);
    }

    #[test]
    fn a_receiver_who_refuses_is_not_sent_to_and_one_who_mutes_gets_no_push() {
        let mut refusing = context("a");
        refusing.receiver_global_recv_opt = 1;
        assert!(
            decide(&text("a", "b"), &refusing)
                .unwrap()
                .refused_by_receiver
        );
        let mut refusing_here = context("a");
        refusing_here.receiver_conversation_recv_opt = 1;
        assert!(
            decide(&text("a", "b"), &refusing_here)
                .unwrap()
                .refused_by_receiver
        );
        let mut muted = context("a");
        muted.receiver_conversation_recv_opt = 2;
        let decided = decide(&text("a", "b"), &muted).unwrap();
        assert!(!decided.refused_by_receiver);
        assert_eq!(decided.message.options.get("offlinePush"), Some(&false));
        // App admins pass.
        let mut from_admin = refusing;
        from_admin.sender_level = Some(2);
        assert!(
            !decide(&text("a", "b"), &from_admin)
                .unwrap()
                .refused_by_receiver
        );
    }

    #[test]
    fn bad_sends_are_refused_with_a_reason() {
        let mut message = text("a", "b");
        message.client_msg_id.clear();
        assert_eq!(
            refused(&message, &context("a")),
            invalid("clientMsgID is empty")
        );
        let mut message = text("a", "");
        message.recv_id.clear();
        assert_eq!(refused(&message, &context("a")), invalid("recvID is empty"));
        let mut message = text("a", "b");
        message.session_type = 2;
        assert_eq!(
            refused(&message, &context("a")),
            invalid("unknown sessionType 2")
        );
        let mut unknown_receiver = context("a");
        unknown_receiver.receiver_registered = false;
        assert!(matches!(
            refused(&text("a", "ghost"), &unknown_receiver),
            Rejection::UnknownUser(_)
        ));
        let mut message = text("a", "b");
        message.content_type = 1400;
        message.content = br#"{"detail":"{}"}"#.to_vec();
        assert!(matches!(
            refused(&message, &context("a")),
            Rejection::NoPermission(_)
        ));
        let mut message = text("a", "b");
        message.session_type = 3;
        message.group_id = "g".into();
        assert!(matches!(
            refused(&message, &context("a")),
            Rejection::UnknownGroup(_)
        ));
    }

    #[test]
    fn a_group_send_needs_a_live_group_and_a_member_who_may_post() {
        use jetim_schemas::events::group::role;
        let mut message = text("a", "");
        message.recv_id.clear();
        message.session_type = 3;
        message.group_id = "g".into();
        let in_group = |group: GroupContext| {
            let mut context = context("a");
            context.group = Some(group);
            context
        };
        let member = GroupContext {
            dismissed: false,
            muted: false,
            sender_role: Some(role::MEMBER),
            sender_mute_end_time: 0,
        };
        let decided = decide(&message, &in_group(member)).unwrap();
        assert_eq!(decided.message.conversation_id, "sg_g");
        let cases = [
            (
                GroupContext {
                    dismissed: true,
                    ..member
                },
                "GroupDismissed",
            ),
            (
                GroupContext {
                    sender_role: None,
                    ..member
                },
                "NotInGroup",
            ),
            (
                GroupContext {
                    sender_mute_end_time: 1_001,
                    ..member
                },
                "MutedInGroup",
            ),
            (
                GroupContext {
                    muted: true,
                    ..member
                },
                "GroupMuted",
            ),
        ];
        for (group, expected) in cases {
            let rejection = refused(&message, &in_group(group));
            assert!(
                format!("{rejection:?}").starts_with(expected),
                "{rejection:?}"
            );
        }
        // A mute that ended, an admin in a muted group, and the owner even when muted.
        for group in [
            GroupContext {
                sender_mute_end_time: 1_000,
                ..member
            },
            GroupContext {
                muted: true,
                sender_role: Some(role::ADMIN),
                ..member
            },
            GroupContext {
                muted: true,
                sender_role: Some(role::OWNER),
                sender_mute_end_time: 5_000,
                ..member
            },
        ] {
            assert!(decide(&message, &in_group(group)).is_ok(), "{group:?}");
        }
        // App admins post without being members.
        let mut app_admin = in_group(GroupContext {
            sender_role: None,
            ..member
        });
        app_admin.sender_level = Some(2);
        assert!(decide(&message, &app_admin).is_ok());
    }
}
