//! `/friend/*`: friend requests, friendships and blocks.
//!
//! Every change is an event on `im.user.<userID>.friend` or `im.user.<userID>.black`; the
//! `relations` projection builds the tables and version logs the queries read. A change waits
//! (briefly) for the projection, then pushes OpenIM's notification (push only, in the pair's
//! `n_` conversation; 1201 also leaves a stored copy in the chat). Blocks are pushed to the
//! owner only: upstream also tells the blocked user, which reveals the block.

use std::collections::BTreeMap;

use axum::extract::State;
use jetim_messaging::notification::Notification;
use jetim_readmodel::relations::{
    self, BlackWithUser, Direction, FriendWithUser, RequestWithUsers,
};
use jetim_readmodel::users;
use jetim_readmodel::versions::Log;
use jetim_schemas::event::Event;
use jetim_schemas::events::relation::{
    BlackAdded, BlackRemoved, FriendDeleted, FriendRequestHandled, FriendRequested,
    FriendsImported, FriendsUpdated,
};
use jetim_streams::subject::{Subject, UserKind};
use jetim_streams::{Actor, AppendError, Expect};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::args::{
    MAX_EX_BYTES, MAX_NICKNAME_BYTES, Pagination, check_id_list, check_length, check_user_id,
};
use super::incremental::{self, FullIdsRequest, IncrementalRequest};
use super::user::{UserInfo, append_failed, now_millis, read_failed};
use crate::ApiState;
use crate::openim::{ApiError, Authed, Caller, Code, Done, Reply, null_if_empty};

/// The longest request or answer message, in bytes.
const MAX_MESSAGE_BYTES: usize = 255;
/// The longest remark, in bytes.
const MAX_REMARK_BYTES: usize = MAX_NICKNAME_BYTES;
/// How often a request answer is retried when the addressee's subject moved under it.
const MAX_ANSWER_ATTEMPTS: usize = 5;

fn subject(user_id: &str, kind: UserKind) -> Result<Subject, ApiError> {
    Subject::user(user_id, kind).map_err(|error| ApiError::args(format!("userID: {error}")))
}

/// Appends `event` in the request's name (its caller and operationID); the stream sequence.
async fn append<T, E: Event>(
    state: &ApiState,
    request: &Authed<T>,
    subject: &Subject,
    expect: Expect,
    event: &E,
) -> Result<u64, AppendError> {
    Ok(state
        .log
        .append(
            subject,
            Actor::with_operation(&request.caller.user_id, &request.operation_id),
            expect,
            None,
            event,
        )
        .await?
        .stream_sequence)
}

async fn applied(state: &ApiState, stream_sequence: u64) {
    super::wait_for_projection(state, relations::NAME, relations::VERSION, stream_sequence).await;
}

/// Appends `event` to the user's `kind` subject in the request's name, and waits until the
/// relations projection shows it.
async fn record<T, E: Event>(
    state: &ApiState,
    request: &Authed<T>,
    (user_id, kind): (&str, UserKind),
    event: &E,
) -> Result<(), ApiError> {
    let sequence = append(
        state,
        request,
        &subject(user_id, kind)?,
        Expect::Anything,
        event,
    )
    .await
    .map_err(|error| append_failed(&error))?;
    applied(state, sequence).await;
    Ok(())
}

fn relation_read_failed(error: &jetim_readmodel::ReadModelError) -> ApiError {
    ApiError::internal("reading friends", error)
}

/// 1101 unless every one of `user_ids` is registered.
async fn require_registered(state: &ApiState, user_ids: &[&str]) -> Result<(), ApiError> {
    let wanted: Vec<String> = user_ids.iter().map(|id| (*id).to_owned()).collect();
    let found = users::find(&state.db, &wanted)
        .await
        .map_err(|error| read_failed(&error))?;
    for user_id in user_ids {
        if !found.iter().any(|user| user.user_id == *user_id) {
            return Err(ApiError::new(
                Code::UserIdNotFound,
                format!("user {user_id:?} is not registered"),
            ));
        }
    }
    Ok(())
}

/// Pushes a notification (never stored) to `to`.
async fn push(state: &ApiState, operation_id: &str, notification: &Notification, to: &[&str]) {
    let to: Vec<String> = to.iter().map(|user| (*user).to_owned()).collect();
    super::push_notification(state, operation_id, notification, &to).await;
}

/// Pushes a notification to both users, and stores its copy in their chat.
async fn push_and_store(
    state: &ApiState,
    operation_id: &str,
    notification: &Notification,
) -> Result<(), ApiError> {
    super::push_to_both(state, operation_id, notification).await;
    let copy = notification.chat_copy();
    super::store_message(state, (&notification.send_id, operation_id), &copy).await?;
    Ok(())
}

fn from_to(from: &str, to: &str) -> serde_json::Value {
    json!({ "fromUserID": from, "toUserID": to })
}

fn notification(
    content_type: i32,
    from: &str,
    to: &str,
    tips: serde_json::Value,
    offline_push: bool,
) -> Notification {
    Notification {
        content_type,
        send_id: from.to_owned(),
        recv_id: to.to_owned(),
        group_id: String::new(),
        tips,
        offline_push,
        now_ms: now_millis(),
    }
}

