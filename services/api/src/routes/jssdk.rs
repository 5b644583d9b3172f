//! `/jssdk/get_active_conversations` and `/jssdk/get_conversations`: the conversation list as
//! the JS SDK loads it. With a protobuf Content-Type the body is the protobuf request and
//! `data` the base64 of the protobuf reply; with JSON (or none), JSON both ways. The owner is
//! always the caller, whatever the request says.

use std::collections::BTreeMap;

use axum::extract::State;
use base64::Engine as _;
use jetim_messaging::sync;
use jetim_readmodel::conversations::{self, ConversationRow};
use jetim_readmodel::groups::{self, GroupRow};
use jetim_readmodel::messages;
use jetim_readmodel::relations::{self, FriendWithUser};
use jetim_readmodel::users::{self, UserRow};
use jetim_schemas::openim::{conversation, jssdk, relation, sdkws};
use prost::Message as _;
use serde::{Deserialize, Serialize};

use super::conversation::ConversationJson;
use super::group::GroupInfoJson;
use super::msg::MsgJson;
use super::user::{UserInfo, read_failed};
use crate::ApiState;
use crate::openim::{ApiError, AuthedBytes, Reply, json};

/// The default, and the largest, number of active conversations returned.
const DEFAULT_COUNT: i64 = 100;
const MAX_COUNT: i64 = 500;

enum Encoding {
    Protobuf,
    Json,
}

fn encoding(content_type: &str) -> Result<Encoding, ApiError> {
    if content_type.contains("application/x-protobuf")
        || content_type.contains("application/protobuf")
    {
        Ok(Encoding::Protobuf)
    } else if content_type.is_empty() || content_type.contains("application/json") {
        Ok(Encoding::Json)
    } else {
        Err(ApiError::args("unsupported content type"))
    }
}

/// One conversation with everything the list shows.
pub(super) struct Entry {
    pub(super) row: ConversationRow,
    /// The newest message, as a pull shows it.
    pub(super) last: sdkws::MsgData,
    /// The peer's profile (single and notification conversations).
    pub(super) user: Option<UserRow>,
    /// The owner's friendship with the peer, if they list them (single chats).
    pub(super) friend: Option<FriendWithUser>,
    /// The group (group conversations).
    pub(super) group: Option<GroupRow>,
    pub(super) max_seq: i64,
    pub(super) read_seq: i64,
    pub(super) last_time: i64,
}

/// The caller's conversations that have messages (all, or those named), newest first with
/// pinned ones ahead, and the unread total over all of them.
pub(super) async fn entries(
    state: &ApiState,
    owner: &str,
    only: Option<&[String]>,
) -> Result<(i64, Vec<Entry>), ApiError> {
    let seq_states = messages::seq_states(&state.db, owner, only)
        .await
        .map_err(|error| read_failed(&error))?;
    let with_messages: Vec<String> = seq_states
        .iter()
        .filter(|(_, seq_state)| seq_state.max_seq > 0)
        .map(|(id, _)| id.clone())
        .collect();
    let rows = conversations::list(&state.db, owner, Some(&with_messages))
        .await
        .map_err(|error| read_failed(&error))?;
    let mut lasts = messages::last_messages(&state.db, &with_messages)
        .await
        .map_err(|error| read_failed(&error))?;
    let peers: Vec<String> = rows
        .iter()
        .filter(|row| !row.user_id.is_empty())
        .map(|row| row.user_id.clone())
        .collect();
    let people: BTreeMap<String, UserRow> = users::find(&state.db, &peers)
        .await
        .map_err(|error| read_failed(&error))?
        .into_iter()
        .map(|user| (user.user_id.clone(), user))
        .collect();
    let mut friends: BTreeMap<String, FriendWithUser> =
        relations::friends_among(&state.db, owner, &peers)
            .await
            .map_err(|error| read_failed(&error))?
            .into_iter()
            .map(|found| (found.friend.friend_user_id.clone(), found))
            .collect();
    let group_ids: Vec<String> = rows
        .iter()
        .filter(|row| !row.group_id.is_empty())
        .map(|row| row.group_id.clone())
        .collect();
    let in_groups: BTreeMap<String, GroupRow> = groups::groups(&state.db, &group_ids)
        .await
        .map_err(|error| read_failed(&error))?
        .into_iter()
        .map(|group| (group.group_id.clone(), group))
        .collect();
    let mut unread = 0;
    let mut found = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(seq_state) = seq_states.get(&row.conversation_id).copied() else {
            continue;
        };
        let Some(last) = lasts.remove(&row.conversation_id) else {
            continue;
        };
        let max_seq = i64::try_from(seq_state.max_seq).unwrap_or(i64::MAX);
        let read_seq = i64::try_from(seq_state.has_read_seq).unwrap_or(i64::MAX);
        // An `n_` conversation holds notifications only (revoke, delete and read tips),
        // none of which counts unread.
        if !row.conversation_id.starts_with("n_") {
            unread += (max_seq - read_seq).max(0);
        }
        let user = people.get(&row.user_id).cloned();
        let friend = if row.conversation_type == 1 {
            friends.remove(&row.user_id)
        } else {
            None
        };
        found.push(Entry {
            last: jetim_messaging::revoke::as_pulled(&last),
            user,
            friend,
            group: in_groups.get(&row.group_id).cloned(),
            max_seq,
            read_seq,
            last_time: seq_state.max_seq_time,
            row,
        });
    }
    found.sort_by(|left, right| {
        right
            .row
            .is_pinned
            .cmp(&left.row.is_pinned)
            .then(right.last_time.cmp(&left.last_time))
            .then(left.row.conversation_id.cmp(&right.row.conversation_id))
    });
    Ok((unread, found))
}

