//! Read state: `/msg/mark_msgs_as_read`, `/msg/mark_conversation_as_read`,
//! `/msg/set_conversation_has_read_seq`, `/msg/get_conversations_has_read_and_max_seq`.
//!
//! A read mark is a `conversation.read` event on `im.conv.<conversationID>.read`; the messages
//! projection keeps each member's read position and the `isRead` flag of single-chat messages.
//! Marking messages of a single chat read also tells the peer: a read receipt (2200,
//! `MarkAsReadTips`), stored in the pair's `n_` conversation and pushed to both, so the
//! sender's SDK shows its messages as read (`OnRecvC2CReadReceipt`).

use std::collections::BTreeMap;

use axum::extract::State;
use jetim_messaging::notification::Notification;
use jetim_readmodel::{conversations, messages};
use jetim_schemas::events::msg::{ConversationRead, ReadMode};
use jetim_streams::Expect;
use jetim_streams::subject::{ConversationKind, Subject};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::args::check_user_id;
use super::user::{append_failed, read_failed};
use crate::ApiState;
use crate::openim::{ApiError, Authed, Code, Done, Reply, null_if_empty};

/// The most seqs one mark may name.
const MAX_SEQS: usize = 1000;
/// The most seqs a read receipt lists (the newest of those read).
const MAX_RECEIPT_SEQS: u64 = 1000;

/// The body of the three marking routes.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MarkRequest {
    #[serde(rename = "conversationID")]
    conversation_id: String,
    #[serde(rename = "userID")]
    user_id: String,
    #[serde(rename = "hasReadSeq")]
    has_read_seq: i64,
    seqs: Vec<i64>,
}

/// Checks the caller and the conversation; returns the caller's current state in it.
async fn current_state(
    state: &ApiState,
    request: &Authed<MarkRequest>,
) -> Result<messages::SeqState, ApiError> {
    let body = &request.body;
    check_user_id("userID", &body.user_id)?;
    request.caller.require_self_or_admin(&body.user_id)?;
    if body.conversation_id.is_empty() {
        return Err(ApiError::args("conversationID is empty"));
    }
    if body.seqs.len() > MAX_SEQS {
        return Err(ApiError::args(format!(
            "seqs has {} entries; at most {MAX_SEQS}",
            body.seqs.len()
        )));
    }
    if body.seqs.iter().any(|seq| *seq < 1) || body.has_read_seq < 0 {
        return Err(ApiError::args("seqs start at 1"));
    }
    let states = messages::seq_states(
        &state.db,
        &body.user_id,
        Some(std::slice::from_ref(&body.conversation_id)),
    )
    .await
    .map_err(|error| read_failed(&error))?;
    states.get(&body.conversation_id).copied().ok_or_else(|| {
        ApiError::new(
            Code::RecordNotFound,
            format!(
                "{} has no conversation {}",
                body.user_id, body.conversation_id
            ),
        )
    })
}

fn beyond_max(seq: u64, max_seq: u64) -> ApiError {
    ApiError::args(format!(
        "seq {seq} is beyond the conversation's max seq {max_seq}"
    ))
}

async fn append_read(
    state: &ApiState,
    actor: &str,
    read: ConversationRead,
) -> Result<Done, ApiError> {
    let subject = Subject::conversation(&read.conversation_id, ConversationKind::Read)
        .map_err(|error| ApiError::args(format!("conversationID: {error}")))?;
    let appended = state
        .log
        .append(&subject, actor, Expect::Anything, None, &read)
        .await
        .map_err(|error| append_failed(&error))?;
    super::wait_for_projection(
        state,
        messages::NAME,
        messages::VERSION,
        appended.stream_sequence,
    )
    .await;
    Ok(Done)
}

/// The read receipt (2200) for a single chat: to the peer, listing the seqs read by this
/// mark (those named, and those between the old and the new read position, at most the
/// newest [`MAX_RECEIPT_SEQS`]). Nothing for other conversations or when nothing was read.
async fn send_receipt(
    state: &ApiState,
    request: &Authed<MarkRequest>,
    (from_seq, has_read_seq): (u64, u64),
    named: &[u64],
) -> Result<(), ApiError> {
    let body = &request.body;
    let rows = conversations::list(
        &state.db,
        &body.user_id,
        Some(std::slice::from_ref(&body.conversation_id)),
    )
    .await
    .map_err(|error| read_failed(&error))?;
    let Some(row) = rows.first() else {
        return Ok(());
    };
    if row.conversation_type != 1
        || row.user_id.is_empty()
        || body.conversation_id.starts_with("n_")
    {
        return Ok(());
    }
    let first = (from_seq + 1).max(has_read_seq.saturating_sub(MAX_RECEIPT_SEQS - 1));
    let mut seqs: Vec<u64> = (first..=has_read_seq)
        .chain(named.iter().copied())
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    if seqs.is_empty() {
        return Ok(());
    }
    let notification = Notification {
        content_type: 2200,
        send_id: body.user_id.clone(),
        recv_id: row.user_id.clone(),
        group_id: String::new(),
        tips: json!({
            "markAsReadUserID": body.user_id,
            "conversationID": body.conversation_id,
            "seqs": seqs,
            "hasReadSeq": has_read_seq,
        }),
        offline_push: false,
        now_ms: super::user::now_millis(),
    };
    let message = notification.stored_in_notifications();
    let from = (
        request.caller.user_id.as_str(),
        request.operation_id.as_str(),
    );
    super::store_message(state, from, &message).await?;
    Ok(())
}

