//! `/msg/delete_msgs`, `/msg/clear_conversation_msg`, `/msg/user_clear_all_msg`, and the
//! admin's `/msg/delete_msg_phsical_by_seq` and `/msg/delete_msg_physical`.
//!
//! By default a delete hides messages for the caller only (they read back with status 4 and
//! no content) and a clear moves the caller's readable window past the current max seq.
//! With `IsSyncOther` they act for everyone: a message deleted for everyone reads as a
//! `{seq, status: 4}` placeholder, a conversation cleared for everyone starts after its max.
//! Upstream lets any participant erase anyone's messages; jetim allows deleting for everyone
//! only a user's own messages (or an admin), and clearing for everyone only in single chats.
//!
//! Notifications, as upstream routes them: a delete with `IsSyncSelf` stores 2102
//! `DeleteMsgsTips` in the user's own `n_<user>_<user>` (their other devices), with
//! `IsSyncOther` in the conversation's `n_` twin for the peer or the group; a clear pushes
//! 1300 (the conversation rows changed) to the user, with `IsSyncSelf` also 1703
//! `ClearConversationTips` to the user, and with `IsSyncOther` 1703 to the peer.

use axum::extract::State;
use jetim_messaging::notification::Notification;
use jetim_readmodel::{conversations, messages};
use jetim_schemas::event::Event;
use jetim_schemas::events::msg::{ConversationCleared, MsgsDeleted};
use jetim_streams::Expect;
use jetim_streams::subject::{ConversationKind, Subject};
use serde::Deserialize;
use serde_json::json;

use super::args::{check_conversation_ids, check_user_id};
use super::user::{append_failed, read_failed};
use crate::ApiState;
use crate::openim::{ApiError, Authed, Caller, Code, Done};

/// The most seqs one delete may name.
const MAX_SEQS: usize = 1000;

/// OpenIM's `DeleteSyncOpt`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeleteSyncOpt {
    /// Also tell the caller's other devices.
    #[serde(rename = "IsSyncSelf")]
    is_sync_self: bool,
    /// Act for everyone in the conversation.
    #[serde(rename = "IsSyncOther")]
    is_sync_other: bool,
}

/// `/msg/delete_msgs` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeleteRequest {
    #[serde(rename = "conversationID")]
    conversation_id: String,
    seqs: Vec<i64>,
    #[serde(rename = "userID")]
    user_id: String,
    #[serde(rename = "deleteSyncOpt")]
    delete_sync_opt: Option<DeleteSyncOpt>,
}

fn check_caller(caller: &Caller, user_id: &str) -> Result<(), ApiError> {
    check_user_id("userID", user_id)?;
    caller.require_self_or_admin(user_id)
}

async fn window(
    state: &ApiState,
    user_id: &str,
    conversation_id: &str,
) -> Result<(u64, u64), ApiError> {
    messages::member_window(&state.db, user_id, conversation_id)
        .await
        .map_err(|error| read_failed(&error))?
        .ok_or_else(|| {
            ApiError::new(
                Code::RecordNotFound,
                format!("{user_id} has no conversation {conversation_id}"),
            )
        })
}

async fn append<E: Event>(
    state: &ApiState,
    actor: &str,
    conversation_id: &str,
    event: &E,
) -> Result<u64, ApiError> {
    let subject = Subject::conversation(conversation_id, ConversationKind::Delete)
        .map_err(|error| ApiError::args(format!("conversationID: {error}")))?;
    state
        .log
        .append(&subject, actor, Expect::Anything, None, event)
        .await
        .map(|appended| appended.stream_sequence)
        .map_err(|error| append_failed(&error))
}

/// Who a delete or clear notification is for.
enum Audience<'a> {
    /// The user's own devices (`n_<user>_<user>`).
    Own,
    /// The other side of the conversation: its peer, or its group.
    Others(&'a str),
}

