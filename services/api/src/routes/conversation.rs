//! `/conversation/*`: a user's conversation rows and their settings.
//!
//! Rows are made by the first message of a conversation, or by `set_conversations`; settings
//! change through `conversation.set` events on `im.user.<ownerUserID>.conversation`. A row is
//! also what lets its owner pull the conversation, so `set_conversations` accepts only the
//! conversation ID OpenIM's rules give for the owner and the peer.

use std::collections::BTreeMap;

use axum::extract::State;
use jetim_messaging::conversation::{SessionType, chat_conversation_id};
use jetim_readmodel::conversations::{self, ConversationRow};
use jetim_readmodel::versions::Log;
use jetim_schemas::events::conversation::{
    ConversationSet, ConversationsDeleted, DeletedConversation,
};
use jetim_streams::Expect;
use jetim_streams::subject::{Subject, UserKind};
use serde::{Deserialize, Serialize};

use super::args::{
    MAX_EX_BYTES, Pagination, check_conversation_ids, check_id_list, check_length, check_user_id,
};
use super::incremental::{self, FullIdsRequest, IncrementalRequest};
use super::user::{append_failed, read_failed};
use crate::ApiState;
use crate::openim::{ApiError, Authed, Code, Done, Reply, null_if_empty};

/// OpenIM's `Conversation`, as Go's JSON writes it.
#[derive(Debug, Serialize)]
pub struct ConversationJson {
    #[serde(rename = "ownerUserID")]
    owner_user_id: String,
    #[serde(rename = "conversationID")]
    conversation_id: String,
    #[serde(rename = "recvMsgOpt")]
    recv_msg_opt: i32,
    #[serde(rename = "conversationType")]
    conversation_type: i32,
    #[serde(rename = "userID")]
    user_id: String,
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "isPinned")]
    is_pinned: bool,
    #[serde(rename = "attachedInfo")]
    attached_info: String,
    #[serde(rename = "isPrivateChat")]
    is_private_chat: bool,
    #[serde(rename = "groupAtType")]
    group_at_type: i32,
    ex: String,
    #[serde(rename = "burnDuration")]
    burn_duration: i32,
    #[serde(rename = "minSeq")]
    min_seq: i64,
    #[serde(rename = "maxSeq")]
    max_seq: i64,
    #[serde(rename = "msgDestructTime")]
    msg_destruct_time: i64,
    #[serde(rename = "latestMsgDestructTime")]
    latest_msg_destruct_time: i64,
    #[serde(rename = "isMsgDestruct")]
    is_msg_destruct: bool,
}

impl From<ConversationRow> for ConversationJson {
    fn from(row: ConversationRow) -> Self {
        Self {
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
        }
    }
}

/// A list of conversations.
#[derive(Debug, Serialize)]
pub struct ConversationsReply {
    #[serde(serialize_with = "null_if_empty")]
    conversations: Vec<ConversationJson>,
}

/// A list of conversation IDs.
#[derive(Debug, Serialize)]
pub struct ConversationIdsReply {
    #[serde(rename = "conversationIDs", serialize_with = "null_if_empty")]
    conversation_ids: Vec<String>,
}

/// A request for one owner's conversations, optionally some of them.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OwnerRequest {
    #[serde(rename = "ownerUserID")]
    owner_user_id: String,
    #[serde(rename = "conversationID")]
    conversation_id: String,
    #[serde(rename = "conversationIDs")]
    conversation_ids: Vec<String>,
}

async fn owned(
    state: &ApiState,
    request: &Authed<OwnerRequest>,
    only: Option<&[String]>,
) -> Result<Vec<ConversationRow>, ApiError> {
    check_user_id("ownerUserID", &request.body.owner_user_id)?;
    request
        .caller
        .require_self_or_admin(&request.body.owner_user_id)?;
    conversations::list(&state.db, &request.body.owner_user_id, only)
        .await
        .map_err(|error| read_failed(&error))
}