/// After a profile change (at `stream_sequence`): 1303 `UserInfoUpdatedTips` to the user
/// (from the operator), and, when the nickname or face changed, 1516 to the members of each
/// of the user's groups and 1209 to everyone who lists the user as a friend (their friend
/// logs show the change too; the relations projection records it). The changed user gets
/// 1303 only, not a copy of every 1209.
pub(crate) async fn profile_changed(
    state: &ApiState,
    operation_id: &str,
    operator: &str,
    update: &jetim_schemas::events::user::UserUpdated,
    stream_sequence: u64,
) -> Result<(), ApiError> {
    let user = &update.user_id;
    let tips = json!({ "userID": user });
    push(
        state,
        operation_id,
        &notification(1303, operator, user, tips, false),
        &[user],
    )
    .await;
    if update.nickname.is_none() && update.face_url.is_none() {
        return Ok(());
    }
    super::group::member_profile_changed(state, operation_id, update, stream_sequence).await?;
    // The friends' logs show the change once the relations projection has applied it.
    applied(state, stream_sequence).await;
    let friends_of = relations::listed_by(&state.db, user)
        .await
        .map_err(|error| relation_read_failed(&error))?;
    for owner in &friends_of {
        let tips = json!({
            "fromToUserID": from_to(user, owner),
            "friendVersion": 0,
            "friendVersionID": "",
            "friendSortVersion": 0,
        });
        push(
            state,
            operation_id,
            &notification(1209, user, owner, tips, false),
            &[owner],
        )
        .await;
    }
    Ok(())
}

// ---- Wire shapes ----

/// OpenIM's `FriendRequest`.
#[derive(Debug, Serialize)]
pub struct FriendRequestJson {
    #[serde(rename = "fromUserID")]
    from_user_id: String,
    #[serde(rename = "fromNickname")]
    from_nickname: String,
    #[serde(rename = "fromFaceURL")]
    from_face_url: String,
    #[serde(rename = "toUserID")]
    to_user_id: String,
    #[serde(rename = "toNickname")]
    to_nickname: String,
    #[serde(rename = "toFaceURL")]
    to_face_url: String,
    #[serde(rename = "handleResult")]
    handle_result: i32,
    #[serde(rename = "reqMsg")]
    req_msg: String,
    #[serde(rename = "createTime")]
    create_time: i64,
    #[serde(rename = "handlerUserID")]
    handler_user_id: String,
    #[serde(rename = "handleMsg")]
    handle_msg: String,
    #[serde(rename = "handleTime")]
    handle_time: i64,
    ex: String,
}

impl From<RequestWithUsers> for FriendRequestJson {
    fn from(found: RequestWithUsers) -> Self {
        let request = found.request;
        Self {
            from_user_id: request.from_user_id,
            from_nickname: found.from.0,
            from_face_url: found.from.1,
            to_user_id: request.to_user_id,
            to_nickname: found.to.0,
            to_face_url: found.to.1,
            handle_result: request.handle_result,
            req_msg: request.req_msg,
            create_time: request.create_time,
            handler_user_id: request.handler_user_id,
            handle_msg: request.handle_msg,
            handle_time: request.handle_time,
            ex: request.ex,
        }
    }
}

/// OpenIM's `FriendInfo`.
#[derive(Debug, Serialize)]
pub struct FriendInfoJson {
    #[serde(rename = "ownerUserID")]
    owner_user_id: String,
    remark: String,
    #[serde(rename = "createTime")]
    create_time: i64,
    #[serde(rename = "friendUser")]
    friend_user: Option<UserInfo>,
    #[serde(rename = "addSource")]
    add_source: i32,
    #[serde(rename = "operatorUserID")]
    operator_user_id: String,
    ex: String,
    #[serde(rename = "isPinned")]
    is_pinned: bool,
}

impl From<FriendWithUser> for FriendInfoJson {
    fn from(found: FriendWithUser) -> Self {
        let friend = found.friend;
        Self {
            owner_user_id: friend.owner_user_id,
            remark: friend.remark,
            create_time: friend.create_time,
            friend_user: found.user.map(UserInfo::from),
            add_source: friend.add_source,
            operator_user_id: friend.operator_user_id,
            ex: friend.ex,
            is_pinned: friend.is_pinned,
        }
    }
}

/// OpenIM's `PublicUserInfo`.
#[derive(Debug, Serialize)]
pub struct PublicUserInfo {
    #[serde(rename = "userID")]
    user_id: String,
    nickname: String,
    #[serde(rename = "faceURL")]
    face_url: String,
    ex: String,
}

/// OpenIM's `BlackInfo`.
#[derive(Debug, Serialize)]
pub struct BlackInfoJson {
    #[serde(rename = "ownerUserID")]
    owner_user_id: String,
    #[serde(rename = "createTime")]
    create_time: i64,
    #[serde(rename = "blackUserInfo")]
    black_user_info: PublicUserInfo,
    #[serde(rename = "addSource")]
    add_source: i32,
    #[serde(rename = "operatorUserID")]
    operator_user_id: String,
    ex: String,
}

impl From<BlackWithUser> for BlackInfoJson {
    fn from(found: BlackWithUser) -> Self {
        let black = found.black;
        let (nickname, face_url, ex) = found.user;
        Self {
            owner_user_id: black.owner_user_id,
            create_time: black.create_time,
            black_user_info: PublicUserInfo {
                user_id: black.black_user_id,
                nickname,
                face_url,
                ex,
            },
            add_source: 0,
            operator_user_id: black.operator_user_id,
            ex: black.ex,
        }
    }
}

fn friends_json(found: Vec<FriendWithUser>) -> Vec<FriendInfoJson> {
    found.into_iter().map(Into::into).collect()
}

fn blacks_json(found: Vec<BlackWithUser>) -> Vec<BlackInfoJson> {
    found.into_iter().map(Into::into).collect()
}

// ---- Requests ----

/// `/friend/add_friend` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AddFriendRequest {
    #[serde(rename = "fromUserID")]
    from_user_id: String,
    #[serde(rename = "toUserID")]
    to_user_id: String,
    #[serde(rename = "reqMsg")]
    req_msg: String,
    ex: String,
}