/// Sends a delete or clear notification from `user`: `stored` ones take a seq in their `n_`
/// conversation (the push service then delivers them), the others are pushed only.
async fn tell(
    state: &ApiState,
    (operation_id, user): (&str, &str),
    (content_type, tips): (i32, serde_json::Value),
    audience: Audience<'_>,
    stored: bool,
) -> Result<(), ApiError> {
    let (recv_id, group_id) = match audience {
        Audience::Own => (user.to_owned(), String::new()),
        Audience::Others(conversation_id) => {
            let rows = conversations::list(
                &state.db,
                user,
                Some(std::slice::from_ref(&conversation_id.to_owned())),
            )
            .await
            .map_err(|error| read_failed(&error))?;
            let Some(row) = rows.into_iter().next() else {
                return Ok(());
            };
            if row.group_id.is_empty() {
                (row.user_id, String::new())
            } else {
                (row.group_id.clone(), row.group_id)
            }
        }
    };
    let notification = Notification {
        content_type,
        send_id: user.to_owned(),
        recv_id,
        group_id,
        tips,
        offline_push: false,
        now_ms: super::user::now_millis(),
    };
    if stored {
        let message = notification.stored_in_notifications();
        super::store_message(state, (user, operation_id), &message).await?;
    } else if notification.group_id.is_empty() {
        // Push-only ones here are between users (a group is never cleared for everyone).
        super::push_to_both(state, operation_id, &notification).await;
    }
    Ok(())
}

/// Deletes messages for the caller, or (their own, with `IsSyncOther`) for everyone.
pub async fn delete_msgs(
    State(state): State<ApiState>,
    request: Authed<DeleteRequest>,
) -> Result<Done, ApiError> {
    let body = request.body;
    check_caller(&request.caller, &body.user_id)?;
    if body.seqs.is_empty() {
        return Err(ApiError::args("seqs is empty"));
    }
    if body.seqs.len() > MAX_SEQS {
        return Err(ApiError::args(format!(
            "at most {MAX_SEQS} seqs per request"
        )));
    }
    let mut seqs: Vec<u64> = Vec::with_capacity(body.seqs.len());
    for seq in &body.seqs {
        seqs.push(
            u64::try_from(*seq)
                .ok()
                .filter(|seq| *seq > 0)
                .ok_or_else(|| ApiError::args(format!("seq {seq} is not a message seq")))?,
        );
    }
    seqs.sort_unstable();
    seqs.dedup();
    let (start, max) = window(&state, &body.user_id, &body.conversation_id).await?;
    let (Some(&lowest), Some(&highest)) = (seqs.first(), seqs.last()) else {
        return Err(ApiError::args("seqs is empty"));
    };
    if lowest < start || highest > max {
        return Err(ApiError::new(
            Code::RecordNotFound,
            format!(
                "{} can read seqs {start}..{max} of {}, not {lowest}..{highest}",
                body.user_id, body.conversation_id
            ),
        ));
    }
    let for_everyone = body
        .delete_sync_opt
        .as_ref()
        .is_some_and(|option| option.is_sync_other);
    if for_everyone && !request.caller.is_admin {
        let found = messages::at_seqs(&state.db, &body.conversation_id, &seqs, &body.user_id)
            .await
            .map_err(|error| read_failed(&error))?;
        if let Some(seq) = seqs.iter().find(|seq| {
            found
                .get(seq)
                .is_some_and(|stored| stored.message.send_id != body.user_id)
        }) {
            return Err(ApiError::no_permission(format!(
                "message {seq} is not {}'s to delete for everyone",
                body.user_id
            )));
        }
    }
    let sync_self = body
        .delete_sync_opt
        .as_ref()
        .is_some_and(|option| option.is_sync_self);
    let tips = json!({
        "userID": body.user_id,
        "conversationID": body.conversation_id,
        "seqs": seqs,
    });
    let event = MsgsDeleted {
        conversation_id: body.conversation_id.clone(),
        user_id: body.user_id.clone(),
        seqs,
        for_everyone,
    };
    let sequence = append(
        &state,
        &request.caller.user_id,
        &body.conversation_id,
        &event,
    )
    .await?;
    super::wait_for_projection(&state, messages::NAME, messages::VERSION, sequence).await;
    let from = (request.operation_id.as_str(), body.user_id.as_str());
    if sync_self {
        tell(&state, from, (2102, tips.clone()), Audience::Own, true).await?;
    }
    if for_everyone {
        let others = Audience::Others(&body.conversation_id);
        tell(&state, from, (2102, tips), others, true).await?;
    }
    Ok(Done)
}

