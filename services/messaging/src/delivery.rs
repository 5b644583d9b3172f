//! Delivery: who gets a message pushed, and the 2001 payload they get.
//!
//! The push service calls this for every stored message; the API and the gateway call it
//! for online-only messages (typing), which are never stored and so never reach the push
//! service. Delivery is core NATS: best effort and fast, with seq sync behind it for
//! anything missed. A push goes either to each recipient's `im.deliver.<userID>`
//! ([`publish`]), or once for all its recipients to `im.fanout.<conversationID>` as a
//! [`Fanout`] ([`publish_fanout`]), which every gateway hears and writes to the recipients
//! it holds. A process that runs the push service and a gateway together hands its
//! gateway each fan-out push directly ([`LocalFanout`]) besides publishing it for the
//! others.

use async_nats::HeaderMap;
use jetim_schemas::events::msg::MsgSent;
use jetim_schemas::openim::sdkws::{PullMsgs, PushMessages};
use jetim_streams::headers;
use jetim_streams::subject::{LiveKind, fanout, live};
use prost::Message as _;

use crate::options::{Options, SENDER_SYNC};

/// Who a message is pushed to, as far as the message alone says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    /// Single and notification sessions: these users.
    Users(Vec<String>),
    /// Group sessions: every current member of the group (the sender included).
    GroupMembers(String),
}

/// The recipients of `message`: for single and notification sessions the receiver, and the
/// sender too when `senderSync` allows (missing means true) and they differ; for groups
/// the members.
pub fn recipients(message: &MsgSent) -> Recipients {
    if message.session_type == 3 {
        return Recipients::GroupMembers(message.group_id.clone());
    }
    let mut users = vec![message.recv_id.clone()];
    let options = Options(message.options.clone());
    if options.is(SENDER_SYNC) && message.send_id != message.recv_id {
        users.push(message.send_id.clone());
    }
    users.retain(|user| !user.is_empty());
    Recipients::Users(users)
}

/// The 2001 payload for one message: `PushMessages` with the message under its
/// conversation ID, in `notificationMsgs` for an `n_` conversation.
pub fn push_payload(message: &MsgSent) -> Vec<u8> {
    push_payload_of(&[message])
}

/// The 2001 payload for several messages of one conversation, in the order given (their
/// seq order): one `PullMsgs` under the conversation ID. One conversation a payload: the Go
/// SDK checks a pushed conversation's seqs against a count it does not reset between the
/// conversations of one push, so a push of two conversations can be taken for a gap.
///
/// # Panics
/// If `messages` is empty.
pub fn push_payload_of(messages: &[&MsgSent]) -> Vec<u8> {
    let conversation_id = &messages[0].conversation_id;
    debug_assert!(
        messages
            .iter()
            .all(|message| &message.conversation_id == conversation_id),
        "one conversation a push"
    );
    let pulled = PullMsgs {
        msgs: messages
            .iter()
            .map(|message| message.to_msg_data())
            .collect(),
        ..PullMsgs::default()
    };
    let mut push = PushMessages::default();
    let target = if conversation_id.starts_with("n_") {
        &mut push.notification_msgs
    } else {
        &mut push.msgs
    };
    target.insert(conversation_id.clone(), pulled);
    push.encode_to_vec()
}

/// A failure to publish a delivery.
#[derive(Debug, thiserror::Error)]
#[error("delivering to {target}: {error}")]
pub struct DeliveryError {
    /// The user, or for a fan-out the conversation.
    target: String,
    error: String,
}

impl DeliveryError {
    fn new(target: &str, error: &dyn std::fmt::Display) -> Self {
        Self {
            target: target.to_owned(),
            error: error.to_string(),
        }
    }
}

/// A push for many users at once, as published on `im.fanout.<conversationID>`: who gets
/// it, and the 2001 payload they all get. Protobuf, like the payload it carries, so a
/// gateway reads the recipients without copying the payload.
///
/// A push of several messages of the conversation (those that were waiting together) also
/// carries each one alone in `singles`, with its sender's tags: a recipient who sent one of
/// them gets them one by one, as a push of one message would have come, so that its own
/// message can be held until its reply and matched to its request. Everyone else gets the
/// one payload with every message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Fanout {
    /// The recipients.
    #[prost(string, repeated, tag = "1")]
    pub users: Vec<String>,
    /// The 2001 payload ([`push_payload_of`]).
    #[prost(bytes = "bytes", tag = "2")]
    pub push: bytes::Bytes,
    /// When `push` holds several messages: each of them alone, in seq order.
    #[prost(message, repeated, tag = "3")]
    pub singles: Vec<SinglePush>,
}