/// Asks `toUserID` for friendship, replacing an earlier request between the two; 1203 to
/// both.
pub async fn add_friend(
    State(state): State<ApiState>,
    request: Authed<AddFriendRequest>,
) -> Result<Done, ApiError> {
    let body = &request.body;
    check_user_id("fromUserID", &body.from_user_id)?;
    check_user_id("toUserID", &body.to_user_id)?;
    request.caller.require_self_or_admin(&body.from_user_id)?;
    check_length("reqMsg", &body.req_msg, MAX_MESSAGE_BYTES)?;
    check_length("ex", &body.ex, MAX_EX_BYTES)?;
    if body.from_user_id == body.to_user_id {
        return Err(ApiError::new(
            Code::CanNotAddYourself,
            "a user cannot befriend themself",
        ));
    }
    require_registered(&state, &[&body.from_user_id, &body.to_user_id]).await?;
    let (forward, backward) = futures::try_join!(
        relations::is_friend(&state.db, &body.from_user_id, &body.to_user_id),
        relations::is_friend(&state.db, &body.to_user_id, &body.from_user_id),
    )
    .map_err(|error| relation_read_failed(&error))?;
    if forward && backward {
        return Err(ApiError::new(
            Code::RelationshipAlready,
            format!(
                "{} and {} are already friends",
                body.from_user_id, body.to_user_id
            ),
        ));
    }
    let event = FriendRequested {
        from_user_id: body.from_user_id.clone(),
        to_user_id: body.to_user_id.clone(),
        req_msg: body.req_msg.clone(),
        ex: body.ex.clone(),
        create_time: now_millis(),
    };
    record(
        &state,
        &request,
        (&body.to_user_id, UserKind::Friend),
        &event,
    )
    .await?;
    let stored = stored_request(&state, &body.from_user_id, &body.to_user_id).await?;
    let tips = json!({
        "fromToUserID": from_to(&body.from_user_id, &body.to_user_id),
        "request": stored,
    });
    let tips = notification(1203, &body.from_user_id, &body.to_user_id, tips, true);
    super::push_to_both(&state, &request.operation_id, &tips).await;
    Ok(Done)
}

/// The request from `from` to `to` as the read model holds it, as JSON (`null` if absent).
async fn stored_request(
    state: &ApiState,
    from: &str,
    to: &str,
) -> Result<serde_json::Value, ApiError> {
    let found = find_request(state, from, to)
        .await?
        .map(FriendRequestJson::from);
    Ok(serde_json::to_value(found).unwrap_or_default())
}

/// The request from `from` to `to`, if there is one.
async fn find_request(
    state: &ApiState,
    from: &str,
    to: &str,
) -> Result<Option<RequestWithUsers>, ApiError> {
    Ok(relations::requests_between(&state.db, from, to)
        .await
        .map_err(|error| relation_read_failed(&error))?
        .into_iter()
        .find(|found| found.request.from_user_id == from))
}

/// `/friend/add_friend_response` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RespondRequest {
    #[serde(rename = "fromUserID")]
    from_user_id: String,
    #[serde(rename = "toUserID")]
    to_user_id: String,
    #[serde(rename = "handleResult")]
    handle_result: i32,
    #[serde(rename = "handleMsg")]
    handle_msg: String,
}

/// The addressee (`toUserID`) accepts (1) or refuses (-1) a pending request: 1201 with a
/// copy in the chat, or 1202.
pub async fn add_friend_response(
    State(state): State<ApiState>,
    request: Authed<RespondRequest>,
) -> Result<Done, ApiError> {
    let body = &request.body;
    check_user_id("fromUserID", &body.from_user_id)?;
    check_user_id("toUserID", &body.to_user_id)?;
    request.caller.require_self_or_admin(&body.to_user_id)?;
    check_length("handleMsg", &body.handle_msg, MAX_MESSAGE_BYTES)?;
    if body.handle_result != 1 && body.handle_result != -1 {
        return Err(ApiError::args(format!(
            "handleResult {} is not 1 (accept) or -1 (refuse)",
            body.handle_result
        )));
    }
    let subject = subject(&body.to_user_id, UserKind::Friend)?;
    let event = FriendRequestHandled {
        from_user_id: body.from_user_id.clone(),
        to_user_id: body.to_user_id.clone(),
        handle_result: body.handle_result,
        handle_msg: body.handle_msg.clone(),
        handle_time: now_millis(),
    };
    // The answer is decided on the addressee's subject as the projection shows it, and
    // appended only if nothing reached the subject meanwhile; otherwise decided again.
    let mut attempts = 0;
    let sequence = loop {
        attempts += 1;
        let last = state
            .log
            .last_event(&subject)
            .await
            .map_err(|error| append_failed(&error))?
            .map_or(0, |event| event.stream_sequence);
        applied(&state, last).await;
        let pending = find_request(&state, &body.from_user_id, &body.to_user_id)
            .await?
            .map(|found| found.request.handle_result);
        match pending {
            None => {
                return Err(ApiError::new(
                    Code::RecordNotFound,
                    format!(
                        "{} has no friend request from {}",
                        body.to_user_id, body.from_user_id
                    ),
                ));
            }
            Some(0) => {}
            Some(_) => {
                return Err(ApiError::args(format!(
                    "the friend request from {} to {} is already handled",
                    body.from_user_id, body.to_user_id
                )));
            }
        }
        match append(&state, &request, &subject, Expect::LastAt(last), &event).await {
            Ok(sequence) => break sequence,
            Err(AppendError::Conflict { .. }) if attempts < MAX_ANSWER_ATTEMPTS => {}
            Err(error) => return Err(append_failed(&error)),
        }
    };
    applied(&state, sequence).await;
    let stored = stored_request(&state, &body.from_user_id, &body.to_user_id).await?;
    let pair = from_to(&body.from_user_id, &body.to_user_id);
    if event.accepted() {
        let tips = json!({
            "fromToUserID": pair,
            "handleMsg": body.handle_msg,
            "friendVersion": 0,
            "friendVersionID": "",
            "request": stored,
        });
        let tips = notification(1201, &body.to_user_id, &body.from_user_id, tips, true);
        push_and_store(&state, &request.operation_id, &tips).await?;
    } else {
        let tips = json!({
            "fromToUserID": pair,
            "handleMsg": body.handle_msg,
            "request": stored,
        });
        let tips = notification(1202, &body.to_user_id, &body.from_user_id, tips, true);
        super::push_to_both(&state, &request.operation_id, &tips).await;
    }
    Ok(Done)
}