/// Every conversation of the owner.
pub async fn get_all_conversations(
    State(state): State<ApiState>,
    request: Authed<OwnerRequest>,
) -> Result<Reply<ConversationsReply>, ApiError> {
    let rows = owned(&state, &request, None).await?;
    Ok(Reply(ConversationsReply {
        conversations: rows.into_iter().map(ConversationJson::from).collect(),
    }))
}

/// The named conversations of the owner; unknown ones are left out.
pub async fn get_conversations(
    State(state): State<ApiState>,
    request: Authed<OwnerRequest>,
) -> Result<Reply<ConversationsReply>, ApiError> {
    if request.body.conversation_ids.is_empty() {
        return Err(ApiError::args("conversationIDs is empty"));
    }
    let ids = request.body.conversation_ids.clone();
    let rows = owned(&state, &request, Some(&ids)).await?;
    Ok(Reply(ConversationsReply {
        conversations: rows.into_iter().map(ConversationJson::from).collect(),
    }))
}

/// `/conversation/get_conversation` reply.
#[derive(Debug, Serialize)]
pub struct ConversationReply {
    conversation: ConversationJson,
}

/// One conversation of the owner; 1004 if they have no such row.
pub async fn get_conversation(
    State(state): State<ApiState>,
    request: Authed<OwnerRequest>,
) -> Result<Reply<ConversationReply>, ApiError> {
    let id = request.body.conversation_id.clone();
    if id.is_empty() {
        return Err(ApiError::args("conversationID is empty"));
    }
    let row = owned(&state, &request, Some(std::slice::from_ref(&id)))
        .await?
        .pop()
        .ok_or_else(|| {
            ApiError::new(
                Code::RecordNotFound,
                format!("{} has no conversation {id}", request.body.owner_user_id),
            )
        })?;
    Ok(Reply(ConversationReply {
        conversation: row.into(),
    }))
}

/// A request naming a user, optionally with a page or `ex`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UserRequest {
    #[serde(rename = "userID")]
    user_id: String,
    pagination: Option<Pagination>,
    ex: Option<String>,
}

fn checked_user(request: &Authed<UserRequest>) -> Result<(), ApiError> {
    check_user_id("userID", &request.body.user_id)?;
    request.caller.require_self_or_admin(&request.body.user_id)
}

/// `/conversation/get_owner_conversation` reply.
#[derive(Debug, Serialize)]
pub struct OwnerPageReply {
    total: i64,
    #[serde(serialize_with = "null_if_empty")]
    conversations: Vec<ConversationJson>,
}

/// A page of the user's conversations, most recent message first.
pub async fn get_owner_conversation(
    State(state): State<ApiState>,
    request: Authed<UserRequest>,
) -> Result<Reply<OwnerPageReply>, ApiError> {
    checked_user(&request)?;
    let (offset, limit) = Pagination::window(request.body.pagination.as_ref())?;
    let (total, rows) = conversations::page(&state.db, &request.body.user_id, offset, limit)
        .await
        .map_err(|error| read_failed(&error))?;
    Ok(Reply(OwnerPageReply {
        total,
        conversations: rows.into_iter().map(ConversationJson::from).collect(),
    }))
}

async fn ids_where(
    state: &ApiState,
    request: &Authed<UserRequest>,
    keep: fn(&ConversationRow) -> bool,
) -> Result<Reply<ConversationIdsReply>, ApiError> {
    checked_user(request)?;
    let rows = conversations::list(&state.db, &request.body.user_id, None)
        .await
        .map_err(|error| read_failed(&error))?;
    Ok(Reply(ConversationIdsReply {
        conversation_ids: rows
            .into_iter()
            .filter(keep)
            .map(|row| row.conversation_id)
            .collect(),
    }))
}

/// Conversations the user receives without notification (recvMsgOpt 2).
pub async fn get_not_notify_conversation_ids(
    State(state): State<ApiState>,
    request: Authed<UserRequest>,
) -> Result<Reply<ConversationIdsReply>, ApiError> {
    ids_where(&state, &request, |row| row.recv_msg_opt == 2).await
}

