//! `/user/*`: registration, profiles and account queries.
//!
//! Every change is an event on `im.user.<userID>.account`; the `users` projection builds the
//! `users_v1` table the queries read. A change waits (briefly) for the projection to apply it,
//! so a client that reads right after writing sees its write.

use std::collections::HashSet;

use axum::extract::State;
use futures::StreamExt as _;
use jetim_readmodel::users::{self, UserFilter, UserRow};
use jetim_schemas::event::Event as _;
use jetim_schemas::events::user::{UserRegistered, UserUpdated};
use jetim_streams::subject::{Subject, UserKind};
use jetim_streams::{Actor, AppendError, Expect};
use serde::{Deserialize, Serialize};

use super::args::{
    MAX_EX_BYTES, MAX_FACE_URL_BYTES, MAX_NICKNAME_BYTES, Pagination, check_id_list, check_length,
    check_recv_opt, check_user_id,
};
use crate::ApiState;
use crate::openim::{ApiError, Authed, Code, Done, Reply, null_if_empty};

/// OpenIM's `UserInfo`, as requests carry it and replies show it.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct UserInfo {
    #[serde(rename = "userID")]
    user_id: String,
    nickname: String,
    #[serde(rename = "faceURL")]
    face_url: String,
    ex: String,
    #[serde(rename = "createTime")]
    create_time: i64,
    #[serde(rename = "appMangerLevel")]
    app_manger_level: i32,
    #[serde(rename = "globalRecvMsgOpt")]
    global_recv_msg_opt: i32,
}

impl From<UserRow> for UserInfo {
    fn from(row: UserRow) -> Self {
        Self {
            user_id: row.user_id,
            nickname: row.nickname,
            face_url: row.face_url,
            ex: row.ex,
            create_time: row.create_time,
            app_manger_level: row.app_manger_level,
            global_recv_msg_opt: row.global_recv_msg_opt,
        }
    }
}

pub(crate) use jetim_common::clock::now_millis;

pub(crate) fn account_subject(user_id: &str) -> Result<Subject, ApiError> {
    Subject::user(user_id, UserKind::Account)
        .map_err(|error| ApiError::args(format!("userID {user_id:?}: {error}")))
}

pub(crate) fn append_failed(error: &AppendError) -> ApiError {
    ApiError::internal("writing to the event log", error)
}

pub(crate) fn read_failed(error: &jetim_readmodel::ReadModelError) -> ApiError {
    ApiError::internal("reading users", error)
}

/// Finds one user, `None` if not registered: from the read model or, while the projection has
/// not yet applied a fresh registration, from the log itself.
pub async fn look_up_user(state: &ApiState, user_id: &str) -> Result<Option<UserRow>, ApiError> {
    check_user_id("userID", user_id)?;
    users::look_up(&state.db, &state.log, user_id)
        .await
        .map_err(|error| ApiError::internal("looking up a user", &error))
}

/// The user, or 1004 when `user_id` is not registered.
pub async fn registered_user(state: &ApiState, user_id: &str) -> Result<UserRow, ApiError> {
    look_up_user(state, user_id).await?.ok_or_else(|| {
        ApiError::new(
            Code::RecordNotFound,
            format!("user {user_id:?} is not registered"),
        )
    })
}

pub(crate) async fn wait_for_users_projection(state: &ApiState, stream_sequence: u64) {
    super::wait_for_projection(state, users::NAME, users::VERSION, stream_sequence).await;
}

/// `/user/user_register` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RegisterRequest {
    users: Vec<UserInfo>,
}