/// A user and a page (`get_friend_apply_list`, `get_self_friend_apply_list`,
/// `get_friend_list`, `get_black_list`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UserPageRequest {
    #[serde(rename = "userID")]
    user_id: String,
    pagination: Option<Pagination>,
    #[serde(rename = "handleResults")]
    handle_results: Vec<i32>,
}

fn checked_page(request: &Authed<UserPageRequest>) -> Result<(i64, i64), ApiError> {
    check_user_id("userID", &request.body.user_id)?;
    request
        .caller
        .require_self_or_admin(&request.body.user_id)?;
    if let Some(bad) = request
        .body
        .handle_results
        .iter()
        .find(|result| ![-1, 0, 1].contains(*result))
    {
        return Err(ApiError::args(format!(
            "handleResults holds {bad}; results are -1, 0 and 1"
        )));
    }
    Pagination::window(request.body.pagination.as_ref())
}

/// `/friend/get_friend_apply_list` reply (upstream's capital `F`).
#[derive(Debug, Serialize)]
pub struct ReceivedRequestsReply {
    #[serde(rename = "FriendRequests", serialize_with = "null_if_empty")]
    friend_requests: Vec<FriendRequestJson>,
    total: i64,
}

/// `/friend/get_self_friend_apply_list` reply.
#[derive(Debug, Serialize)]
pub struct SentRequestsReply {
    #[serde(rename = "friendRequests", serialize_with = "null_if_empty")]
    friend_requests: Vec<FriendRequestJson>,
    total: i64,
}

async fn requests_page(
    state: &ApiState,
    request: &Authed<UserPageRequest>,
    direction: Direction,
) -> Result<(i64, Vec<FriendRequestJson>), ApiError> {
    let (offset, limit) = checked_page(request)?;
    let (total, found) = relations::requests_page(
        &state.db,
        &request.body.user_id,
        direction,
        &request.body.handle_results,
        offset,
        limit,
    )
    .await
    .map_err(|error| relation_read_failed(&error))?;
    Ok((total, found.into_iter().map(Into::into).collect()))
}

/// The requests addressed to the user, newest first.
pub async fn get_friend_apply_list(
    State(state): State<ApiState>,
    request: Authed<UserPageRequest>,
) -> Result<Reply<ReceivedRequestsReply>, ApiError> {
    let (total, friend_requests) = requests_page(&state, &request, Direction::Received).await?;
    Ok(Reply(ReceivedRequestsReply {
        friend_requests,
        total,
    }))
}

/// The requests the user made, newest first.
pub async fn get_self_friend_apply_list(
    State(state): State<ApiState>,
    request: Authed<UserPageRequest>,
) -> Result<Reply<SentRequestsReply>, ApiError> {
    let (total, friend_requests) = requests_page(&state, &request, Direction::Sent).await?;
    Ok(Reply(SentRequestsReply {
        friend_requests,
        total,
    }))
}

/// `/friend/get_designated_friend_apply` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PairRequest {
    #[serde(rename = "fromUserID")]
    from_user_id: String,
    #[serde(rename = "toUserID")]
    to_user_id: String,
}

/// `/friend/get_designated_friend_apply` reply.
#[derive(Debug, Serialize)]
pub struct DesignatedRequestsReply {
    #[serde(rename = "friendRequests", serialize_with = "null_if_empty")]
    friend_requests: Vec<FriendRequestJson>,
}

fn require_one_of(caller: &Caller, first: &str, second: &str) -> Result<(), ApiError> {
    if caller.is_admin || caller.user_id == first || caller.user_id == second {
        Ok(())
    } else {
        Err(ApiError::no_permission(format!(
            "{} is neither {first} nor {second}",
            caller.user_id
        )))
    }
}

/// The requests between two users, either way; the caller must be one of them.
pub async fn get_designated_friend_apply(
    State(state): State<ApiState>,
    request: Authed<PairRequest>,
) -> Result<Reply<DesignatedRequestsReply>, ApiError> {
    let body = &request.body;
    check_user_id("fromUserID", &body.from_user_id)?;
    check_user_id("toUserID", &body.to_user_id)?;
    require_one_of(&request.caller, &body.from_user_id, &body.to_user_id)?;
    let found = relations::requests_between(&state.db, &body.from_user_id, &body.to_user_id)
        .await
        .map_err(|error| relation_read_failed(&error))?;
    Ok(Reply(DesignatedRequestsReply {
        friend_requests: found.into_iter().map(Into::into).collect(),
    }))
}

/// `/friend/get_self_unhandled_apply_count` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UnhandledCountRequest {
    #[serde(rename = "userID")]
    user_id: String,
    /// Count only requests made after this, milliseconds since the epoch.
    time: i64,
}

/// `/friend/get_self_unhandled_apply_count` reply.
#[derive(Debug, Serialize)]
pub struct CountReply {
    count: i64,
}

/// How many pending requests the user has received since `time`.
pub async fn get_self_unhandled_apply_count(
    State(state): State<ApiState>,
    request: Authed<UnhandledCountRequest>,
) -> Result<Reply<CountReply>, ApiError> {
    let body = &request.body;
    check_user_id("userID", &body.user_id)?;
    request.caller.require_self_or_admin(&body.user_id)?;
    if body.time < 0 {
        return Err(ApiError::args(format!("time {} is negative", body.time)));
    }
    let count = relations::unhandled_requests(&state.db, &body.user_id, body.time)
        .await
        .map_err(|error| relation_read_failed(&error))?;
    Ok(Reply(CountReply { count }))
}