fn user_proto(user: UserRow) -> sdkws::UserInfo {
    sdkws::UserInfo {
        user_id: user.user_id,
        nickname: user.nickname,
        face_url: user.face_url,
        ex: user.ex,
        create_time: user.create_time,
        app_manger_level: user.app_manger_level,
        global_recv_msg_opt: user.global_recv_msg_opt,
    }
}

fn to_proto(entry: Entry) -> jssdk::ConversationMsg {
    let row = entry.row;
    jssdk::ConversationMsg {
        conversation: Some(conversation::Conversation {
            owner_user_id: row.owner_user_id,
            conversation_id: row.conversation_id,
            recv_msg_opt: row.recv_msg_opt,
            conversation_type: row.conversation_type,
            user_id: row.user_id,
            group_id: row.group_id,
            is_pinned: row.is_pinned,
            attached_info: row.attached_info,
            is_private_chat: row.is_private_chat,
            group_at_type: row.group_at_type,
            ex: row.ex,
            burn_duration: row.burn_duration,
            min_seq: row.min_seq,
            max_seq: row.max_seq,
            msg_destruct_time: row.msg_destruct_time,
            latest_msg_destruct_time: row.latest_msg_destruct_time,
            is_msg_destruct: row.is_msg_destruct,
        }),
        last_msg: Some(entry.last),
        user: entry.user.map(user_proto),
        friend: entry.friend.map(|found| relation::FriendInfoOnly {
            owner_user_id: found.friend.owner_user_id,
            friend_user_id: found.friend.friend_user_id,
            remark: found.friend.remark,
            create_time: found.friend.create_time,
            add_source: found.friend.add_source,
            operator_user_id: found.friend.operator_user_id,
            ex: found.friend.ex,
            is_pinned: found.friend.is_pinned,
        }),
        group: entry.group.map(|group| sdkws::GroupInfo {
            group_id: group.group_id,
            group_name: group.group_name,
            notification: group.notification,
            introduction: group.introduction,
            face_url: group.face_url,
            owner_user_id: group.owner_user_id,
            create_time: group.create_time,
            member_count: u32::try_from(group.member_count).unwrap_or(u32::MAX),
            ex: group.ex,
            status: group.status,
            creator_user_id: group.creator_user_id,
            group_type: group.group_type,
            need_verification: group.need_verification,
            look_member_info: group.look_member_info,
            apply_member_friend: group.apply_member_friend,
            notification_update_time: group.notification_update_time,
            notification_user_id: group.notification_user_id,
        }),
        max_seq: entry.max_seq,
        read_seq: entry.read_seq,
    }
}

/// `ConversationMsg` as JSON.
#[derive(Debug, Serialize)]
pub struct ConversationMsgJson {
    conversation: ConversationJson,
    #[serde(rename = "lastMsg")]
    last_msg: MsgJson,
    user: Option<UserInfo>,
    friend: Option<FriendInfoOnlyJson>,
    group: Option<GroupInfoJson>,
    #[serde(rename = "maxSeq")]
    max_seq: i64,
    #[serde(rename = "readSeq")]
    read_seq: i64,
}

/// OpenIM's `FriendInfoOnly`: a friendship without the friend's profile.
#[derive(Debug, Serialize)]
pub struct FriendInfoOnlyJson {
    #[serde(rename = "ownerUserID")]
    owner_user_id: String,
    #[serde(rename = "friendUserID")]
    friend_user_id: String,
    remark: String,
    #[serde(rename = "createTime")]
    create_time: i64,
    #[serde(rename = "addSource")]
    add_source: i32,
    #[serde(rename = "operatorUserID")]
    operator_user_id: String,
    ex: String,
    #[serde(rename = "isPinned")]
    is_pinned: bool,
}

/// Both routes' JSON reply.
#[derive(Debug, Serialize)]
pub struct ConversationsJson {
    #[serde(rename = "unreadCount")]
    unread_count: i64,
    #[serde(serialize_with = "crate::openim::null_if_empty")]
    conversations: Vec<ConversationMsgJson>,
}