/// `/msg/clear_conversation_msg` and `/msg/user_clear_all_msg` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ClearRequest {
    #[serde(rename = "conversationIDs")]
    conversation_ids: Vec<String>,
    #[serde(rename = "userID")]
    user_id: String,
    #[serde(rename = "deleteSyncOpt")]
    delete_sync_opt: Option<DeleteSyncOpt>,
}

async fn clear(
    state: &ApiState,
    (caller, operation_id): (&Caller, &str),
    user_id: &str,
    conversation_ids: &[String],
    (sync_self, for_everyone): (bool, bool),
) -> Result<Done, ApiError> {
    let mut clears = Vec::with_capacity(conversation_ids.len());
    for conversation_id in conversation_ids {
        let (_, max) = window(state, user_id, conversation_id).await?;
        if for_everyone && !conversation_id.starts_with("si_") {
            return Err(ApiError::no_permission(format!(
                "{conversation_id} can be cleared for everyone only by its owner or admins"
            )));
        }
        clears.push(ConversationCleared {
            conversation_id: conversation_id.clone(),
            user_id: user_id.to_owned(),
            min_seq: max + 1,
            for_everyone,
        });
    }
    let mut last = 0;
    for cleared in &clears {
        last = append(state, &caller.user_id, &cleared.conversation_id, cleared).await?;
    }
    super::wait_for_projection(state, messages::NAME, messages::VERSION, last).await;
    if conversation_ids.is_empty() {
        return Ok(Done);
    }
    let from = (operation_id, user_id);
    let changed = json!({ "userID": user_id, "conversationIDList": conversation_ids });
    tell(state, from, (1300, changed), Audience::Own, false).await?;
    let tips = json!({ "userID": user_id, "conversationIDs": conversation_ids });
    if sync_self {
        tell(state, from, (1703, tips.clone()), Audience::Own, false).await?;
    }
    if for_everyone {
        for conversation_id in conversation_ids {
            let tips = json!({ "userID": user_id, "conversationIDs": [conversation_id] });
            tell(
                state,
                from,
                (1703, tips),
                Audience::Others(conversation_id),
                false,
            )
            .await?;
        }
    }
    Ok(Done)
}

/// Clears conversations for the caller, or (single chats, `IsSyncOther`) for both sides.
pub async fn clear_conversation_msg(
    State(state): State<ApiState>,
    request: Authed<ClearRequest>,
) -> Result<Done, ApiError> {
    let body = request.body;
    check_caller(&request.caller, &body.user_id)?;
    if body.conversation_ids.is_empty() {
        return Err(ApiError::args("conversationIDs is empty"));
    }
    if body.conversation_ids.len() > 1000 {
        return Err(ApiError::args("at most 1000 conversationIDs per request"));
    }
    let (sync_self, for_everyone) = body.delete_sync_opt.map_or((false, false), |option| {
        (option.is_sync_self, option.is_sync_other)
    });
    clear(
        &state,
        (&request.caller, &request.operation_id),
        &body.user_id,
        &body.conversation_ids,
        (sync_self, for_everyone),
    )
    .await
}

/// Clears every chat conversation of the caller that has messages (not the `n_` ones, which
/// hold notifications and are no conversation rows upstream).
pub async fn user_clear_all_msg(
    State(state): State<ApiState>,
    request: Authed<ClearRequest>,
) -> Result<Done, ApiError> {
    let body = request.body;
    check_caller(&request.caller, &body.user_id)?;
    let (sync_self, for_everyone) = body.delete_sync_opt.map_or((false, false), |option| {
        (option.is_sync_self, option.is_sync_other)
    });
    let conversation_ids: Vec<String> = messages::seq_states(&state.db, &body.user_id, None)
        .await
        .map_err(|error| read_failed(&error))?
        .into_iter()
        .filter(|(id, seq_state)| seq_state.max_seq > 0 && !id.starts_with("n_"))
        .map(|(id, _)| id)
        .collect();
    clear(
        &state,
        (&request.caller, &request.operation_id),
        &body.user_id,
        &conversation_ids,
        (sync_self, for_everyone),
    )
    .await
}