// ---- Friendships ----

/// `/friend/get_friend_list` reply.
#[derive(Debug, Serialize)]
pub struct FriendListReply {
    #[serde(rename = "friendsInfo", serialize_with = "null_if_empty")]
    friends_info: Vec<FriendInfoJson>,
    total: i64,
}

/// A page of the user's friends, pinned first.
pub async fn get_friend_list(
    State(state): State<ApiState>,
    request: Authed<UserPageRequest>,
) -> Result<Reply<FriendListReply>, ApiError> {
    let (offset, limit) = checked_page(&request)?;
    let (total, found) = relations::friends_page(&state.db, &request.body.user_id, offset, limit)
        .await
        .map_err(|error| relation_read_failed(&error))?;
    Ok(Reply(FriendListReply {
        friends_info: friends_json(found),
        total,
    }))
}

/// `/friend/get_designated_friends` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DesignatedFriendsRequest {
    #[serde(rename = "ownerUserID")]
    owner_user_id: String,
    #[serde(rename = "friendUserIDs")]
    friend_user_ids: Vec<String>,
}

/// `/friend/get_designated_friends` reply.
#[derive(Debug, Serialize)]
pub struct DesignatedFriendsReply {
    #[serde(rename = "friendsInfo", serialize_with = "null_if_empty")]
    friends_info: Vec<FriendInfoJson>,
}

/// The owner's friends among the listed users (non-friends are left out).
pub async fn get_designated_friends(
    State(state): State<ApiState>,
    request: Authed<DesignatedFriendsRequest>,
) -> Result<Reply<DesignatedFriendsReply>, ApiError> {
    let body = &request.body;
    check_user_id("ownerUserID", &body.owner_user_id)?;
    request.caller.require_self_or_admin(&body.owner_user_id)?;
    check_id_list("friendUserIDs", &body.friend_user_ids)?;
    let found = relations::friends_among(&state.db, &body.owner_user_id, &body.friend_user_ids)
        .await
        .map_err(|error| relation_read_failed(&error))?;
    Ok(Reply(DesignatedFriendsReply {
        friends_info: friends_json(found),
    }))
}

/// `/friend/delete_friend` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeleteFriendRequest {
    #[serde(rename = "ownerUserID")]
    owner_user_id: String,
    #[serde(rename = "friendUserID")]
    friend_user_id: String,
}

async fn require_friends(
    state: &ApiState,
    owner: &str,
    friend_ids: &[String],
) -> Result<(), ApiError> {
    let found = relations::friends_among(&state.db, owner, friend_ids)
        .await
        .map_err(|error| relation_read_failed(&error))?;
    if let Some(missing) = friend_ids.iter().find(|id| {
        !found
            .iter()
            .any(|found| found.friend.friend_user_id == **id)
    }) {
        return Err(ApiError::new(
            Code::RecordNotFound,
            format!("{missing} is not {owner}'s friend"),
        ));
    }
    Ok(())
}

/// Takes a friend off the owner's list (the other side keeps theirs); 1205 to both.
pub async fn delete_friend(
    State(state): State<ApiState>,
    request: Authed<DeleteFriendRequest>,
) -> Result<Done, ApiError> {
    let body = &request.body;
    check_user_id("ownerUserID", &body.owner_user_id)?;
    check_user_id("friendUserID", &body.friend_user_id)?;
    request.caller.require_self_or_admin(&body.owner_user_id)?;
    require_friends(
        &state,
        &body.owner_user_id,
        std::slice::from_ref(&body.friend_user_id),
    )
    .await?;
    let deleted = FriendDeleted {
        owner_user_id: body.owner_user_id.clone(),
        friend_user_id: body.friend_user_id.clone(),
    };
    record(
        &state,
        &request,
        (&body.owner_user_id, UserKind::Friend),
        &deleted,
    )
    .await?;
    let tips = json!({
        "fromToUserID": from_to(&body.owner_user_id, &body.friend_user_id),
        "friendVersion": 0,
        "friendVersionID": "",
    });
    let tips = notification(1205, &body.owner_user_id, &body.friend_user_id, tips, false);
    super::push_to_both(&state, &request.operation_id, &tips).await;
    Ok(Done)
}

/// `/friend/set_friend_remark` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RemarkRequest {
    #[serde(rename = "ownerUserID")]
    owner_user_id: String,
    #[serde(rename = "friendUserID")]
    friend_user_id: String,
    remark: String,
}

/// Sets the owner's remark on a friend; 1206.
pub async fn set_friend_remark(
    State(state): State<ApiState>,
    request: Authed<RemarkRequest>,
) -> Result<Done, ApiError> {
    let body = &request.body;
    check_user_id("ownerUserID", &body.owner_user_id)?;
    check_user_id("friendUserID", &body.friend_user_id)?;
    request.caller.require_self_or_admin(&body.owner_user_id)?;
    check_length("remark", &body.remark, MAX_REMARK_BYTES)?;
    let friend_ids = vec![body.friend_user_id.clone()];
    require_friends(&state, &body.owner_user_id, &friend_ids).await?;
    let updated = FriendsUpdated {
        owner_user_id: body.owner_user_id.clone(),
        friend_user_ids: friend_ids,
        remark: Some(body.remark.clone()),
        ..FriendsUpdated::default()
    };
    record(
        &state,
        &request,
        (&body.owner_user_id, UserKind::Friend),
        &updated,
    )
    .await?;
    let tips = json!({
        "fromToUserID": from_to(&body.owner_user_id, &body.friend_user_id),
        "friendVersion": 0,
        "friendVersionID": "",
        "friendSortVersion": 0,
    });
    let tips = notification(1206, &body.owner_user_id, &body.friend_user_id, tips, false);
    super::push_to_both(&state, &request.operation_id, &tips).await;
    Ok(Done)
}