/// The user's pinned conversations.
pub async fn get_pinned_conversation_ids(
    State(state): State<ApiState>,
    request: Authed<UserRequest>,
) -> Result<Reply<ConversationIdsReply>, ApiError> {
    ids_where(&state, &request, |row| row.is_pinned).await
}

/// The settings part of `set_conversations`; absent fields are unchanged.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConversationChange {
    #[serde(rename = "conversationID")]
    conversation_id: String,
    #[serde(rename = "conversationType")]
    conversation_type: i32,
    #[serde(rename = "userID")]
    user_id: String,
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "recvMsgOpt")]
    recv_msg_opt: Option<i32>,
    #[serde(rename = "isPinned")]
    is_pinned: Option<bool>,
    #[serde(rename = "attachedInfo")]
    attached_info: Option<String>,
    #[serde(rename = "isPrivateChat")]
    is_private_chat: Option<bool>,
    ex: Option<String>,
    #[serde(rename = "burnDuration")]
    burn_duration: Option<i32>,
    #[serde(rename = "groupAtType")]
    group_at_type: Option<i32>,
    #[serde(rename = "msgDestructTime")]
    msg_destruct_time: Option<i64>,
    #[serde(rename = "isMsgDestruct")]
    is_msg_destruct: Option<bool>,
}

/// `/conversation/set_conversations` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SetRequest {
    #[serde(rename = "userIDs")]
    user_ids: Vec<String>,
    conversation: Option<ConversationChange>,
}

/// The conversation ID the rules give for `owner` and the change's peer or group.
fn expected_conversation_id(owner: &str, change: &ConversationChange) -> Result<String, ApiError> {
    let session = match change.conversation_type {
        1 => SessionType::Single,
        4 => SessionType::Notification,
        3 => {
            return Err(ApiError::new(
                Code::GroupIdNotFound,
                format!("group {:?} does not exist", change.group_id),
            ));
        }
        other => {
            return Err(ApiError::args(format!(
                "conversationType {other} is not 1, 3 or 4"
            )));
        }
    };
    check_user_id("conversation.userID", &change.user_id)?;
    Ok(chat_conversation_id(session, owner, &change.user_id, ""))
}

/// Sets conversation settings for each of `userIDs` (each must be the caller, or the caller an
/// admin), making missing rows. `minSeq` and `maxSeq` are the server's and are ignored.
pub async fn set_conversations(
    State(state): State<ApiState>,
    request: Authed<SetRequest>,
) -> Result<Done, ApiError> {
    let body = request.body;
    check_id_list("userIDs", &body.user_ids)?;
    for user_id in &body.user_ids {
        request.caller.require_self_or_admin(user_id)?;
    }
    let change = body
        .conversation
        .ok_or_else(|| ApiError::args("conversation is missing"))?;
    if let Some(option) = change.recv_msg_opt
        && !(0..=2).contains(&option)
    {
        return Err(ApiError::args(format!(
            "recvMsgOpt {option} is not 0, 1 or 2"
        )));
    }
    check_length("ex", change.ex.as_deref().unwrap_or(""), MAX_EX_BYTES)?;
    check_length(
        "attachedInfo",
        change.attached_info.as_deref().unwrap_or(""),
        MAX_EX_BYTES,
    )?;
    let mut events = Vec::with_capacity(body.user_ids.len());
    for owner in &body.user_ids {
        let expected = expected_conversation_id(owner, &change)?;
        if change.conversation_id != expected {
            return Err(ApiError::args(format!(
                "conversationID {:?} is not {owner}'s conversation with {:?} (that is {expected})",
                change.conversation_id, change.user_id
            )));
        }
        events.push(ConversationSet {
            owner_user_id: owner.clone(),
            conversation_id: expected,
            conversation_type: change.conversation_type,
            user_id: change.user_id.clone(),
            group_id: change.group_id.clone(),
            recv_msg_opt: change.recv_msg_opt,
            is_pinned: change.is_pinned,
            attached_info: change.attached_info.clone(),
            is_private_chat: change.is_private_chat,
            group_at_type: change.group_at_type,
            ex: change.ex.clone(),
            burn_duration: change.burn_duration,
            msg_destruct_time: change.msg_destruct_time,
            is_msg_destruct: change.is_msg_destruct,
        });
    }
    append_all(
        &state,
        (&request.caller.user_id, &request.operation_id),
        events,
    )
    .await
}