/// Registers users (admin only). If any ID is taken, nobody is registered and the answer is
/// 1102 naming it.
pub async fn user_register(
    State(state): State<ApiState>,
    request: Authed<RegisterRequest>,
) -> Result<Done, ApiError> {
    request.caller.require_admin()?;
    let mut users = request.body.users;
    let ids: Vec<String> = users.iter().map(|user| user.user_id.clone()).collect();
    check_id_list("users.userID", &ids)?;
    for user in &mut users {
        check_length("nickname", &user.nickname, MAX_NICKNAME_BYTES)?;
        check_length("faceURL", &user.face_url, MAX_FACE_URL_BYTES)?;
        check_length("ex", &user.ex, MAX_EX_BYTES)?;
        check_recv_opt(user.global_recv_msg_opt)?;
        if !(0..=4).contains(&user.app_manger_level) {
            return Err(ApiError::args(format!(
                "appMangerLevel {} is not 1 (user), 2 (app admin), 3 (notification account) or 4 (robot)",
                user.app_manger_level
            )));
        }
        if user.app_manger_level == 0 {
            user.app_manger_level = 1;
        }
    }

    // One atomic batch, each registration expecting an empty account subject: of racing
    // requests that share an ID exactly one is stored, whole, and the others store nothing.
    let create_time = now_millis();
    let registrations = users
        .into_iter()
        .map(|user| {
            let subject = account_subject(&user.user_id)?;
            let registered = UserRegistered {
                user_id: user.user_id,
                nickname: user.nickname,
                face_url: user.face_url,
                ex: user.ex,
                app_manger_level: user.app_manger_level,
                global_recv_msg_opt: user.global_recv_msg_opt,
                create_time,
            };
            Ok((subject, Expect::Empty, registered))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let last_sequence = match state
        .log
        .append_atomically(
            Actor::with_operation(&request.caller.user_id, &request.operation_id),
            &registrations,
        )
        .await
    {
        Ok(appended) => appended.stream_sequence,
        Err(AppendError::Conflict { .. }) => {
            return Err(already_registered(&state, &registrations).await);
        }
        Err(error) => return Err(append_failed(&error)),
    };
    wait_for_users_projection(&state, last_sequence).await;
    Ok(Done)
}

/// The 1102 for a refused batch, naming the first of its IDs the log holds.
async fn already_registered(
    state: &ApiState,
    registrations: &[(Subject, Expect, UserRegistered)],
) -> ApiError {
    let owned: Vec<(Subject, String)> = registrations
        .iter()
        .map(|(subject, _, registered)| (subject.clone(), registered.user_id.clone()))
        .collect();
    let lookups = owned.into_iter().map(|(subject, user_id)| {
        let log = std::sync::Arc::clone(&state.log);
        async move {
            let found = log.last_event(&subject).await;
            (user_id, found)
        }
    });
    let mut found = futures::stream::iter(lookups).buffered(32);
    while let Some((user_id, event)) = found.next().await {
        match event {
            Ok(Some(_)) => {
                return ApiError::new(
                    Code::RegisteredAlready,
                    format!("userID {user_id:?} is already registered"),
                );
            }
            Ok(None) => {}
            Err(error) => return append_failed(&error),
        }
    }
    // The winner's events are stored before the loser hears of them, so this is reached
    // only if the conflicting registration vanished, which a deny-delete stream forbids.
    ApiError::new(
        Code::RegisteredAlready,
        "a userID of the batch was registered concurrently",
    )
}

/// Registers every configured admin that is not registered yet, as OpenIM does at start:
/// appMangerLevel 2, nickname `superAdmin`. Safe to run from several instances at once.
pub async fn register_admins(state: &ApiState) -> Result<(), AppendError> {
    for admin in &state.tokens.config().admin_user_ids {
        let Ok(subject) = Subject::user(admin, UserKind::Account) else {
            continue;
        };
        let registered = UserRegistered {
            user_id: admin.clone(),
            nickname: "superAdmin".to_owned(),
            face_url: String::new(),
            ex: String::new(),
            app_manger_level: 2,
            global_recv_msg_opt: 0,
            create_time: now_millis(),
        };
        match state
            .log
            .append(&subject, "system", Expect::Empty, None, &registered)
            .await
        {
            Ok(_) => tracing::info!(admin = %admin, "admin user registered"),
            Err(AppendError::Conflict { .. }) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Appends a registration onto an empty account subject: of two concurrent registrations of
/// one ID, one wins and the other gets 1102. Returns the stream sequence.
pub(crate) async fn append_registration(
    state: &ApiState,
    actor: &str,
    subject: &Subject,
    registered: &UserRegistered,
) -> Result<u64, ApiError> {
    match state
        .log
        .append(subject, actor, Expect::Empty, None, registered)
        .await
    {
        Ok(appended) => Ok(appended.stream_sequence),
        Err(AppendError::Conflict { .. }) => Err(ApiError::new(
            Code::RegisteredAlready,
            format!("userID {:?} is already registered", registered.user_id),
        )),
        Err(error) => Err(append_failed(&error)),
    }
}

/// `/user/get_users_info` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UserIdsRequest {
    #[serde(rename = "userIDs")]
    user_ids: Vec<String>,
}

/// `/user/get_users_info` reply.
#[derive(Debug, Serialize)]
pub struct UsersInfoReply {
    #[serde(rename = "usersInfo", serialize_with = "null_if_empty")]
    users_info: Vec<UserInfo>,
}

/// The profiles of the named users; unknown IDs are left out.
pub async fn get_users_info(
    State(state): State<ApiState>,
    request: Authed<UserIdsRequest>,
) -> Result<Reply<UsersInfoReply>, ApiError> {
    check_id_list("userIDs", &request.body.user_ids)?;
    let found = users::find(&state.db, &request.body.user_ids)
        .await
        .map_err(|error| read_failed(&error))?;
    Ok(Reply(UsersInfoReply {
        users_info: found.into_iter().map(UserInfo::from).collect(),
    }))
}

/// Applies a profile change. With `notify` (the request's operationID) the user and their
/// friends are told (1303, 1209).
pub(crate) async fn apply_update(
    state: &ApiState,
    actor: &str,
    update: UserUpdated,
    notify: Option<&str>,
) -> Result<Done, ApiError> {
    check_user_id("userID", &update.user_id)?;
    if let Some(nickname) = &update.nickname {
        check_length("nickname", nickname, MAX_NICKNAME_BYTES)?;
    }
    if let Some(face_url) = &update.face_url {
        check_length("faceURL", face_url, MAX_FACE_URL_BYTES)?;
    }
    if let Some(ex) = &update.ex {
        check_length("ex", ex, MAX_EX_BYTES)?;
    }
    if let Some(option) = update.global_recv_msg_opt {
        check_recv_opt(option)?;
    }
    registered_user(state, &update.user_id).await?;
    if update.is_empty() {
        return Ok(Done);
    }
    let subject = account_subject(&update.user_id)?;
    let appended = state
        .log
        .append(&subject, actor, Expect::Anything, None, &update)
        .await
        .map_err(|error| append_failed(&error))?;
    tracing::debug!(event = UserUpdated::KIND, user = %update.user_id, "profile updated");
    wait_for_users_projection(state, appended.stream_sequence).await;
    if let Some(operation_id) = notify {
        super::friend::profile_changed(
            state,
            operation_id,
            actor,
            &update,
            appended.stream_sequence,
        )
        .await?;
    }
    Ok(Done)
}

/// `/user/update_user_info` request (deprecated by OpenIM; empty fields are left unchanged).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UpdateUserInfoRequest {
    #[serde(rename = "userInfo")]
    user_info: Option<UserInfo>,
}

/// Updates a profile; the caller must be the user or an admin.
pub async fn update_user_info(
    State(state): State<ApiState>,
    request: Authed<UpdateUserInfoRequest>,
) -> Result<Done, ApiError> {
    let info = request
        .body
        .user_info
        .ok_or_else(|| ApiError::args("userInfo is missing"))?;
    request.caller.require_self_or_admin(&info.user_id)?;
    let non_empty = |value: String| (!value.is_empty()).then_some(value);
    let update = UserUpdated {
        user_id: info.user_id,
        nickname: non_empty(info.nickname),
        face_url: non_empty(info.face_url),
        ex: non_empty(info.ex),
        global_recv_msg_opt: (info.global_recv_msg_opt != 0).then_some(info.global_recv_msg_opt),
        app_manger_level: None,
    };
    apply_update(
        &state,
        &request.caller.user_id,
        update,
        Some(&request.operation_id),
    )
    .await
}

/// `/user/update_user_info_ex` body: each field present (even empty) is set.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UserInfoEx {
    #[serde(rename = "userID")]
    user_id: String,
    nickname: Option<String>,
    #[serde(rename = "faceURL")]
    face_url: Option<String>,
    ex: Option<String>,
    #[serde(rename = "globalRecvMsgOpt")]
    global_recv_msg_opt: Option<i32>,
}

/// `/user/update_user_info_ex` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UpdateUserInfoExRequest {
    #[serde(rename = "userInfo")]
    user_info: Option<UserInfoEx>,
}

/// Updates the given profile fields; the caller must be the user or an admin.
pub async fn update_user_info_ex(
    State(state): State<ApiState>,
    request: Authed<UpdateUserInfoExRequest>,
) -> Result<Done, ApiError> {
    let info = request
        .body
        .user_info
        .ok_or_else(|| ApiError::args("userInfo is missing"))?;
    request.caller.require_self_or_admin(&info.user_id)?;
    let update = UserUpdated {
        user_id: info.user_id,
        nickname: info.nickname,
        face_url: info.face_url,
        ex: info.ex,
        global_recv_msg_opt: info.global_recv_msg_opt,
        app_manger_level: None,
    };
    apply_update(
        &state,
        &request.caller.user_id,
        update,
        Some(&request.operation_id),
    )
    .await
}

/// `/user/set_global_msg_recv_opt` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SetRecvOptRequest {
    #[serde(rename = "userID")]
    user_id: String,
    #[serde(rename = "globalRecvMsgOpt")]
    global_recv_msg_opt: i32,
}

