//! `/msg/revoke_msg`: a message's sender (or an admin) revokes it. The message stays in the
//! log and the read model and reads as revoked (contentType 2101); the other side gets a 2101
//! `RevokeMsgTips` notification in the conversation's `n_` twin.

use axum::extract::State;
use jetim_messaging::revoke::{self, Revoker};
use jetim_messaging::service::new_message_id;
use jetim_readmodel::{messages, users};
use jetim_streams::subject::{ConversationKind, Subject};
use jetim_streams::{Actor, Expect};
use serde::Deserialize;

use super::args::check_user_id;
use super::msg::rejected;
use super::user::{append_failed, now_millis, read_failed};
use crate::ApiState;
use crate::openim::{ApiError, Authed, Code, Done};

/// `/msg/revoke_msg` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RevokeRequest {
    #[serde(rename = "conversationID")]
    conversation_id: String,
    seq: i64,
    #[serde(rename = "userID")]
    user_id: String,
}

/// Revokes a message.
pub async fn revoke_msg(
    State(state): State<ApiState>,
    request: Authed<RevokeRequest>,
) -> Result<Done, ApiError> {
    let body = request.body;
    check_user_id("userID", &body.user_id)?;
    request.caller.require_self_or_admin(&body.user_id)?;
    if body.conversation_id.is_empty() {
        return Err(ApiError::args("conversationID is empty"));
    }
    let seq = u64::try_from(body.seq)
        .ok()
        .filter(|seq| *seq > 0)
        .ok_or_else(|| ApiError::args(format!("seq {} is not a message seq", body.seq)))?;
    let not_found = || {
        ApiError::new(
            Code::RecordNotFound,
            format!("{} has no message {seq}", body.conversation_id),
        )
    };
    let member = messages::has_conversation(&state.db, &body.user_id, &body.conversation_id)
        .await
        .map_err(|error| read_failed(&error))?;
    if !member && !request.caller.is_admin {
        return Err(not_found());
    }
    let stored = messages::at_seqs(&state.db, &body.conversation_id, &[seq], &body.user_id)
        .await
        .map_err(|error| read_failed(&error))?
        .remove(&seq)
        .ok_or_else(not_found)?;
    let nickname = users::look_up(&state.db, &state.log, &body.user_id)
        .await
        .map_err(|error| ApiError::internal("looking up the revoker", &error))?
        .map(|user| user.nickname)
        .unwrap_or_default();
    let revoker = Revoker {
        user_id: body.user_id.clone(),
        is_admin: request.caller.is_admin,
        nickname,
    };
    let revoked = revoke::decide(&stored, &revoker, now_millis()).map_err(rejected)?;

    let subject = Subject::conversation(&body.conversation_id, ConversationKind::Revoke)
        .map_err(|error| ApiError::args(format!("conversationID: {error}")))?;
    // One revocation per message, even when the client retries.
    let dedup_id = format!("{}:revoke:{seq}", subject.as_str());
    let appended = state
        .log
        .append(
            &subject,
            &body.user_id,
            Expect::Anything,
            Some(&dedup_id),
            &revoked,
        )
        .await
        .map_err(|error| append_failed(&error))?;

    let tips = revoke::notification(
        &stored.message,
        &revoked,
        new_message_id(),
        new_message_id(),
    );
    let notified = state
        .log
        .append_to_timeline(
            &tips.conversation_id,
            &format!("revoke:{}:{seq}", body.conversation_id),
            Actor::with_operation(&body.user_id, &request.operation_id),
            &tips,
        )
        .await
        .map_err(|error| append_failed(&error))?;
    super::wait_for_projection(
        &state,
        messages::NAME,
        messages::VERSION,
        appended.stream_sequence.max(notified.stream_sequence),
    )
    .await;
    Ok(Done)
}