/// Appends the settings, waits until the projection shows them, then tells each owner's
/// connections which of their conversations changed (1300 `ConversationUpdateTips`, push
/// only, in their own `n_<user>_<user>`), so their other devices sync them.
async fn append_all(
    state: &ApiState,
    (actor, operation_id): (&str, &str),
    events: Vec<ConversationSet>,
) -> Result<Done, ApiError> {
    let mut changed: std::collections::BTreeMap<String, Vec<String>> =
        std::collections::BTreeMap::new();
    for event in &events {
        changed
            .entry(event.owner_user_id.clone())
            .or_default()
            .push(event.conversation_id.clone());
    }
    let mut last = 0;
    for event in events {
        let subject = Subject::user(&event.owner_user_id, UserKind::Conversation)
            .map_err(|error| ApiError::args(format!("userID: {error}")))?;
        last = state
            .log
            .append(&subject, actor, Expect::Anything, None, &event)
            .await
            .map_err(|error| append_failed(&error))?
            .stream_sequence;
    }
    super::wait_for_projection(state, conversations::NAME, conversations::VERSION, last).await;
    for (owner, conversation_ids) in changed {
        let notification = jetim_messaging::notification::Notification {
            content_type: 1300,
            send_id: owner.clone(),
            recv_id: owner.clone(),
            group_id: String::new(),
            tips: serde_json::json!({ "userID": owner, "conversationIDList": conversation_ids }),
            offline_push: false,
            now_ms: super::user::now_millis(),
        };
        super::push_to_both(state, operation_id, &notification).await;
    }
    Ok(Done)
}

/// Sets `ex` on every conversation of the user.
pub async fn update_conversations_by_user(
    State(state): State<ApiState>,
    request: Authed<UserRequest>,
) -> Result<Done, ApiError> {
    checked_user(&request)?;
    let Some(ex) = request.body.ex.clone() else {
        return Ok(Done);
    };
    check_length("ex", &ex, MAX_EX_BYTES)?;
    let rows = conversations::list(&state.db, &request.body.user_id, None)
        .await
        .map_err(|error| read_failed(&error))?;
    let events = rows
        .into_iter()
        .map(|row| ConversationSet {
            owner_user_id: row.owner_user_id,
            conversation_id: row.conversation_id,
            conversation_type: row.conversation_type,
            user_id: row.user_id,
            group_id: row.group_id,
            ex: Some(ex.clone()),
            ..ConversationSet::default()
        })
        .collect();
    append_all(
        &state,
        (&request.caller.user_id, &request.operation_id),
        events,
    )
    .await
}

/// `/conversation/get_incremental_conversations` reply.
#[derive(Debug, Serialize)]
pub struct IncrementalReply {
    version: i64,
    #[serde(rename = "versionID")]
    version_id: String,
    full: bool,
    #[serde(serialize_with = "null_if_empty")]
    delete: Vec<String>,
    #[serde(serialize_with = "null_if_empty")]
    insert: Vec<ConversationJson>,
    #[serde(serialize_with = "null_if_empty")]
    update: Vec<ConversationJson>,
}