/// Sets a user's receive option for all single chats. Only the user or an admin (upstream
/// lets anyone change anyone's; jetim does not).
pub async fn set_global_msg_recv_opt(
    State(state): State<ApiState>,
    request: Authed<SetRecvOptRequest>,
) -> Result<Done, ApiError> {
    request
        .caller
        .require_self_or_admin(&request.body.user_id)?;
    check_recv_opt(request.body.global_recv_msg_opt)?;
    let update = UserUpdated {
        user_id: request.body.user_id,
        global_recv_msg_opt: Some(request.body.global_recv_msg_opt),
        ..UserUpdated::default()
    };
    apply_update(
        &state,
        &request.caller.user_id,
        update,
        Some(&request.operation_id),
    )
    .await
}

/// `/user/account_check` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AccountCheckRequest {
    #[serde(rename = "checkUserIDs")]
    check_user_ids: Vec<String>,
}

/// One `/user/account_check` result.
#[derive(Debug, Serialize)]
pub struct AccountStatus {
    #[serde(rename = "userID")]
    user_id: String,
    /// 1 registered, 0 not.
    #[serde(rename = "accountStatus")]
    account_status: i32,
}

/// `/user/account_check` reply.
#[derive(Debug, Serialize)]
pub struct AccountCheckReply {
    #[serde(serialize_with = "null_if_empty")]
    results: Vec<AccountStatus>,
}