/// One message of a [`Fanout`] of several, for the recipients who sent one of them.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SinglePush {
    /// The message's sender.
    #[prost(string, tag = "1")]
    pub sender: String,
    /// Its clientMsgID.
    #[prost(string, tag = "2")]
    pub client_msg_id: String,
    /// The operationID of the request that sent it.
    #[prost(string, tag = "3")]
    pub operation_id: String,
    /// Its 2001 payload ([`push_payload`]).
    #[prost(bytes = "bytes", tag = "4")]
    pub push: bytes::Bytes,
}

/// At most this many recipients go in one [`Fanout`]; a larger group's push is split, so a
/// message stays far below NATS' payload limit (1 MiB by default) whatever the group's size.
pub const FANOUT_USERS_PER_MESSAGE: usize = 1000;

/// At most this many messages go in one [`Fanout`] (the Go SDK pulls up to 100 at a time
/// too; `push.messages_per_push` may set fewer); with their singles, a push of 100 texts is
/// some tens of kilobytes.
pub const FANOUT_MESSAGES_PER_PUSH: usize = 100;

/// The headers a push carries, for the gateway: the operationID of the request that sent
/// the message (the sender's SDK matches on it), the clientMsgID and the sender (to hold the
/// sender's own push until its reply).
fn push_headers(message: &MsgSent, operation_id: &str) -> HeaderMap {
    let mut tags = HeaderMap::new();
    tags.insert(headers::OPERATION, operation_id);
    tags.insert(headers::CLIENT_MSG_ID, message.client_msg_id.as_str());
    tags.insert(headers::SENDER, message.send_id.as_str());
    tags
}

/// A gateway in the same process as the push service, which takes its fan-out pushes
/// straight from it instead of through NATS.
///
/// The push service then publishes on a connection made with `no_echo`, the one the local
/// gateway hears `im.fanout.*` on, so the server does not send the process its own pushes
/// back; gateways elsewhere hear them as usual. That saves, for every push, the server's
/// delivery of it to the process and the process' reading and parsing of it.
pub trait LocalFanout: Send + Sync {
    /// Delivers `fanout` as if it had come over NATS with `headers`.
    fn deliver_fanout(&self, fanout: &Fanout, headers: Option<&HeaderMap>);
}

/// Publishes `message` once for all of `users` on its conversation's fan-out subject (in
/// parts of [`FANOUT_USERS_PER_MESSAGE`]), tagged with the operationID of the request that
/// produced it. Does not flush; the client's writer sends it at once.
pub async fn publish_fanout(
    client: &async_nats::Client,
    users: &[String],
    message: &MsgSent,
    operation_id: &str,
) -> Result<(), DeliveryError> {
    publish_fanout_of(client, None, users, &[(message, operation_id)]).await
}

/// Publishes several messages of one conversation, in seq order and each with the
/// operationID of the request that sent it, once for all of `users`: one [`Fanout`] (a part
/// per [`FANOUT_USERS_PER_MESSAGE`] recipients) for every [`FANOUT_MESSAGES_PER_PUSH`]
/// messages. A push of one message is tagged in its headers, as it always was; one of
/// several carries its messages' tags in its singles. Each push also goes to `local`, if
/// the process has a gateway (see [`LocalFanout`] for the connection to publish on). Does
/// not flush.
pub async fn publish_fanout_of(
    client: &async_nats::Client,
    local: Option<&dyn LocalFanout>,
    users: &[String],
    messages: &[(&MsgSent, &str)],
) -> Result<(), DeliveryError> {
    let Some((first, _)) = messages.first() else {
        return Ok(());
    };
    let failed = |error: &dyn std::fmt::Display| DeliveryError::new(&first.conversation_id, error);
    let subject = fanout(&first.conversation_id).map_err(|error| failed(&error))?;
    for messages in messages.chunks(FANOUT_MESSAGES_PER_PUSH) {
        let (tags, singles) = match messages {
            [(message, operation_id)] => (push_headers(message, operation_id), Vec::new()),
            _ => (
                HeaderMap::new(),
                messages
                    .iter()
                    .map(|(message, operation_id)| SinglePush {
                        sender: message.send_id.clone(),
                        client_msg_id: message.client_msg_id.clone(),
                        operation_id: (*operation_id).to_owned(),
                        push: push_payload(message).into(),
                    })
                    .collect(),
            ),
        };
        let sent: Vec<&MsgSent> = messages.iter().map(|(message, _)| *message).collect();
        let push: bytes::Bytes = push_payload_of(&sent).into();
        for part in users.chunks(FANOUT_USERS_PER_MESSAGE) {
            let fanout = Fanout {
                users: part.to_vec(),
                push: push.clone(),
                singles: singles.clone(),
            };
            if let Some(local) = local {
                local.deliver_fanout(&fanout, (!tags.is_empty()).then_some(&tags));
            }
            client
                .publish_with_headers(subject.clone(), tags.clone(), fanout.encode_to_vec().into())
                .await
                .map_err(|error| failed(&error))?;
        }
    }
    Ok(())
}