fn as_seqs(seqs: &[i64]) -> Vec<u64> {
    seqs.iter()
        .map(|seq| u64::try_from(*seq).unwrap_or(0))
        .collect()
}

/// Marks messages read and raises the read position to the last of them.
pub async fn mark_msgs_as_read(
    State(state): State<ApiState>,
    request: Authed<MarkRequest>,
) -> Result<Done, ApiError> {
    let current = current_state(&state, &request).await?;
    let seqs = as_seqs(&request.body.seqs);
    let Some(&last) = seqs.last() else {
        return Err(ApiError::args("seqs is empty"));
    };
    if let Some(&too_high) = seqs.iter().find(|seq| **seq > current.max_seq) {
        return Err(beyond_max(too_high, current.max_seq));
    }
    let read = ConversationRead {
        conversation_id: request.body.conversation_id.clone(),
        user_id: request.body.user_id.clone(),
        has_read_seq: last.max(current.has_read_seq),
        mode: ReadMode::Raise,
        seqs: seqs.clone(),
        from_seq: current.has_read_seq,
    };
    let positions = (current.has_read_seq, read.has_read_seq);
    append_read(&state, &request.caller.user_id, read).await?;
    send_receipt(&state, &request, positions, &seqs).await?;
    Ok(Done)
}

/// Raises the read position (never lowers it) and marks what lies between read.
pub async fn mark_conversation_as_read(
    State(state): State<ApiState>,
    request: Authed<MarkRequest>,
) -> Result<Done, ApiError> {
    let current = current_state(&state, &request).await?;
    let target = u64::try_from(request.body.has_read_seq).unwrap_or(0);
    if target > current.max_seq {
        return Err(beyond_max(target, current.max_seq));
    }
    let seqs = as_seqs(&request.body.seqs);
    if let Some(&too_high) = seqs.iter().find(|seq| **seq > current.max_seq) {
        return Err(beyond_max(too_high, current.max_seq));
    }
    let read = ConversationRead {
        conversation_id: request.body.conversation_id.clone(),
        user_id: request.body.user_id.clone(),
        has_read_seq: target.max(current.has_read_seq),
        mode: ReadMode::Raise,
        seqs: seqs.clone(),
        from_seq: current.has_read_seq,
    };
    let positions = (current.has_read_seq, read.has_read_seq);
    append_read(&state, &request.caller.user_id, read).await?;
    send_receipt(&state, &request, positions, &seqs).await?;
    Ok(Done)
}

/// Sets the read position, lower too (at most the max seq).
pub async fn set_conversation_has_read_seq(
    State(state): State<ApiState>,
    request: Authed<MarkRequest>,
) -> Result<Done, ApiError> {
    let current = current_state(&state, &request).await?;
    let target = u64::try_from(request.body.has_read_seq).unwrap_or(0);
    if target > current.max_seq {
        return Err(beyond_max(target, current.max_seq));
    }
    let read = ConversationRead {
        conversation_id: request.body.conversation_id.clone(),
        user_id: request.body.user_id.clone(),
        has_read_seq: target,
        mode: ReadMode::Set,
        seqs: Vec::new(),
        from_seq: 0,
    };
    append_read(&state, &request.caller.user_id, read).await
}

/// `/msg/get_conversations_has_read_and_max_seq` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SeqsRequest {
    #[serde(rename = "userID")]
    user_id: String,
    #[serde(rename = "conversationIDs")]
    conversation_ids: Vec<String>,
    #[serde(rename = "returnPinned")]
    return_pinned: bool,
}

/// One conversation's figures.
#[derive(Debug, Serialize)]
pub struct SeqsEntry {
    #[serde(rename = "maxSeq")]
    max_seq: i64,
    #[serde(rename = "hasReadSeq")]
    has_read_seq: i64,
    #[serde(rename = "maxSeqTime")]
    max_seq_time: i64,
}

/// `/msg/get_conversations_has_read_and_max_seq` reply.
#[derive(Debug, Serialize)]
pub struct SeqsReply {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    seqs: BTreeMap<String, SeqsEntry>,
    #[serde(rename = "pinnedConversationIDs", serialize_with = "null_if_empty")]
    pinned_conversation_ids: Vec<String>,
}

/// Max seq, read position and last message time of the user's conversations (all, or those
/// named).
pub async fn get_conversations_has_read_and_max_seq(
    State(state): State<ApiState>,
    request: Authed<SeqsRequest>,
) -> Result<Reply<SeqsReply>, ApiError> {
    let body = request.body;
    check_user_id("userID", &body.user_id)?;
    request.caller.require_self_or_admin(&body.user_id)?;
    let found = jetim_messaging::sync::read_and_max_seqs(
        &state.db,
        &body.user_id,
        &body.conversation_ids,
        body.return_pinned,
    )
    .await
    .map_err(super::msg::sync_failed)?;
    Ok(Reply(SeqsReply {
        seqs: found
            .seqs
            .into_iter()
            .map(|(conversation_id, seqs)| {
                (
                    conversation_id,
                    SeqsEntry {
                        max_seq: seqs.max_seq,
                        has_read_seq: seqs.has_read_seq,
                        max_seq_time: seqs.max_seq_time,
                    },
                )
            })
            .collect(),
        pinned_conversation_ids: found.pinned_conversation_i_ds,
    }))
}
