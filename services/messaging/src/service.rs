//! Sending: the lookups the decision needs, the decision, and the append that fixes the seq.
//!
//! The answer comes only after the JetStream ack, so an answered message is durable and its
//! seq final. A resend of a clientMsgID is answered with the original message: inside the
//! log's duplicate window by JetStream's dedup, beyond it from the read model's clientMsgID
//! table, so one clientMsgID never makes two messages.

use deadpool_postgres::Pool;
use jetim_readmodel::send_facts::{FactsReader, SendKeys};
use jetim_readmodel::{messages, users};
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
///
/// A hash of a NUID (unique within the process, and random across processes), formatted
/// in one go: a `format!` per byte was about 1% of the server's CPU at 10,000 msg/s.
pub fn new_message_id() -> String {
    let digest = sha2::Sha256::digest(nuid::next().to_string().as_bytes());
    let mut first = [0; 16];
    first.copy_from_slice(&digest[..16]);
    format!("{:032x}", u128::from_be_bytes(first))
}

/// Sends `message` on behalf of `caller`, in the request `operation_id` (which the pushes
/// of the message carry back to the sender). An online-only message is delivered here, since
/// it never reaches the log the push service reads. `facts` reads what the decision needs
/// (together with other sends waiting at the same time); `db` the rest.
pub async fn send(
    log: &EventLog,
    db: &Pool,
    facts: &FactsReader,
    message: &MsgData,
    caller: Caller<'_>,
    operation_id: &str,
) -> Result<Result<Sent, Rejection>, SendFailure> {
    let failure = |error: &dyn std::fmt::Display| SendFailure(error.to_string());
    // The conversation the message will go to, for the clientMsgID lookup; `decide` refuses
    // an unknown session type, so none is needed then.
    let conversation_id = SessionType::from_number(message.session_type)
        .map(|session| {
            chat_conversation_id(
                session,
                &message.send_id,
                &message.recv_id,
                &message.group_id,
            )
        })
        .unwrap_or_default();
    let reading = std::time::Instant::now();
    let facts = facts
        .read(SendKeys {
            send_id: &message.send_id,
            recv_id: &message.recv_id,
            group_id: &message.group_id,
            conversation_id: &conversation_id,
            client_msg_id: &message.client_msg_id,
        })
        .await
        .map_err(|error| failure(&error))?;
    metrics::histogram!("jetim_send_seconds", "stage" => "facts")
        .record(reading.elapsed().as_secs_f64());
    let sender_level = account_field(db, log, &message.send_id, facts.sender_level, |user| {
        user.app_manger_level
    })
    .await
    .map_err(|error| failure(&error))?;
    let receiver_global_recv_opt = account_field(
        db,
        log,
        &message.recv_id,
        facts.receiver_global_recv_opt,
        |user| user.global_recv_msg_opt,
    )
    .await
    .map_err(|error| failure(&error))?;
    // The receiver's own setting on this single chat, and what the receiver thinks of the
    // sender.
    let single_chat = receiver_global_recv_opt.is_some() && message.session_type == 1;
    let group = if message.session_type == 3 && !message.group_id.is_empty() {
        facts.group_status.map(|status| GroupContext {
            dismissed: status == jetim_schemas::events::group::status::DISMISSED,
            muted: status == jetim_schemas::events::group::status::MUTED,
            sender_role: facts.sender_role,
            sender_mute_end_time: facts.sender_mute_end_time,
        })
    } else {
        None
    };
    let context = SendContext {
        caller: caller.user_id.to_owned(),
        caller_is_admin: caller.is_admin,
        receiver_blocks_sender: single_chat && facts.receiver_blocks_sender,
        receiver_befriends_sender: single_chat && facts.receiver_befriends_sender,
        friend_verify: caller.friend_verify,
        group,
        sender_level,
        receiver_registered: receiver_global_recv_opt.is_some(),
        receiver_global_recv_opt: receiver_global_recv_opt.unwrap_or(0),
        receiver_conversation_recv_opt: if single_chat {
            facts.receiver_conversation_recv_opt
        } else {
            0
        },
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
    let original = if event.conversation_id == conversation_id {
        facts.original
    } else {
        messages::original(db, &event.conversation_id, &event.client_msg_id)
            .await
            .map_err(|error| failure(&error))?
    };
    if let Some(original) = original {
        return Ok(Ok(Sent {
            server_msg_id: original.server_msg_id,
            client_msg_id: event.client_msg_id,
            send_time: original.send_time,
            seq: original.seq,
            duplicate: true,
            message: None,
        }));
    }
    let appending = std::time::Instant::now();
    let appended = log
        .append_to_timeline(
            &event.conversation_id,
            &event.client_msg_id,
            Actor::with_operation(caller.user_id, operation_id),
            &event,
        )
        .await
        .map_err(|error| failure(&error))?;
    metrics::histogram!("jetim_send_seconds", "stage" => "append")
        .record(appending.elapsed().as_secs_f64());
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

/// A field of `user_id`'s account: as the read model had it (`read`), or, for a user
/// registered a moment ago that the read model does not show yet, from the log. `None` when
/// there is no such user or no user was named.
async fn account_field(
    db: &Pool,
    log: &EventLog,
    user_id: &str,
    read: Option<i32>,
    field: fn(&users::UserRow) -> i32,
) -> Result<Option<i32>, users::LookUpError> {
    if user_id.is_empty() {
        return Ok(None);
    }
    if read.is_some() {
        return Ok(read);
    }
    Ok(users::look_up(db, log, user_id)
        .await?
        .map(|user| field(&user)))
}

#[cfg(test)]
mod tests {
    use super::new_message_id;

    #[test]
    fn message_ids_are_32_lower_case_hex_characters_and_differ() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_message_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.len(), 32, "{id}");
            assert!(
                id.bytes()
                    .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')),
                "{id}"
            );
        }
    }
}