/// The changes to the user's conversations since the client's version, or `full` when the
/// client must download everything again (unknown log, too old, or too many changes).
pub async fn get_incremental_conversations(
    State(state): State<ApiState>,
    request: Authed<IncrementalRequest>,
) -> Result<Reply<IncrementalReply>, ApiError> {
    let delta = incremental::delta(&state, &request, Log::Conversations).await?;
    let mut reply = IncrementalReply {
        version: delta.version,
        version_id: delta.version_id,
        full: delta.changes.is_none(),
        delete: Vec::new(),
        insert: Vec::new(),
        update: Vec::new(),
    };
    if let Some(changes) = delta.changes {
        let mut rows: BTreeMap<String, ConversationJson> =
            conversations::list(&state.db, &request.body.user_id, Some(&changes.present()))
                .await
                .map_err(|error| read_failed(&error))?
                .into_iter()
                .map(|row| (row.conversation_id.clone(), row.into()))
                .collect();
        reply.insert = incremental::take(&mut rows, &changes.inserted);
        reply.update = incremental::take(&mut rows, &changes.updated);
        reply.delete = changes.deleted;
    }
    Ok(Reply(reply))
}

/// Every conversation ID of the user, or `equal` when the client's hash already matches.
pub async fn get_full_conversation_ids(
    State(state): State<ApiState>,
    request: Authed<FullIdsRequest>,
) -> Result<Reply<incremental::FullIds>, ApiError> {
    let body = request.body;
    check_user_id("userID", &body.user_id)?;
    request.caller.require_self_or_admin(&body.user_id)?;
    let ids = async {
        Ok(conversations::list(&state.db, &body.user_id, None)
            .await
            .map_err(|error| read_failed(&error))?
            .into_iter()
            .map(|row| row.conversation_id)
            .collect())
    };
    let owner = (Log::Conversations, body.user_id.as_str());
    Ok(Reply(
        incremental::full_ids(&state, owner, body.id_hash, "conversationIDs", ids).await?,
    ))
}

/// `/conversation/delete_conversations` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeleteConversationsRequest {
    #[serde(rename = "ownerUserID")]
    owner_user_id: String,
    /// Days: delete the conversations whose last message is older.
    #[serde(rename = "needDeleteTime")]
    need_delete_time: i64,
    #[serde(rename = "conversationIDs")]
    conversation_ids: Vec<String>,
}

/// Takes conversations off the owner's list: the named ones, or (with `needDeleteTime`) those
/// whose last message is more than that many days old. A later message brings one back, with
/// default settings; its messages stay pullable.
pub async fn delete_conversations(
    State(state): State<ApiState>,
    request: Authed<DeleteConversationsRequest>,
) -> Result<Done, ApiError> {
    let body = &request.body;
    check_user_id("ownerUserID", &body.owner_user_id)?;
    request.caller.require_self_or_admin(&body.owner_user_id)?;
    let by_age = match (body.need_delete_time, body.conversation_ids.is_empty()) {
        (0, true) => {
            return Err(ApiError::args(
                "set either needDeleteTime (days) or conversationIDs",
            ));
        }
        (days, true) if days < 0 => {
            return Err(ApiError::args(format!(
                "needDeleteTime {days} is negative; it is a number of days"
            )));
        }
        (days, true) => Some(days),
        (0, false) => None,
        (_, false) => {
            return Err(ApiError::args(
                "needDeleteTime and conversationIDs cannot both be set",
            ));
        }
    };
    let named = if by_age.is_none() {
        check_conversation_ids("conversationIDs", &body.conversation_ids)?;
        Some(body.conversation_ids.as_slice())
    } else {
        None
    };
    let states = jetim_readmodel::messages::seq_states(&state.db, &body.owner_user_id, named)
        .await
        .map_err(|error| read_failed(&error))?;
    let rows: BTreeMap<String, ConversationRow> =
        conversations::list(&state.db, &body.owner_user_id, named)
            .await
            .map_err(|error| read_failed(&error))?
            .into_iter()
            .map(|row| (row.conversation_id.clone(), row))
            .collect();
    if let Some(missing) = body
        .conversation_ids
        .iter()
        .find(|id| !states.contains_key(*id))
    {
        return Err(ApiError::new(
            Code::RecordNotFound,
            format!("{} has no conversation {missing}", body.owner_user_id),
        ));
    }
    let older_than = by_age
        .map(|days| super::user::now_millis().saturating_sub(days.saturating_mul(86_400_000)));
    let deleted: Vec<DeletedConversation> = states
        .into_iter()
        .filter(|(_, seq_state)| {
            // By age, only conversations with messages count, as upstream's.
            older_than.is_none_or(|cutoff| seq_state.max_seq > 0 && seq_state.max_seq_time < cutoff)
        })
        .filter_map(|(conversation_id, seq_state)| {
            let row = rows.get(&conversation_id)?;
            Some(DeletedConversation {
                conversation_type: row.conversation_type,
                user_id: row.user_id.clone(),
                group_id: row.group_id.clone(),
                conversation_id,
                through_seq: seq_state.max_seq,
            })
        })
        .collect();
    if deleted.is_empty() {
        return Ok(Done);
    }
    let subject = Subject::user(&body.owner_user_id, UserKind::Conversation)
        .map_err(|error| ApiError::args(format!("ownerUserID: {error}")))?;
    let event = ConversationsDeleted {
        owner_user_id: body.owner_user_id.clone(),
        conversations: deleted,
    };
    let sequence = state
        .log
        .append(
            &subject,
            &request.caller.user_id,
            Expect::Anything,
            None,
            &event,
        )
        .await
        .map_err(|error| append_failed(&error))?
        .stream_sequence;
    super::wait_for_projection(
        &state,
        conversations::NAME,
        conversations::VERSION,
        sequence,
    )
    .await;
    Ok(Done)
}