fn to_json(unread_count: i64, entries: Vec<Entry>) -> ConversationsJson {
    ConversationsJson {
        unread_count,
        conversations: entries
            .into_iter()
            .map(|entry| ConversationMsgJson {
                conversation: entry.row.into(),
                last_msg: entry.last.into(),
                user: entry.user.map(Into::into),
                friend: entry.friend.map(|found| FriendInfoOnlyJson {
                    owner_user_id: found.friend.owner_user_id,
                    friend_user_id: found.friend.friend_user_id,
                    remark: found.friend.remark,
                    create_time: found.friend.create_time,
                    add_source: found.friend.add_source,
                    operator_user_id: found.friend.operator_user_id,
                    ex: found.friend.ex,
                    is_pinned: found.friend.is_pinned,
                }),
                group: entry.group.map(Into::into),
                max_seq: entry.max_seq,
                read_seq: entry.read_seq,
            })
            .collect(),
    }
}

/// Either the base64 protobuf or the JSON reply.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum JssdkReply {
    /// Base64 of the protobuf reply.
    Protobuf(String),
    /// The JSON reply.
    Json(ConversationsJson),
}

fn bad_protobuf(error: &prost::DecodeError) -> ApiError {
    ApiError::args(format!("the body is not a valid protobuf request: {error}"))
}

fn bad_json(error: &serde_json::Error) -> ApiError {
    ApiError {
        code: crate::openim::Code::Args,
        message: error.to_string(),
        detail: String::new(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ActiveJson {
    count: i64,
}

/// The caller's conversations with messages, pinned first then newest, at most `count`.
pub async fn get_active_conversations(
    State(state): State<ApiState>,
    request: AuthedBytes,
) -> Result<Reply<JssdkReply>, ApiError> {
    let format = encoding(&request.content_type)?;
    let count = match format {
        Encoding::Protobuf => {
            jssdk::GetActiveConversationsReq::decode(request.body.as_ref())
                .map_err(|error| bad_protobuf(&error))?
                .count
        }
        Encoding::Json => {
            json::decode::<ActiveJson>(&request.body)
                .map_err(|error| bad_json(&error))?
                .count
        }
    };
    let count = if count <= 0 || count > MAX_COUNT {
        DEFAULT_COUNT
    } else {
        count
    };
    let (unread_count, mut found) = entries(&state, &request.caller.user_id, None).await?;
    found.truncate(usize::try_from(count).unwrap_or(100));
    Ok(Reply(match format {
        Encoding::Protobuf => JssdkReply::Protobuf(
            base64::engine::general_purpose::STANDARD.encode(
                jssdk::GetActiveConversationsResp {
                    unread_count,
                    conversations: found.into_iter().map(to_proto).collect(),
                }
                .encode_to_vec(),
            ),
        ),
        Encoding::Json => JssdkReply::Json(to_json(unread_count, found)),
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ConversationsJsonRequest {
    #[serde(rename = "conversationIDs")]
    conversation_ids: Vec<String>,
}

/// The named conversations of the caller that exist and have a message.
pub async fn get_conversations(
    State(state): State<ApiState>,
    request: AuthedBytes,
) -> Result<Reply<JssdkReply>, ApiError> {
    let format = encoding(&request.content_type)?;
    let conversation_ids = match format {
        Encoding::Protobuf => {
            jssdk::GetConversationsReq::decode(request.body.as_ref())
                .map_err(|error| bad_protobuf(&error))?
                .conversation_i_ds
        }
        Encoding::Json => {
            json::decode::<ConversationsJsonRequest>(&request.body)
                .map_err(|error| bad_json(&error))?
                .conversation_ids
        }
    };
    if conversation_ids.len() > 1000 {
        return Err(ApiError::args("at most 1000 conversationIDs per request"));
    }
    let owner = &request.caller.user_id;
    // The JS SDK asks for a conversation it has no answer for yet, once for each message
    // pushed to it meanwhile, and keeps whichever answer comes last: so every answer must
    // show the messages stored when it was asked (the read model may not yet, or not have
    // the conversation at all), and must not be older than one pushed while it waited.
    let mut catch_up = sync::CatchUp::new(&state.log, &state.db, owner);
    for conversation_id in &conversation_ids {
        catch_up.wait(conversation_id).await;
    }
    let (mut unread_count, mut found) = entries(&state, owner, Some(&conversation_ids)).await?;
    // Read again while the conversations' logs moved on (twice at most, within the wait's
    // deadline).
    for _ in 0..2 {
        if !catch_up.moved().await {
            break;
        }
        (unread_count, found) = entries(&state, owner, Some(&conversation_ids)).await?;
    }
    Ok(Reply(match format {
        Encoding::Protobuf => JssdkReply::Protobuf(
            base64::engine::general_purpose::STANDARD.encode(
                jssdk::GetConversationsResp {
                    unread_count,
                    conversations: found.into_iter().map(to_proto).collect(),
                }
                .encode_to_vec(),
            ),
        ),
        Encoding::Json => JssdkReply::Json(to_json(unread_count, found)),
    }))
}
