//! `/msg/search_msg`: stored messages by sender, receiver, content type, day and session type,
//! newest first (admin only; upstream lets anyone search everyone's messages).

use std::collections::BTreeMap;

use axum::extract::State;
use jetim_readmodel::messages::{self, MessageFilter};
use jetim_readmodel::users;
use serde::{Deserialize, Serialize};

use super::args::Pagination;
use super::user::read_failed;
use crate::ApiState;
use crate::openim::{ApiError, Authed, Reply, null_if_empty};

/// `/msg/search_msg` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SearchRequest {
    #[serde(rename = "sendID")]
    send_id: String,
    #[serde(rename = "recvID")]
    recv_id: String,
    #[serde(rename = "contentType")]
    content_type: i32,
    /// A UTC day, `YYYY-MM-DD`.
    #[serde(rename = "sendTime")]
    send_time: String,
    #[serde(rename = "sessionType")]
    session_type: i32,
    pagination: Option<Pagination>,
}

/// OpenIM's `ChatLog`.
#[derive(Debug, Serialize)]
pub struct ChatLog {
    #[serde(rename = "serverMsgID")]
    server_msg_id: String,
    #[serde(rename = "clientMsgID")]
    client_msg_id: String,
    #[serde(rename = "sendID")]
    send_id: String,
    #[serde(rename = "recvID")]
    recv_id: String,
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "recvNickname")]
    recv_nickname: String,
    #[serde(rename = "senderPlatformID")]
    sender_platform_id: i32,
    #[serde(rename = "senderNickname")]
    sender_nickname: String,
    #[serde(rename = "senderFaceURL")]
    sender_face_url: String,
    #[serde(rename = "groupName")]
    group_name: String,
    #[serde(rename = "sessionType")]
    session_type: i32,
    #[serde(rename = "msgFrom")]
    msg_from: i32,
    #[serde(rename = "contentType")]
    content_type: i32,
    content: String,
    status: i32,
    #[serde(rename = "sendTime")]
    send_time: i64,
    #[serde(rename = "createTime")]
    create_time: i64,
    ex: String,
    #[serde(rename = "groupFaceURL")]
    group_face_url: String,
    #[serde(rename = "groupMemberCount")]
    group_member_count: u32,
    seq: i64,
    #[serde(rename = "groupOwner")]
    group_owner: String,
    #[serde(rename = "groupType")]
    group_type: i32,
}

/// One found message.
#[derive(Debug, Serialize)]
pub struct SearchChatLog {
    #[serde(rename = "chatLog")]
    chat_log: ChatLog,
    #[serde(rename = "isRevoked")]
    is_revoked: bool,
}

/// `/msg/search_msg` reply.
#[derive(Debug, Serialize)]
pub struct SearchReply {
    #[serde(rename = "chatLogs", serialize_with = "null_if_empty")]
    chat_logs: Vec<SearchChatLog>,
    #[serde(rename = "chatLogsNum")]
    chat_logs_num: i64,
}

/// The `[start, end)` milliseconds of a UTC day written `YYYY-MM-DD`.
fn day_range(day: &str) -> Result<(i64, i64), ApiError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(day, &format)
        .map_err(|_| ApiError::args(format!("sendTime {day:?} is not a day (YYYY-MM-DD)")))?;
    let start = date.midnight().assume_utc().unix_timestamp() * 1000;
    Ok((start, start + 86_400_000))
}

/// Searches stored messages (admin only).
pub async fn search_msg(
    State(state): State<ApiState>,
    request: Authed<SearchRequest>,
) -> Result<Reply<SearchReply>, ApiError> {
    request.caller.require_admin()?;
    let body = request.body;
    let (offset, limit) = Pagination::window(body.pagination.as_ref())?;
    let non_empty = |text: String| (!text.is_empty()).then_some(text);
    let filter = MessageFilter {
        send_id: non_empty(body.send_id),
        recv_id: non_empty(body.recv_id),
        content_type: (body.content_type != 0).then_some(body.content_type),
        session_type: (body.session_type != 0).then_some(body.session_type),
        sent_between: if body.send_time.is_empty() {
            None
        } else {
            Some(day_range(&body.send_time)?)
        },
    };
    let (total, found) = messages::search(&state.db, &filter, offset, limit)
        .await
        .map_err(|error| read_failed(&error))?;
    let receivers: Vec<String> = found
        .iter()
        .map(|stored| stored.message.recv_id.clone())
        .filter(|id| !id.is_empty())
        .collect();
    let nicknames: BTreeMap<String, String> = users::find(&state.db, &receivers)
        .await
        .map_err(|error| read_failed(&error))?
        .into_iter()
        .map(|user| (user.user_id, user.nickname))
        .collect();
    let chat_logs = found
        .into_iter()
        .map(|stored| {
            let message = stored.message;
            SearchChatLog {
                is_revoked: stored.revoked.is_some(),
                chat_log: ChatLog {
                    recv_nickname: nicknames.get(&message.recv_id).cloned().unwrap_or_default(),
                    server_msg_id: message.server_msg_id,
                    client_msg_id: message.client_msg_id,
                    send_id: message.send_id,
                    recv_id: message.recv_id,
                    group_id: message.group_id,
                    sender_platform_id: message.sender_platform_id,
                    sender_nickname: message.sender_nickname,
                    sender_face_url: message.sender_face_url,
                    // Groups arrive with the relations work.
                    group_name: String::new(),
                    session_type: message.session_type,
                    msg_from: message.msg_from,
                    content_type: message.content_type,
                    content: message.content,
                    status: 2,
                    send_time: message.send_time,
                    create_time: message.create_time,
                    ex: message.ex,
                    group_face_url: String::new(),
                    group_member_count: 0,
                    seq: i64::try_from(message.seq).unwrap_or(i64::MAX),
                    group_owner: String::new(),
                    group_type: 0,
                },
            }
        })
        .collect();
    Ok(Reply(SearchReply {
        chat_logs,
        chat_logs_num: total,
    }))
}

#[cfg(test)]
mod tests {
    use super::day_range;

    #[test]
    fn a_day_is_its_utc_milliseconds() {
        assert_eq!(day_range("1970-01-02").unwrap(), (86_400_000, 172_800_000));
        assert!(day_range("2026-13-01").is_err());
        assert!(day_range("yesterday").is_err());
    }
}
