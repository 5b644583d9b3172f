//! Sending: the lookups the decision needs, the decision, and the append that fixes the seq.
//!
//! The answer comes only after the JetStream ack, so an answered message is durable and its
//! seq final. A resend of a clientMsgID is answered with the original message: inside the
//! log's duplicate window by JetStream's dedup, beyond it from the read model's clientMsgID
//! table, so one clientMsgID never makes two messages.

use deadpool_postgres::Pool;
use jetim_readmodel::{conversations, groups, messages, relations, users};
use jetim_schemas::events::msg::MsgSent;
use jetim_schemas::openim::sdkws::MsgData;
use jetim_streams::{Actor, EventLog};
use sha2::Digest as _;

use crate::Rejection;
use crate::conversation::{SessionType, chat_conversation_id};
use crate::send::{GroupContext, SendContext, decide};

/// A send that was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The message's serverMsgID (the original's, for a resend).
    pub server_msg_id: String,
    /// The clientMsgID.
    pub client_msg_id: String,
    /// The send time (the original's, for a resend).
    pub send_time: i64,
    /// The seq, 0 for an online-only message.
    pub seq: u64,
    /// True when this was a resend and nothing new was stored.
    pub duplicate: bool,
    /// The message as stored (for delivery); `None` for a resend.
    pub message: Option<MsgSent>,
}

/// Who sends, and the rules in force.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The authenticated caller.
    pub user_id: &'a str,
    /// Whether the caller is an admin.
    pub is_admin: bool,
    /// Single chats only between friends (`messaging.friend_verify`).
    pub friend_verify: bool,
}

impl<'a> Caller<'a> {
    /// An ordinary caller under the default rules.
    pub fn user(user_id: &'a str) -> Self {
        Self {
            user_id,
            is_admin: false,
            friend_verify: false,
        }
    }
}

/// An infrastructure failure while sending: the caller answers 500, and the client may resend
/// with the same clientMsgID safely.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SendFailure(String);

/// 32 lower-case hex characters, as OpenIM's IDs look.
pub fn new_message_id() -> String {
    sha2::Sha256::digest(nuid::next().to_string().as_bytes())
        .iter()
        .take(16)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Sends `message` on behalf of `caller`, in the request `operation_id` (which the pushes
/// of the message carry back to the sender). An online-only message is delivered here, since
/// it never reaches the log the push service reads.
pub async fn send(
    log: &EventLog,
    db: &Pool,
    message: &MsgData,
    caller: Caller<'_>,
    operation_id: &str,
) -> Result<Result<Sent, Rejection>, SendFailure> {
    let failure = |error: &dyn std::fmt::Display| SendFailure(error.to_string());
    let sender = if message.send_id.is_empty() {
        None
    } else {
        users::look_up(db, log, &message.send_id)
            .await
            .map_err(|error| failure(&error))?
    };
    let receiver = if message.recv_id.is_empty() {
        None
    } else {
        users::look_up(db, log, &message.recv_id)
            .await
            .map_err(|error| failure(&error))?
    };
    // The receiver's own setting on this single chat, if they have the row, and what the
    // receiver thinks of the sender.
    let (receiver_conversation_recv_opt, (receiver_blocks_sender, receiver_befriends_sender)) =
        match (&receiver, message.session_type) {
            (Some(receiver), 1) => {
                let conversation_ids = [chat_conversation_id(
                    SessionType::Single,
                    &message.send_id,
                    &message.recv_id,
                    "",
                )];
                let (rows, relation) = futures::try_join!(
                    conversations::list(db, &receiver.user_id, Some(&conversation_ids)),
                    relations::send_relation(db, &message.send_id, &receiver.user_id),
                )
                .map_err(|error| failure(&error))?;
                (rows.first().map_or(0, |row| row.recv_msg_opt), relation)
            }
            _ => (0, (false, false)),
        };
    let group = if message.session_type == 3 && !message.group_id.is_empty() {
        let (group, member) = futures::try_join!(
            groups::group(db, &message.group_id),
            groups::member(db, &message.group_id, &message.send_id),
        )
        .map_err(|error| failure(&error))?;
        group.map(|group| GroupContext {
            dismissed: group.is_dismissed(),
            muted: group.status == jetim_schemas::events::group::status::MUTED,
            sender_role: member.as_ref().map(|member| member.role_level),
            sender_mute_end_time: member.map_or(0, |member| member.mute_end_time),
        })
    } else {
        None
    };
    let context = SendContext {
        caller: caller.user_id.to_owned(),
        caller_is_admin: caller.is_admin,
        receiver_blocks_sender,
        receiver_befriends_sender,
        friend_verify: caller.friend_verify,
        group,
        sender_level: sender.map(|user| user.app_manger_level),
        receiver_registered: receiver.is_some(),
        receiver_global_recv_opt: receiver.as_ref().map_or(0, |user| user.global_recv_msg_opt),
        receiver_conversation_recv_opt,
        now_ms: jetim_common::clock::now_millis(),
        server_msg_id: new_message_id(),
    };
    let decided = match decide(message, &context) {
        Ok(decided) => decided,
        Err(rejection) => return Ok(Err(rejection)),
    };
    let event = decided.message;
    if decided.refused_by_receiver {
        tracing::debug!(receiver = %event.recv_id, "the receiver refuses messages; not stored");
        return Ok(Ok(Sent {
            server_msg_id: event.server_msg_id,
            client_msg_id: event.client_msg_id,
            send_time: event.send_time,
            seq: 0,
            duplicate: false,
            message: None,
        }));
    }
    if !decided.stored {
        crate::delivery::deliver_online_only(&log.nats(), &event, operation_id).await;
        return Ok(Ok(Sent {
            server_msg_id: event.server_msg_id.clone(),
            client_msg_id: event.client_msg_id.clone(),
            send_time: event.send_time,
            seq: 0,
            duplicate: false,
            message: Some(event),
        }));
    }
    if let Some(original) = messages::original(db, &event.conversation_id, &event.client_msg_id)
        .await
        .map_err(|error| failure(&error))?
    {
        return Ok(Ok(Sent {
            server_msg_id: original.server_msg_id,
            client_msg_id: event.client_msg_id,
            send_time: original.send_time,
            seq: original.seq,
            duplicate: true,
            message: None,
        }));
    }
    let appended = log
        .append_to_timeline(
            &event.conversation_id,
            &event.client_msg_id,
            Actor::with_operation(caller.user_id, operation_id),
            &event,
        )
        .await
        .map_err(|error| failure(&error))?;
    if appended.duplicate {
        let original: MsgSent = log
            .read(appended.stream_sequence)
            .await
            .map_err(|error| failure(&error))?
            .decode()
            .map_err(|error| failure(&error))?;
        return Ok(Ok(Sent {
            server_msg_id: original.server_msg_id,
            client_msg_id: original.client_msg_id,
            send_time: original.send_time,
            seq: appended.seq,
            duplicate: true,
            message: None,
        }));
    }
    let mut stored = event;
    stored.seq = appended.seq;
    tracing::debug!(conversation = %stored.conversation_id, seq = stored.seq, "message stored");
    Ok(Ok(Sent {
        server_msg_id: stored.server_msg_id.clone(),
        client_msg_id: stored.client_msg_id.clone(),
        send_time: stored.send_time,
        seq: stored.seq,
        duplicate: false,
        message: Some(stored),
    }))
}