/// Says which IDs are registered (admin only), in the order asked.
pub async fn account_check(
    State(state): State<ApiState>,
    request: Authed<AccountCheckRequest>,
) -> Result<Reply<AccountCheckReply>, ApiError> {
    request.caller.require_admin()?;
    let ids = request.body.check_user_ids;
    check_id_list("checkUserIDs", &ids)?;
    let found: HashSet<String> = users::find(&state.db, &ids)
        .await
        .map_err(|error| read_failed(&error))?
        .into_iter()
        .map(|user| user.user_id)
        .collect();
    let results = ids
        .into_iter()
        .map(|user_id| AccountStatus {
            account_status: i32::from(found.contains(&user_id)),
            user_id,
        })
        .collect();
    Ok(Reply(AccountCheckReply { results }))
}

/// `/user/get_all_users_uid` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AllUserIdsRequest {
    pagination: Option<Pagination>,
}

/// `/user/get_all_users_uid` reply.
#[derive(Debug, Serialize)]
pub struct AllUserIdsReply {
    total: i64,
    #[serde(rename = "userIDs", serialize_with = "null_if_empty")]
    user_ids: Vec<String>,
}

/// A page of every user ID in registration order (admin only; upstream checks nothing).
pub async fn get_all_users_uid(
    State(state): State<ApiState>,
    request: Authed<AllUserIdsRequest>,
) -> Result<Reply<AllUserIdsReply>, ApiError> {
    request.caller.require_admin()?;
    let (offset, limit) = Pagination::window(request.body.pagination.as_ref())?;
    let (total, rows) = users::page(&state.db, &UserFilter::default(), offset, limit)
        .await
        .map_err(|error| read_failed(&error))?;
    Ok(Reply(AllUserIdsReply {
        total,
        user_ids: rows.into_iter().map(|user| user.user_id).collect(),
    }))
}

/// `/user/get_users` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GetUsersRequest {
    pagination: Option<Pagination>,
    #[serde(rename = "userID")]
    user_id: String,
    #[serde(rename = "nickName")]
    nick_name: String,
}

/// `/user/get_users` reply.
#[derive(Debug, Serialize)]
pub struct GetUsersReply {
    total: i64,
    #[serde(serialize_with = "null_if_empty")]
    users: Vec<UserInfo>,
}

/// A page of ordinary users (levels 0–1), optionally one ID or a nickname fragment (admin
/// only; upstream checks nothing).
pub async fn get_users(
    State(state): State<ApiState>,
    request: Authed<GetUsersRequest>,
) -> Result<Reply<GetUsersReply>, ApiError> {
    request.caller.require_admin()?;
    let (offset, limit) = Pagination::window(request.body.pagination.as_ref())?;
    let filter = UserFilter {
        user_id: (!request.body.user_id.is_empty()).then_some(request.body.user_id),
        nickname: (!request.body.nick_name.is_empty()).then_some(request.body.nick_name),
        levels: Some(vec![0, 1]),
        keyword: None,
    };
    let (total, rows) = users::page(&state.db, &filter, offset, limit)
        .await
        .map_err(|error| read_failed(&error))?;
    Ok(Reply(GetUsersReply {
        total,
        users: rows.into_iter().map(UserInfo::from).collect(),
    }))
}