/// `/friend/update_friends` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UpdateFriendsRequest {
    #[serde(rename = "ownerUserID")]
    owner_user_id: String,
    #[serde(rename = "friendUserIDs")]
    friend_user_ids: Vec<String>,
    #[serde(rename = "isPinned")]
    is_pinned: Option<bool>,
    remark: Option<String>,
    ex: Option<String>,
}

/// Sets pin, remark or `ex` on some of the owner's friends; 1210 to the owner.
pub async fn update_friends(
    State(state): State<ApiState>,
    request: Authed<UpdateFriendsRequest>,
) -> Result<Done, ApiError> {
    let body = &request.body;
    check_user_id("ownerUserID", &body.owner_user_id)?;
    request.caller.require_self_or_admin(&body.owner_user_id)?;
    check_id_list("friendUserIDs", &body.friend_user_ids)?;
    if body.is_pinned.is_none() && body.remark.is_none() && body.ex.is_none() {
        return Err(ApiError::args(
            "nothing to update: isPinned, remark and ex are absent",
        ));
    }
    check_length(
        "remark",
        body.remark.as_deref().unwrap_or(""),
        MAX_REMARK_BYTES,
    )?;
    check_length("ex", body.ex.as_deref().unwrap_or(""), MAX_EX_BYTES)?;
    require_friends(&state, &body.owner_user_id, &body.friend_user_ids).await?;
    let updated = FriendsUpdated {
        owner_user_id: body.owner_user_id.clone(),
        friend_user_ids: body.friend_user_ids.clone(),
        remark: body.remark.clone(),
        is_pinned: body.is_pinned,
        ex: body.ex.clone(),
    };
    record(
        &state,
        &request,
        (&body.owner_user_id, UserKind::Friend),
        &updated,
    )
    .await?;
    let tips = json!({
        "fromToUserID": from_to(&body.owner_user_id, &body.owner_user_id),
        "friendIDs": body.friend_user_ids,
        "friendVersion": 0,
        "friendVersionID": "",
    });
    let tips = notification(1210, &body.owner_user_id, &body.owner_user_id, tips, false);
    push(&state, &request.operation_id, &tips, &[&body.owner_user_id]).await;
    Ok(Done)
}

/// `/friend/import_friend` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ImportRequest {
    #[serde(rename = "ownerUserID")]
    owner_user_id: String,
    #[serde(rename = "friendUserIDs")]
    friend_user_ids: Vec<String>,
}

/// Admin: makes the owner and each listed user friends both ways (existing friendships are
/// kept as they are); 1201 per new friend.
pub async fn import_friend(
    State(state): State<ApiState>,
    request: Authed<ImportRequest>,
) -> Result<Done, ApiError> {
    request.caller.require_admin()?;
    let body = &request.body;
    check_user_id("ownerUserID", &body.owner_user_id)?;
    check_id_list("friendUserIDs", &body.friend_user_ids)?;
    if body.friend_user_ids.contains(&body.owner_user_id) {
        return Err(ApiError::new(
            Code::CanNotAddYourself,
            "a user cannot befriend themself",
        ));
    }
    let mut everyone: Vec<&str> = vec![&body.owner_user_id];
    everyone.extend(body.friend_user_ids.iter().map(String::as_str));
    require_registered(&state, &everyone).await?;
    let imported = FriendsImported {
        owner_user_id: body.owner_user_id.clone(),
        friend_user_ids: body.friend_user_ids.clone(),
        operator_user_id: request.caller.user_id.clone(),
        create_time: now_millis(),
    };
    record(
        &state,
        &request,
        (&body.owner_user_id, UserKind::Friend),
        &imported,
    )
    .await?;
    for friend in &body.friend_user_ids {
        let tips = json!({
            "fromToUserID": from_to(&body.owner_user_id, friend),
            "handleMsg": "",
            "friendVersion": 0,
            "friendVersionID": "",
            "request": null,
        });
        let tips = notification(1201, friend, &body.owner_user_id, tips, true);
        push_and_store(&state, &request.operation_id, &tips).await?;
    }
    Ok(Done)
}

/// `/friend/is_friend` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct IsFriendRequest {
    #[serde(rename = "userID1")]
    user_id_1: String,
    #[serde(rename = "userID2")]
    user_id_2: String,
}

/// `/friend/is_friend` reply.
#[derive(Debug, Serialize)]
pub struct IsFriendReply {
    #[serde(rename = "inUser1Friends")]
    in_user_1_friends: bool,
    #[serde(rename = "inUser2Friends")]
    in_user_2_friends: bool,
}

/// Whether each user lists the other; the caller must be one of them.
pub async fn is_friend(
    State(state): State<ApiState>,
    request: Authed<IsFriendRequest>,
) -> Result<Reply<IsFriendReply>, ApiError> {
    let body = &request.body;
    check_user_id("userID1", &body.user_id_1)?;
    check_user_id("userID2", &body.user_id_2)?;
    require_one_of(&request.caller, &body.user_id_1, &body.user_id_2)?;
    let (in_user_1_friends, in_user_2_friends) = futures::try_join!(
        relations::is_friend(&state.db, &body.user_id_1, &body.user_id_2),
        relations::is_friend(&state.db, &body.user_id_2, &body.user_id_1),
    )
    .map_err(|error| relation_read_failed(&error))?;
    Ok(Reply(IsFriendReply {
        in_user_1_friends,
        in_user_2_friends,
    }))
}

/// A user (`get_friend_id`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UserRequest {
    #[serde(rename = "userID")]
    user_id: String,
}

/// `/friend/get_friend_id` reply.
#[derive(Debug, Serialize)]
pub struct FriendIdsReply {
    #[serde(rename = "friendIDs", serialize_with = "null_if_empty")]
    friend_ids: Vec<String>,
}