/// `/msg/delete_msg_phsical_by_seq` (upstream's spelling) request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PhysicalDeleteRequest {
    #[serde(rename = "conversationID")]
    conversation_id: String,
    seqs: Vec<i64>,
}

/// An admin deletes messages for everyone. The log keeps them (the streams deny deletes);
/// every read returns placeholders for their seqs.
pub async fn delete_msg_physical_by_seq(
    State(state): State<ApiState>,
    request: Authed<PhysicalDeleteRequest>,
) -> Result<Done, ApiError> {
    request.caller.require_admin()?;
    let body = request.body;
    if body.conversation_id.is_empty() {
        return Err(ApiError::args("conversationID is empty"));
    }
    if body.seqs.is_empty() || body.seqs.len() > MAX_SEQS {
        return Err(ApiError::args(format!(
            "seqs must name 1 to {MAX_SEQS} messages"
        )));
    }
    let max = messages::max_seq(&state.db, &body.conversation_id)
        .await
        .map_err(|error| read_failed(&error))?;
    let mut seqs = Vec::with_capacity(body.seqs.len());
    for seq in body.seqs {
        match u64::try_from(seq) {
            Ok(seq) if (1..=max).contains(&seq) => seqs.push(seq),
            _ => {
                return Err(ApiError::new(
                    Code::RecordNotFound,
                    format!("{} has no message {seq}", body.conversation_id),
                ));
            }
        }
    }
    seqs.sort_unstable();
    seqs.dedup();
    let event = MsgsDeleted {
        conversation_id: body.conversation_id.clone(),
        user_id: request.caller.user_id.clone(),
        seqs,
        for_everyone: true,
    };
    let sequence = append(
        &state,
        &request.caller.user_id,
        &body.conversation_id,
        &event,
    )
    .await?;
    super::wait_for_projection(&state, messages::NAME, messages::VERSION, sequence).await;
    Ok(Done)
}

/// `/msg/delete_msg_physical` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PurgeRequest {
    #[serde(rename = "conversationIDs")]
    conversation_ids: Vec<String>,
    /// Age in seconds: messages sent before now minus this go.
    timestamp: i64,
}

/// An admin purges, for everyone, the messages older than `timestamp` seconds in the named
/// conversations (every conversation when none is named): each conversation's readable
/// window then starts after its last such message. The log keeps them.
pub async fn delete_msg_physical(
    State(state): State<ApiState>,
    request: Authed<PurgeRequest>,
) -> Result<Done, ApiError> {
    request.caller.require_admin()?;
    let body = request.body;
    if body.timestamp < 0 {
        return Err(ApiError::args(format!(
            "timestamp {} is negative; it is an age in seconds",
            body.timestamp
        )));
    }
    check_conversation_ids("conversationIDs", &body.conversation_ids)?;
    let now = super::user::now_millis();
    let before = now.saturating_sub(body.timestamp.saturating_mul(1000));
    let named = (!body.conversation_ids.is_empty()).then_some(body.conversation_ids.as_slice());
    let last_seqs = messages::last_seqs_before(&state.db, before, named)
        .await
        .map_err(|error| read_failed(&error))?;
    let mut last = 0;
    for (conversation_id, seq) in last_seqs {
        let cleared = ConversationCleared {
            conversation_id,
            user_id: String::new(),
            min_seq: seq + 1,
            for_everyone: true,
        };
        last = append(
            &state,
            &request.caller.user_id,
            &cleared.conversation_id,
            &cleared,
        )
        .await?;
    }
    if last > 0 {
        super::wait_for_projection(&state, messages::NAME, messages::VERSION, last).await;
    }
    Ok(Done)
}