/// `/conversation/get_sorted_conversation_list` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SortedListRequest {
    #[serde(rename = "userID")]
    user_id: String,
    #[serde(rename = "conversationIDs")]
    conversation_ids: Vec<String>,
    pagination: Option<Pagination>,
}

/// OpenIM's `MsgInfo`: the newest message of a conversation as the sorted list shows it.
#[derive(Debug, Serialize)]
pub struct MsgInfoJson {
    #[serde(rename = "serverMsgID")]
    server_msg_id: String,
    #[serde(rename = "clientMsgID")]
    client_msg_id: String,
    #[serde(rename = "sessionType")]
    session_type: i32,
    #[serde(rename = "sendID")]
    send_id: String,
    #[serde(rename = "recvID")]
    recv_id: String,
    #[serde(rename = "senderName")]
    sender_name: String,
    #[serde(rename = "faceURL")]
    face_url: String,
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "groupName")]
    group_name: String,
    #[serde(rename = "groupFaceURL")]
    group_face_url: String,
    #[serde(rename = "groupType")]
    group_type: i32,
    #[serde(rename = "groupMemberCount")]
    group_member_count: u32,
    #[serde(rename = "LatestMsgRecvTime")]
    latest_msg_recv_time: i64,
    #[serde(rename = "msgFrom")]
    msg_from: i32,
    #[serde(rename = "contentType")]
    content_type: i32,
    content: String,
    ex: String,
}

/// OpenIM's `ConversationElem`.
#[derive(Debug, Serialize)]
pub struct ConversationElemJson {
    #[serde(rename = "conversationID")]
    conversation_id: String,
    #[serde(rename = "recvMsgOpt")]
    recv_msg_opt: i32,
    #[serde(rename = "unreadCount")]
    unread_count: i64,
    #[serde(rename = "IsPinned")]
    is_pinned: bool,
    #[serde(rename = "msgInfo")]
    msg_info: Option<MsgInfoJson>,
}

/// `/conversation/get_sorted_conversation_list` reply.
#[derive(Debug, Serialize)]
pub struct SortedListReply {
    #[serde(rename = "conversationTotal")]
    conversation_total: i64,
    #[serde(rename = "unreadTotal")]
    unread_total: i64,
    #[serde(rename = "conversationElems", serialize_with = "null_if_empty")]
    conversation_elems: Vec<ConversationElemJson>,
}