/// Every friend ID of the user.
pub async fn get_friend_id(
    State(state): State<ApiState>,
    request: Authed<UserRequest>,
) -> Result<Reply<FriendIdsReply>, ApiError> {
    check_user_id("userID", &request.body.user_id)?;
    request
        .caller
        .require_self_or_admin(&request.body.user_id)?;
    let friend_ids = relations::friend_ids(&state.db, &request.body.user_id)
        .await
        .map_err(|error| relation_read_failed(&error))?;
    Ok(Reply(FriendIdsReply { friend_ids }))
}

/// `/friend/get_specified_friends_info` and `/friend/get_specified_blacks` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SpecifiedRequest {
    #[serde(rename = "ownerUserID")]
    owner_user_id: String,
    #[serde(rename = "userIDList")]
    user_ids: Vec<String>,
}

fn checked_specified(request: &Authed<SpecifiedRequest>) -> Result<(), ApiError> {
    check_user_id("ownerUserID", &request.body.owner_user_id)?;
    request
        .caller
        .require_self_or_admin(&request.body.owner_user_id)?;
    check_id_list("userIDList", &request.body.user_ids)
}

/// One entry of `/friend/get_specified_friends_info`.
#[derive(Debug, Serialize)]
pub struct SpecifiedInfo {
    #[serde(rename = "userInfo")]
    user_info: UserInfo,
    #[serde(rename = "friendInfo")]
    friend_info: Option<FriendInfoJson>,
    #[serde(rename = "blackInfo")]
    black_info: Option<BlackInfoJson>,
}

/// `/friend/get_specified_friends_info` reply.
#[derive(Debug, Serialize)]
pub struct SpecifiedInfoReply {
    #[serde(serialize_with = "null_if_empty")]
    infos: Vec<SpecifiedInfo>,
}

/// For each listed registered user: their profile, and the owner's friendship and block of
/// them, where there is one.
pub async fn get_specified_friends_info(
    State(state): State<ApiState>,
    request: Authed<SpecifiedRequest>,
) -> Result<Reply<SpecifiedInfoReply>, ApiError> {
    checked_specified(&request)?;
    let body = &request.body;
    let (found_users, mut friends, mut blacks) = futures::try_join!(
        users::find(&state.db, &body.user_ids),
        relations::friends_among(&state.db, &body.owner_user_id, &body.user_ids),
        relations::blacks_among(&state.db, &body.owner_user_id, &body.user_ids),
    )
    .map_err(|error| relation_read_failed(&error))?;
    let mut infos = Vec::new();
    for user_id in &body.user_ids {
        let Some(user) = found_users.iter().find(|user| user.user_id == *user_id) else {
            continue;
        };
        let friend = friends
            .iter()
            .position(|found| found.friend.friend_user_id == *user_id)
            .map(|index| friends.swap_remove(index));
        let black = blacks
            .iter()
            .position(|found| found.black.black_user_id == *user_id)
            .map(|index| blacks.swap_remove(index));
        infos.push(SpecifiedInfo {
            user_info: UserInfo::from(user.clone()),
            friend_info: friend.map(Into::into),
            black_info: black.map(Into::into),
        });
    }
    Ok(Reply(SpecifiedInfoReply { infos }))
}

// ---- Incremental sync ----

/// `/friend/get_incremental_friends` reply.
#[derive(Debug, Serialize)]
pub struct IncrementalFriendsReply {
    version: i64,
    #[serde(rename = "versionID")]
    version_id: String,
    full: bool,
    #[serde(serialize_with = "null_if_empty")]
    delete: Vec<String>,
    #[serde(serialize_with = "null_if_empty")]
    insert: Vec<FriendInfoJson>,
    #[serde(serialize_with = "null_if_empty")]
    update: Vec<FriendInfoJson>,
    #[serde(rename = "sortVersion")]
    sort_version: i64,
}

/// `/friend/get_incremental_blacks` reply.
#[derive(Debug, Serialize)]
pub struct IncrementalBlacksReply {
    version: i64,
    #[serde(rename = "versionID")]
    version_id: String,
    full: bool,
    #[serde(serialize_with = "null_if_empty")]
    delete: Vec<String>,
    #[serde(serialize_with = "null_if_empty")]
    insert: Vec<BlackInfoJson>,
    #[serde(serialize_with = "null_if_empty")]
    update: Vec<BlackInfoJson>,
}

/// The changes to the user's friends since the client's version, or `full`.
pub async fn get_incremental_friends(
    State(state): State<ApiState>,
    request: Authed<IncrementalRequest>,
) -> Result<Reply<IncrementalFriendsReply>, ApiError> {
    let delta = incremental::delta(&state, &request, Log::Friends).await?;
    let mut reply = IncrementalFriendsReply {
        version: delta.version,
        version_id: delta.version_id,
        full: delta.changes.is_none(),
        delete: Vec::new(),
        insert: Vec::new(),
        update: Vec::new(),
        sort_version: delta.sort_version,
    };
    if let Some(changes) = delta.changes {
        let mut found: BTreeMap<String, FriendInfoJson> =
            relations::friends_among(&state.db, &request.body.user_id, &changes.present())
                .await
                .map_err(|error| relation_read_failed(&error))?
                .into_iter()
                .map(|found| (found.friend.friend_user_id.clone(), found.into()))
                .collect();
        reply.insert = incremental::take(&mut found, &changes.inserted);
        reply.update = incremental::take(&mut found, &changes.updated);
        reply.delete = changes.deleted;
    }
    Ok(Reply(reply))
}