/// Publishes `message` to each of `users`' delivery subjects, tagged with the operationID
/// of the request that produced it. Does not flush; the client's writer sends it at once.
pub async fn publish(
    client: &async_nats::Client,
    users: &[String],
    message: &MsgSent,
    operation_id: &str,
) -> Result<(), DeliveryError> {
    let payload: bytes::Bytes = push_payload(message).into();
    let tags = push_headers(message, operation_id);
    for user_id in users {
        let failed = |error: &dyn std::fmt::Display| DeliveryError::new(user_id, error);
        let subject = live(LiveKind::Deliver, user_id).map_err(|error| failed(&error))?;
        client
            .publish_with_headers(subject, tags.clone(), payload.clone())
            .await
            .map_err(|error| failed(&error))?;
    }
    Ok(())
}

/// Delivers an online-only message (never stored, seq 0) from the request that sent it.
pub async fn deliver_online_only(
    client: &async_nats::Client,
    message: &MsgSent,
    operation_id: &str,
) {
    let Recipients::Users(users) = recipients(message) else {
        tracing::debug!(group = %message.group_id, "online-only group messages wait for groups");
        return;
    };
    if let Err(error) = publish(client, &users, message, operation_id).await {
        tracing::warn!(%error, "an online-only message was not delivered");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use jetim_schemas::events::msg::MsgSent;
    use jetim_schemas::openim::sdkws::PushMessages;
    use prost::Message as _;

    use super::{Recipients, push_payload, push_payload_of, recipients};

    fn message(conversation_id: &str, session_type: i32) -> MsgSent {
        MsgSent {
            conversation_id: conversation_id.into(),
            seq: 7,
            server_msg_id: "s".into(),
            client_msg_id: "c".into(),
            send_id: "alice".into(),
            recv_id: "bob".into(),
            group_id: String::new(),
            sender_platform_id: 5,
            sender_nickname: String::new(),
            sender_face_url: String::new(),
            session_type,
            msg_from: 100,
            content_type: 101,
            content: r#"{"content":"hi"}"#.into(),
            send_time: 1,
            create_time: 1,
            options: BTreeMap::new(),
            offline_push: None,
            at_user_ids: Vec::new(),
            attached_info: String::new(),
            ex: String::new(),
        }
    }

    #[test]
    fn single_chats_reach_the_receiver_and_the_sender_unless_sender_sync_is_off() {
        let mut sent = message("si_alice_bob", 1);
        assert_eq!(
            recipients(&sent),
            Recipients::Users(vec!["bob".into(), "alice".into()])
        );
        sent.options.insert("senderSync".into(), false);
        assert_eq!(recipients(&sent), Recipients::Users(vec!["bob".into()]));
        let mut to_self = message("si_alice_alice", 1);
        to_self.recv_id = "alice".into();
        assert_eq!(
            recipients(&to_self),
            Recipients::Users(vec!["alice".into()])
        );
        let mut group = message("sg_g1", 3);
        group.group_id = "g1".into();
        assert_eq!(recipients(&group), Recipients::GroupMembers("g1".into()));
    }

    #[test]
    fn notification_conversations_go_under_notification_msgs() {
        let chat =
            PushMessages::decode(push_payload(&message("si_alice_bob", 1)).as_slice()).unwrap();
        assert_eq!(chat.msgs["si_alice_bob"].msgs[0].seq, 7);
        assert_eq!(chat.msgs["si_alice_bob"].msgs[0].status, 2);
        assert!(chat.notification_msgs.is_empty());
        let tip =
            PushMessages::decode(push_payload(&message("n_alice_bob", 4)).as_slice()).unwrap();
        assert!(tip.msgs.is_empty());
        assert_eq!(tip.notification_msgs["n_alice_bob"].msgs.len(), 1);
    }

    #[test]
    fn several_messages_of_a_conversation_make_one_payload_in_their_order() {
        let messages: Vec<MsgSent> = (1..=3)
            .map(|seq| MsgSent {
                seq,
                client_msg_id: format!("c{seq}"),
                ..message("sg_g", 3)
            })
            .collect();
        let messages: Vec<&MsgSent> = messages.iter().collect();
        let push = PushMessages::decode(push_payload_of(&messages).as_slice()).unwrap();
        assert_eq!(push.msgs.len(), 1);
        let pulled: Vec<(i64, &str)> = push.msgs["sg_g"]
            .msgs
            .iter()
            .map(|message| (message.seq, message.client_msg_id.as_str()))
            .collect();
        assert_eq!(pulled, [(1, "c1"), (2, "c2"), (3, "c3")]);
        assert_eq!(
            push_payload_of(&messages[..1]),
            push_payload(messages[0]),
            "one message is the push it always was"
        );
    }
}
