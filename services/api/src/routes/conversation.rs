//! `/conversation/*`: a user's conversation rows and their settings.
//!
//! Rows are made by the first message of a conversation, or by `set_conversations`; settings
//! change through `conversation.set` events on `im.user.<ownerUserID>.conversation`. A row is
//! also what lets its owner pull the conversation, so `set_conversations` accepts only the
//! conversation ID OpenIM's rules give for the owner and the peer.

use axum::extract::State;
use jetim_messaging::conversation::{SessionType, chat_conversation_id};
use jetim_readmodel::conversations::{self, ConversationRow};
use jetim_readmodel::versions::{self, ChangeState};
use jetim_schemas::events::conversation::ConversationSet;
use jetim_streams::Expect;
use jetim_streams::subject::{Subject, UserKind};
use serde::{Deserialize, Serialize};

use super::args::{MAX_EX_BYTES, Pagination, check_id_list, check_length, check_user_id};
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
    append_all(&state, &request.caller.user_id, events).await
}

async fn append_all(
    state: &ApiState,
    actor: &str,
    events: Vec<ConversationSet>,
) -> Result<Done, ApiError> {
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
    append_all(&state, &request.caller.user_id, events).await
}

/// How many changes an incremental answer carries before it says "full" instead.
const MAX_INCREMENTAL_CHANGES: i64 = 200;

/// `/conversation/get_incremental_conversations` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct IncrementalRequest {
    #[serde(rename = "userID")]
    user_id: String,
    #[serde(rename = "versionID")]
    version_id: String,
    version: i64,
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
    let body = request.body;
    check_user_id("userID", &body.user_id)?;
    request.caller.require_self_or_admin(&body.user_id)?;
    let (version_id, version) = versions::conversation_log(&state.db, &body.user_id)
        .await
        .map_err(|error| read_failed(&error))?
        .unwrap_or_default();
    let full_reply = || IncrementalReply {
        version,
        version_id: version_id.clone(),
        full: true,
        delete: Vec::new(),
        insert: Vec::new(),
        update: Vec::new(),
    };
    if body.version <= 0 || body.version_id != version_id || body.version > version {
        return Ok(Reply(full_reply()));
    }
    let changes = versions::conversation_changes_after(
        &state.db,
        &body.user_id,
        body.version,
        MAX_INCREMENTAL_CHANGES,
    )
    .await
    .map_err(|error| read_failed(&error))?;
    if i64::try_from(changes.len()).unwrap_or(i64::MAX) > MAX_INCREMENTAL_CHANGES {
        return Ok(Reply(full_reply()));
    }
    let changed: Vec<String> = changes
        .iter()
        .filter(|(_, change)| *change != ChangeState::Delete)
        .map(|(id, _)| id.clone())
        .collect();
    let mut rows: std::collections::BTreeMap<String, ConversationRow> =
        conversations::list(&state.db, &body.user_id, Some(&changed))
            .await
            .map_err(|error| read_failed(&error))?
            .into_iter()
            .map(|row| (row.conversation_id.clone(), row))
            .collect();
    let mut reply = IncrementalReply {
        full: false,
        ..full_reply()
    };
    for (id, change) in changes {
        match change {
            ChangeState::Delete => reply.delete.push(id),
            ChangeState::Insert => reply.insert.extend(rows.remove(&id).map(Into::into)),
            ChangeState::Update => reply.update.extend(rows.remove(&id).map(Into::into)),
        }
    }
    Ok(Reply(reply))
}

/// `/conversation/get_full_conversation_ids` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FullIdsRequest {
    #[serde(rename = "userID")]
    user_id: String,
    #[serde(rename = "idHash")]
    id_hash: u64,
}

/// `/conversation/get_full_conversation_ids` reply.
#[derive(Debug, Serialize)]
pub struct FullIdsReply {
    version: i64,
    #[serde(rename = "versionID")]
    version_id: String,
    equal: bool,
    #[serde(rename = "conversationIDs", serialize_with = "null_if_empty")]
    conversation_ids: Vec<String>,
}

/// OpenIM's `idHash`: the first 8 bytes, big-endian, of the MD5 of the IDs as a JSON array;
/// an empty list hashes to 0.
pub fn id_hash(ids: &[String]) -> u64 {
    use md5::Digest as _;
    if ids.is_empty() {
        return 0;
    }
    let json = serde_json::to_string(ids).unwrap_or_default();
    let digest = md5::Md5::digest(json.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Every conversation ID of the user, or `equal` when the client's hash already matches.
pub async fn get_full_conversation_ids(
    State(state): State<ApiState>,
    request: Authed<FullIdsRequest>,
) -> Result<Reply<FullIdsReply>, ApiError> {
    let body = request.body;
    check_user_id("userID", &body.user_id)?;
    request.caller.require_self_or_admin(&body.user_id)?;
    let (version_id, version) = versions::conversation_log(&state.db, &body.user_id)
        .await
        .map_err(|error| read_failed(&error))?
        .unwrap_or_default();
    let ids: Vec<String> = conversations::list(&state.db, &body.user_id, None)
        .await
        .map_err(|error| read_failed(&error))?
        .into_iter()
        .map(|row| row.conversation_id)
        .collect();
    let equal = id_hash(&ids) == body.id_hash;
    Ok(Reply(FullIdsReply {
        version,
        version_id,
        equal,
        conversation_ids: if equal { Vec::new() } else { ids },
    }))
}

#[cfg(test)]
mod tests {
    use super::id_hash;

    #[test]
    fn the_id_hash_is_md5_of_the_json_array_big_endian() {
        assert_eq!(id_hash(&[]), 0);
        // md5 of ["a"] is 4c96bbc0e2390918dd50ef8e7eaff6e2; the first 8 bytes, big-endian.
        let hash = id_hash(&["a".to_owned()]);
        assert_eq!(hash, 0x4c96_bbc0_e239_0918);
        assert_ne!(id_hash(&["a".to_owned(), "b".to_owned()]), hash);
    }
}