fn sorted_element(entry: super::jssdk::Entry) -> ConversationElemJson {
    let last = entry.last;
    // In a single chat the name and face are the peer's, whoever sent the message.
    let (sender_name, face_url) = match (&entry.user, last.session_type) {
        (Some(peer), 1) => (peer.nickname.clone(), peer.face_url.clone()),
        _ => (String::new(), String::new()),
    };
    ConversationElemJson {
        conversation_id: entry.row.conversation_id,
        recv_msg_opt: entry.row.recv_msg_opt,
        unread_count: (entry.max_seq - entry.read_seq).max(0),
        is_pinned: entry.row.is_pinned,
        msg_info: Some(MsgInfoJson {
            server_msg_id: last.server_msg_id,
            client_msg_id: last.client_msg_id,
            session_type: last.session_type,
            send_id: last.send_id,
            recv_id: last.recv_id,
            sender_name,
            face_url,
            group_id: last.group_id,
            // Group profiles arrive with the relations work.
            group_name: String::new(),
            group_face_url: String::new(),
            group_type: 0,
            group_member_count: 0,
            latest_msg_recv_time: last.send_time,
            msg_from: last.msg_from,
            content_type: last.content_type,
            content: String::from_utf8_lossy(&last.content).into_owned(),
            ex: last.ex,
        }),
    }
}

/// The user's conversations (all, or those named): pinned first, then by newest message;
/// conversations without messages last. `conversationTotal` and `unreadTotal` count all of
/// them, before the page is cut. Upstream marks the route deprecated; the SDKs do not call it.
pub async fn get_sorted_conversation_list(
    State(state): State<ApiState>,
    request: Authed<SortedListRequest>,
) -> Result<Reply<SortedListReply>, ApiError> {
    let body = &request.body;
    check_user_id("userID", &body.user_id)?;
    request.caller.require_self_or_admin(&body.user_id)?;
    let named = if body.conversation_ids.is_empty() {
        None
    } else {
        check_conversation_ids("conversationIDs", &body.conversation_ids)?;
        Some(body.conversation_ids.as_slice())
    };
    let window = match &body.pagination {
        None => None,
        Some(pagination) => Some(Pagination::window(Some(pagination))?),
    };
    let (unread_total, with_messages) = super::jssdk::entries(&state, &body.user_id, named).await?;
    let rows = conversations::list(&state.db, &body.user_id, named)
        .await
        .map_err(|error| read_failed(&error))?;
    if rows.is_empty() {
        return Err(ApiError::new(
            Code::RecordNotFound,
            format!("{} has no conversations", body.user_id),
        ));
    }
    let listed: std::collections::BTreeSet<String> = with_messages
        .iter()
        .map(|entry| entry.row.conversation_id.clone())
        .collect();
    let mut quiet: Vec<ConversationRow> = rows
        .into_iter()
        .filter(|row| !listed.contains(&row.conversation_id))
        .collect();
    quiet.sort_by(|left, right| {
        right
            .is_pinned
            .cmp(&left.is_pinned)
            .then(left.conversation_id.cmp(&right.conversation_id))
    });
    let mut elements: Vec<ConversationElemJson> =
        with_messages.into_iter().map(sorted_element).collect();
    elements.extend(quiet.into_iter().map(|row| ConversationElemJson {
        conversation_id: row.conversation_id,
        recv_msg_opt: row.recv_msg_opt,
        unread_count: 0,
        is_pinned: row.is_pinned,
        msg_info: None,
    }));
    // Stable: pinned ones first, each part in the order above.
    elements.sort_by_key(|element| !element.is_pinned);
    let conversation_total = i64::try_from(elements.len()).unwrap_or(i64::MAX);
    if let Some((offset, limit)) = window {
        elements = elements
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect();
    }
    Ok(Reply(SortedListReply {
        conversation_total,
        unread_total,
        conversation_elems: elements,
    }))
}
