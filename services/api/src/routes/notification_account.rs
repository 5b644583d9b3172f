//! `/user/*_notification_account`: accounts that send official messages (appMangerLevel 3)
//! and robots (4). They are users, registered and updated through the same events; only an
//! admin manages them, and they cannot log in.

use axum::extract::State;
use jetim_readmodel::users::{self, UserFilter, UserRow};
use jetim_schemas::events::user::{UserRegistered, UserUpdated};
use serde::{Deserialize, Serialize};

use super::args::{
    MAX_FACE_URL_BYTES, MAX_NICKNAME_BYTES, Pagination, check_length, check_user_id,
};
use super::user::{
    account_subject, append_registration, apply_update, look_up_user, now_millis, read_failed,
    wait_for_users_projection,
};
use crate::ApiState;
use crate::openim::{ApiError, Authed, Code, Done, Reply, null_if_empty};

const NOTIFICATION_LEVELS: [i32; 2] = [3, 4];

/// A notification account as these routes show it.
#[derive(Debug, Serialize)]
pub struct NotificationAccount {
    #[serde(rename = "userID")]
    user_id: String,
    #[serde(rename = "faceURL")]
    face_url: String,
    #[serde(rename = "nickName")]
    nick_name: String,
    #[serde(rename = "appMangerLevel")]
    app_manger_level: i32,
}

impl From<UserRow> for NotificationAccount {
    fn from(row: UserRow) -> Self {
        Self {
            user_id: row.user_id,
            face_url: row.face_url,
            nick_name: row.nickname,
            app_manger_level: row.app_manger_level,
        }
    }
}

/// `/user/add_notification_account` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AddRequest {
    #[serde(rename = "userID")]
    user_id: String,
    #[serde(rename = "nickName")]
    nick_name: String,
    #[serde(rename = "faceURL")]
    face_url: String,
    #[serde(rename = "appMangerLevel")]
    app_manger_level: i32,
}

/// A 10-digit ID for an account added without one, as OpenIM makes them.
fn generated_user_id() -> String {
    let digits: String = nuid::next()
        .to_string()
        .bytes()
        .map(|byte| char::from(b'0' + byte % 10))
        .collect();
    format!(
        "{}{}",
        char::from(b'1' + digits.as_bytes()[0] % 9),
        &digits[1..10]
    )
}

/// Registers a notification account or robot (admin only); an empty userID gets a
/// generated one. Answers with the account as stored.
pub async fn add(
    State(state): State<ApiState>,
    request: Authed<AddRequest>,
) -> Result<Reply<NotificationAccount>, ApiError> {
    request.caller.require_admin()?;
    let body = request.body;
    if !NOTIFICATION_LEVELS.contains(&body.app_manger_level) {
        return Err(ApiError::args(format!(
            "appMangerLevel {} is not 3 (notification account) or 4 (robot)",
            body.app_manger_level
        )));
    }
    let user_id = if body.user_id.is_empty() {
        generated_user_id()
    } else {
        check_user_id("userID", &body.user_id)?;
        body.user_id
    };
    check_length("nickName", &body.nick_name, MAX_NICKNAME_BYTES)?;
    check_length("faceURL", &body.face_url, MAX_FACE_URL_BYTES)?;
    let registered = UserRegistered {
        user_id: user_id.clone(),
        nickname: body.nick_name.clone(),
        face_url: body.face_url.clone(),
        ex: String::new(),
        app_manger_level: body.app_manger_level,
        global_recv_msg_opt: 0,
        create_time: now_millis(),
    };
    let subject = account_subject(&user_id)?;
    let sequence =
        append_registration(&state, &request.caller.user_id, &subject, &registered).await?;
    wait_for_users_projection(&state, sequence).await;
    Ok(Reply(NotificationAccount {
        user_id,
        face_url: body.face_url,
        nick_name: body.nick_name,
        app_manger_level: body.app_manger_level,
    }))
}

/// `/user/update_notification_account` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UpdateRequest {
    #[serde(rename = "userID")]
    user_id: String,
    #[serde(rename = "faceURL")]
    face_url: String,
    #[serde(rename = "nickName")]
    nick_name: String,
}

/// Changes a notification account's nickname and face URL (admin only); empty fields are
/// left unchanged. 1004 for an ID that is not a notification account.
pub async fn update(
    State(state): State<ApiState>,
    request: Authed<UpdateRequest>,
) -> Result<Done, ApiError> {
    request.caller.require_admin()?;
    let body = request.body;
    let is_account = look_up_user(&state, &body.user_id)
        .await?
        .is_some_and(|user| NOTIFICATION_LEVELS.contains(&user.app_manger_level));
    if !is_account {
        return Err(ApiError::new(
            Code::RecordNotFound,
            format!("{:?} is not a notification account", body.user_id),
        ));
    }
    let non_empty = |value: String| (!value.is_empty()).then_some(value);
    let update = UserUpdated {
        user_id: body.user_id,
        nickname: non_empty(body.nick_name),
        face_url: non_empty(body.face_url),
        ..UserUpdated::default()
    };
    apply_update(&state, &request.caller.user_id, update, None).await
}

/// `/user/search_notification_account` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SearchRequest {
    keyword: String,
    /// OpenIM spells it `appManagerLevel` here.
    #[serde(rename = "appManagerLevel")]
    app_manager_level: Option<i32>,
    pagination: Option<Pagination>,
}

/// `/user/search_notification_account` reply.
#[derive(Debug, Serialize)]
pub struct SearchReply {
    total: i64,
    #[serde(rename = "notificationAccounts", serialize_with = "null_if_empty")]
    notification_accounts: Vec<NotificationAccount>,
}

/// Notification accounts and robots whose ID is the keyword or whose nickname contains it
/// (admin only).
pub async fn search(
    State(state): State<ApiState>,
    request: Authed<SearchRequest>,
) -> Result<Reply<SearchReply>, ApiError> {
    request.caller.require_admin()?;
    let body = request.body;
    let (offset, limit) = Pagination::window(body.pagination.as_ref())?;
    let levels = match body.app_manager_level {
        Some(level) if NOTIFICATION_LEVELS.contains(&level) => vec![level],
        Some(level) => {
            return Err(ApiError::args(format!(
                "appManagerLevel {level} is not 3 (notification account) or 4 (robot)"
            )));
        }
        None => NOTIFICATION_LEVELS.to_vec(),
    };
    let filter = UserFilter {
        levels: Some(levels),
        keyword: (!body.keyword.is_empty()).then_some(body.keyword),
        ..UserFilter::default()
    };
    let (total, rows) = users::page(&state.db, &filter, offset, limit)
        .await
        .map_err(|error| read_failed(&error))?;
    Ok(Reply(SearchReply {
        total,
        notification_accounts: rows.into_iter().map(NotificationAccount::from).collect(),
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_ids_are_ten_digits_without_a_leading_zero() {
        for _ in 0..100 {
            let id = super::generated_user_id();
            assert_eq!(id.len(), 10, "{id}");
            assert!(id.bytes().all(|byte| byte.is_ascii_digit()), "{id}");
            assert_ne!(id.as_bytes()[0], b'0');
        }
    }
}