/// The changes to the user's blocks since the client's version, or `full`.
pub async fn get_incremental_blacks(
    State(state): State<ApiState>,
    request: Authed<IncrementalRequest>,
) -> Result<Reply<IncrementalBlacksReply>, ApiError> {
    let delta = incremental::delta(&state, &request, Log::Blacks).await?;
    let mut reply = IncrementalBlacksReply {
        version: delta.version,
        version_id: delta.version_id,
        full: delta.changes.is_none(),
        delete: Vec::new(),
        insert: Vec::new(),
        update: Vec::new(),
    };
    if let Some(changes) = delta.changes {
        let mut found: BTreeMap<String, BlackInfoJson> =
            relations::blacks_among(&state.db, &request.body.user_id, &changes.present())
                .await
                .map_err(|error| relation_read_failed(&error))?
                .into_iter()
                .map(|found| (found.black.black_user_id.clone(), found.into()))
                .collect();
        reply.insert = incremental::take(&mut found, &changes.inserted);
        reply.update = incremental::take(&mut found, &changes.updated);
        reply.delete = changes.deleted;
    }
    Ok(Reply(reply))
}

/// Every friend ID of the user, or `equal` when the client's hash already matches.
pub async fn get_full_friend_user_ids(
    State(state): State<ApiState>,
    request: Authed<FullIdsRequest>,
) -> Result<Reply<incremental::FullIds>, ApiError> {
    let body = &request.body;
    check_user_id("userID", &body.user_id)?;
    request.caller.require_self_or_admin(&body.user_id)?;
    let ids = async {
        relations::friend_ids(&state.db, &body.user_id)
            .await
            .map_err(|error| relation_read_failed(&error))
    };
    let owner = (Log::Friends, body.user_id.as_str());
    Ok(Reply(
        incremental::full_ids(&state, owner, body.id_hash, "userIDs", ids).await?,
    ))
}

// ---- Blocks ----

/// `/friend/add_black` and `/friend/remove_black` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BlackRequest {
    #[serde(rename = "ownerUserID")]
    owner_user_id: String,
    #[serde(rename = "blackUserID")]
    black_user_id: String,
    ex: String,
}

fn checked_black(request: &Authed<BlackRequest>) -> Result<(), ApiError> {
    let body = &request.body;
    check_user_id("ownerUserID", &body.owner_user_id)?;
    check_user_id("blackUserID", &body.black_user_id)?;
    request.caller.require_self_or_admin(&body.owner_user_id)?;
    check_length("ex", &body.ex, MAX_EX_BYTES)?;
    if body.owner_user_id == body.black_user_id {
        return Err(ApiError::args("a user cannot block themself"));
    }
    Ok(())
}

async fn black_changed<E: Event>(
    state: &ApiState,
    request: &Authed<BlackRequest>,
    event: &E,
    content_type: i32,
) -> Result<Done, ApiError> {
    let body = &request.body;
    record(
        state,
        request,
        (&body.owner_user_id, UserKind::Black),
        event,
    )
    .await?;
    let tips = json!({ "fromToUserID": from_to(&body.owner_user_id, &body.black_user_id) });
    let tips = notification(
        content_type,
        &body.owner_user_id,
        &body.black_user_id,
        tips,
        false,
    );
    push(state, &request.operation_id, &tips, &[&body.owner_user_id]).await;
    Ok(Done)
}

/// The owner blocks a user: their single-chat messages to the owner get 1302; 1207 to the
/// owner.
pub async fn add_black(
    State(state): State<ApiState>,
    request: Authed<BlackRequest>,
) -> Result<Done, ApiError> {
    checked_black(&request)?;
    let body = &request.body;
    require_registered(&state, &[&body.black_user_id]).await?;
    let event = BlackAdded {
        owner_user_id: body.owner_user_id.clone(),
        black_user_id: body.black_user_id.clone(),
        operator_user_id: request.caller.user_id.clone(),
        ex: body.ex.clone(),
        create_time: now_millis(),
    };
    black_changed(&state, &request, &event, 1207).await
}

/// The owner unblocks a user; 1208 to the owner.
pub async fn remove_black(
    State(state): State<ApiState>,
    request: Authed<BlackRequest>,
) -> Result<Done, ApiError> {
    checked_black(&request)?;
    let body = &request.body;
    let blocked = relations::blacks_among(
        &state.db,
        &body.owner_user_id,
        std::slice::from_ref(&body.black_user_id),
    )
    .await
    .map_err(|error| relation_read_failed(&error))?;
    if blocked.is_empty() {
        return Err(ApiError::new(
            Code::RecordNotFound,
            format!(
                "{} has not blocked {}",
                body.owner_user_id, body.black_user_id
            ),
        ));
    }
    let event = BlackRemoved {
        owner_user_id: body.owner_user_id.clone(),
        black_user_id: body.black_user_id.clone(),
    };
    black_changed(&state, &request, &event, 1208).await
}

/// `/friend/get_black_list` reply.
#[derive(Debug, Serialize)]
pub struct BlacksReply {
    #[serde(serialize_with = "null_if_empty")]
    blacks: Vec<BlackInfoJson>,
    total: i64,
}

/// A page of the user's blocks.
pub async fn get_black_list(
    State(state): State<ApiState>,
    request: Authed<UserPageRequest>,
) -> Result<Reply<BlacksReply>, ApiError> {
    let (offset, limit) = checked_page(&request)?;
    let (total, found) = relations::blacks_page(&state.db, &request.body.user_id, offset, limit)
        .await
        .map_err(|error| relation_read_failed(&error))?;
    Ok(Reply(BlacksReply {
        blacks: blacks_json(found),
        total,
    }))
}

/// The owner's blocks among the listed users.
pub async fn get_specified_blacks(
    State(state): State<ApiState>,
    request: Authed<SpecifiedRequest>,
) -> Result<Reply<BlacksReply>, ApiError> {
    checked_specified(&request)?;
    let found = relations::blacks_among(
        &state.db,
        &request.body.owner_user_id,
        &request.body.user_ids,
    )
    .await
    .map_err(|error| relation_read_failed(&error))?;
    let blacks = blacks_json(found);
    Ok(Reply(BlacksReply {
        total: i64::try_from(blacks.len()).unwrap_or(i64::MAX),
        blacks,
    }))
}
