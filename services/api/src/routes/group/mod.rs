//! `/group/*`: groups, their members, roles, mutes and join applications.
//!
//! Every change is an event on the group's `im.conv.sg_<groupID>.group` subject; the `groups`
//! projection builds the tables and version logs the queries read. A command is decided on
//! the group as the projection shows it and appended only if nothing reached the subject
//! since (the group row keeps the stream sequence of its last event); if something did, it is
//! decided again. After the projection has applied the change, OpenIM's notification goes out:
//! pushed (never stored) in the group's `n_` conversation to its members, with a stored copy in
//! the `sg_` timeline where upstream's `isSendMsg` makes one; application notifications go
//! between users, in the `n_` conversation of each pair.

mod commands;
mod queries;

pub use commands::*;
pub use queries::*;

use jetim_messaging::notification::Notification;
use jetim_readmodel::groups::{self, GroupRow, MemberRow, RequestRow};
use jetim_readmodel::users;
use jetim_schemas::event::Event;
use jetim_schemas::events::group::role;
use jetim_streams::subject::{ConversationKind, Subject};
use jetim_streams::{Actor, AppendError, Expect};
use serde::Serialize;

use super::args::{MAX_USER_ID_BYTES, check_user_id};
use super::user::{append_failed, now_millis};
use crate::ApiState;
use crate::openim::{ApiError, Authed, Code};

/// How often a command is decided again when the group changed under it.
const MAX_ATTEMPTS: usize = 5;

pub(crate) fn group_read_failed(error: &jetim_readmodel::ReadModelError) -> ApiError {
    ApiError::internal("reading groups", error)
}

/// Checks a group ID as a user ID is checked: non-empty, no `:`, not too long.
pub(crate) fn check_group_id(field: &str, group_id: &str) -> Result<(), ApiError> {
    check_user_id(field, group_id).map_err(|_| {
        ApiError::args(format!(
            "{field} {group_id:?} is not a group ID (1 to {MAX_USER_ID_BYTES} bytes, no ':')"
        ))
    })
}

/// The group, or 1201.
pub(crate) async fn find_group(state: &ApiState, group_id: &str) -> Result<GroupRow, ApiError> {
    check_group_id("groupID", group_id)?;
    groups::group(&state.db, group_id)
        .await
        .map_err(|error| group_read_failed(&error))?
        .ok_or_else(|| no_such_group(group_id))
}

/// 1201 for `group_id`.
pub(crate) fn no_such_group(group_id: &str) -> ApiError {
    ApiError::new(
        Code::GroupIdNotFound,
        format!("group {group_id:?} does not exist"),
    )
}

/// 1204 if the group is dismissed.
pub(crate) fn require_live(group: &GroupRow) -> Result<(), ApiError> {
    if group.is_dismissed() {
        Err(ApiError::new(
            Code::DismissedAlready,
            format!("group {:?} is dismissed", group.group_id),
        ))
    } else {
        Ok(())
    }
}

pub(crate) async fn find_member(
    state: &ApiState,
    group_id: &str,
    user_id: &str,
) -> Result<Option<MemberRow>, ApiError> {
    groups::member(&state.db, group_id, user_id)
        .await
        .map_err(|error| group_read_failed(&error))
}

pub(crate) fn not_a_member(user_id: &str, group_id: &str) -> ApiError {
    ApiError::new(
        Code::NotInGroupYet,
        format!("{user_id} is not a member of group {group_id:?}"),
    )
}

/// The caller's role in the group: an app admin counts as the owner; anyone else must be a
/// member (1203).
pub(crate) async fn caller_role<T>(
    state: &ApiState,
    request: &Authed<T>,
    group_id: &str,
) -> Result<i32, ApiError> {
    if request.caller.is_admin {
        return Ok(role::OWNER);
    }
    find_member(state, group_id, &request.caller.user_id)
        .await?
        .map(|member| member.role_level)
        .ok_or_else(|| not_a_member(&request.caller.user_id, group_id))
}

/// 1002 unless the caller is the group's owner or an admin of it (or an app admin).
pub(crate) async fn require_manager<T>(
    state: &ApiState,
    request: &Authed<T>,
    group_id: &str,
) -> Result<i32, ApiError> {
    let role = caller_role(state, request, group_id)
        .await
        .map_err(|_| not_a_manager(&request.caller.user_id, group_id))?;
    if role >= role::ADMIN {
        Ok(role)
    } else {
        Err(not_a_manager(&request.caller.user_id, group_id))
    }
}

fn not_a_manager(user_id: &str, group_id: &str) -> ApiError {
    ApiError::no_permission(format!(
        "{user_id} is neither the owner nor an admin of group {group_id:?}"
    ))
}

/// 1101 unless every one of `user_ids` is registered.
pub(crate) async fn require_registered(
    state: &ApiState,
    user_ids: &[String],
) -> Result<(), ApiError> {
    let found = users::find(&state.db, user_ids)
        .await
        .map_err(|error| super::user::read_failed(&error))?;
    for user_id in user_ids {
        if !found.iter().any(|user| &user.user_id == user_id) {
            return Err(ApiError::new(
                Code::UserIdNotFound,
                format!("user {user_id:?} is not registered"),
            ));
        }
    }
    Ok(())
}

fn group_subject(group_id: &str) -> Result<Subject, ApiError> {
    Subject::conversation(
        &groups::chat_conversation_id(group_id),
        ConversationKind::Group,
    )
    .map_err(|error| ApiError::args(format!("groupID: {error}")))
}

/// How an append to a group's subject went.
pub(crate) enum Appended {
    /// Stored and applied by the projection.
    Done,
    /// The group changed since it was read: decide again.
    Raced,
}

/// Appends `event` to the group's subject if the group is still as `expect` says, in the
/// request's name, and waits until the groups projection shows it.
pub(crate) async fn append_to_group<T, E: Event>(
    state: &ApiState,
    request: &Authed<T>,
    group_id: &str,
    expect: Expect,
    event: &E,
) -> Result<Appended, ApiError> {
    let appended = state
        .log
        .append(
            &group_subject(group_id)?,
            Actor::with_operation(&request.caller.user_id, &request.operation_id),
            expect,
            None,
            event,
        )
        .await;
    match appended {
        Ok(appended) => {
            super::wait_for_projection(
                state,
                groups::NAME,
                groups::VERSION,
                appended.stream_sequence,
            )
            .await;
            Ok(Appended::Done)
        }
        Err(AppendError::Conflict { .. }) => {
            // The projection may just not have caught up with the subject yet.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            Ok(Appended::Raced)
        }
        Err(error) => Err(append_failed(&error)),
    }
}

pub(crate) fn contended(group_id: &str) -> ApiError {
    ApiError::internal(
        "changing a group",
        &format!("group {group_id:?} kept changing; try again"),
    )
}

/// The last seq of the group's timeline, from the log itself (0 before the first message).
pub(crate) async fn timeline_last_seq(state: &ApiState, group_id: &str) -> Result<u64, ApiError> {
    let subject = Subject::timeline(&groups::chat_conversation_id(group_id))
        .map_err(|error| ApiError::args(format!("groupID: {error}")))?;
    let last = state
        .log
        .last_event(&subject)
        .await
        .map_err(|error| ApiError::internal("reading a group timeline", &error))?;
    Ok(last.and_then(|event| event.seq).unwrap_or(0))
}

// ---- Wire shapes ----

/// OpenIM's `GroupInfo`.
#[derive(Debug, Clone, Serialize)]
pub struct GroupInfoJson {
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "groupName")]
    group_name: String,
    notification: String,
    introduction: String,
    #[serde(rename = "faceURL")]
    face_url: String,
    #[serde(rename = "ownerUserID")]
    owner_user_id: String,
    #[serde(rename = "createTime")]
    create_time: i64,
    #[serde(rename = "memberCount")]
    member_count: i64,
    ex: String,
    status: i32,
    #[serde(rename = "creatorUserID")]
    creator_user_id: String,
    #[serde(rename = "groupType")]
    group_type: i32,
    #[serde(rename = "needVerification")]
    need_verification: i32,
    #[serde(rename = "lookMemberInfo")]
    look_member_info: i32,
    #[serde(rename = "applyMemberFriend")]
    apply_member_friend: i32,
    #[serde(rename = "notificationUpdateTime")]
    notification_update_time: i64,
    #[serde(rename = "notificationUserID")]
    notification_user_id: String,
}

impl From<GroupRow> for GroupInfoJson {
    fn from(group: GroupRow) -> Self {
        Self {
            group_id: group.group_id,
            group_name: group.group_name,
            notification: group.notification,
            introduction: group.introduction,
            face_url: group.face_url,
            owner_user_id: group.owner_user_id,
            create_time: group.create_time,
            member_count: group.member_count,
            ex: group.ex,
            status: group.status,
            creator_user_id: group.creator_user_id,
            group_type: group.group_type,
            need_verification: group.need_verification,
            look_member_info: group.look_member_info,
            apply_member_friend: group.apply_member_friend,
            notification_update_time: group.notification_update_time,
            notification_user_id: group.notification_user_id,
        }
    }
}

/// OpenIM's `GroupMemberFullInfo`.
#[derive(Debug, Clone, Serialize)]
pub struct MemberJson {
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "userID")]
    user_id: String,
    #[serde(rename = "roleLevel")]
    role_level: i32,
    #[serde(rename = "joinTime")]
    join_time: i64,
    nickname: String,
    #[serde(rename = "faceURL")]
    face_url: String,
    #[serde(rename = "appMangerLevel")]
    app_manger_level: i32,
    #[serde(rename = "joinSource")]
    join_source: i32,
    #[serde(rename = "operatorUserID")]
    operator_user_id: String,
    ex: String,
    #[serde(rename = "muteEndTime")]
    mute_end_time: i64,
    #[serde(rename = "inviterUserID")]
    inviter_user_id: String,
}

impl From<MemberRow> for MemberJson {
    fn from(member: MemberRow) -> Self {
        Self {
            group_id: member.group_id,
            user_id: member.user_id,
            role_level: member.role_level,
            join_time: member.join_time,
            nickname: member.nickname,
            face_url: member.face_url,
            app_manger_level: 0,
            join_source: member.join_source,
            operator_user_id: member.operator_user_id,
            ex: member.ex,
            mute_end_time: member.mute_end_time,
            inviter_user_id: member.inviter_user_id,
        }
    }
}

/// OpenIM's `PublicUserInfo`.
#[derive(Debug, Clone, Serialize)]
pub struct PublicUserJson {
    #[serde(rename = "userID")]
    user_id: String,
    nickname: String,
    #[serde(rename = "faceURL")]
    face_url: String,
    ex: String,
}

/// OpenIM's `GroupRequest`.
#[derive(Debug, Clone, Serialize)]
pub struct GroupRequestJson {
    #[serde(rename = "userInfo")]
    user_info: PublicUserJson,
    #[serde(rename = "groupInfo")]
    group_info: Option<GroupInfoJson>,
    #[serde(rename = "handleResult")]
    handle_result: i32,
    #[serde(rename = "reqMsg")]
    req_msg: String,
    #[serde(rename = "handleMsg")]
    handle_msg: String,
    #[serde(rename = "reqTime")]
    req_time: i64,
    #[serde(rename = "handleUserID")]
    handle_user_id: String,
    #[serde(rename = "handleTime")]
    handle_time: i64,
    ex: String,
    #[serde(rename = "joinSource")]
    join_source: i32,
    #[serde(rename = "inviterUserID")]
    inviter_user_id: String,
}

/// Applications as OpenIM shows them: each with the applicant's profile and the group.
pub(crate) async fn request_json(
    state: &ApiState,
    requests: Vec<RequestRow>,
) -> Result<Vec<GroupRequestJson>, ApiError> {
    let mut user_ids: Vec<String> = requests.iter().map(|r| r.user_id.clone()).collect();
    user_ids.sort();
    user_ids.dedup();
    let mut group_ids: Vec<String> = requests.iter().map(|r| r.group_id.clone()).collect();
    group_ids.sort();
    group_ids.dedup();
    let (found_users, found_groups) = futures::try_join!(
        async {
            users::find(&state.db, &user_ids)
                .await
                .map_err(|error| super::user::read_failed(&error))
        },
        async {
            groups::groups(&state.db, &group_ids)
                .await
                .map_err(|error| group_read_failed(&error))
        },
    )?;
    Ok(requests
        .into_iter()
        .map(|request| {
            let user = found_users
                .iter()
                .find(|user| user.user_id == request.user_id);
            GroupRequestJson {
                user_info: PublicUserJson {
                    user_id: request.user_id.clone(),
                    nickname: user.map(|user| user.nickname.clone()).unwrap_or_default(),
                    face_url: user.map(|user| user.face_url.clone()).unwrap_or_default(),
                    ex: user.map(|user| user.ex.clone()).unwrap_or_default(),
                },
                group_info: found_groups
                    .iter()
                    .find(|group| group.group_id == request.group_id)
                    .cloned()
                    .map(GroupInfoJson::from),
                handle_result: request.handle_result,
                req_msg: request.req_msg,
                handle_msg: request.handled_msg,
                req_time: request.req_time,
                handle_user_id: request.handle_user_id,
                handle_time: request.handle_time,
                ex: request.ex,
                join_source: request.join_source,
                inviter_user_id: request.inviter_user_id,
            }
        })
        .collect())
}

// ---- Notifications ----

/// What a group notification carries besides its Tips: the group after the change and the
/// operator as a member (an app admin who is not one shows with role 0 and their profile).
pub(crate) struct Told {
    pub(crate) group: GroupInfoJson,
    pub(crate) op_user: MemberJson,
    pub(crate) version: i64,
    pub(crate) version_id: String,
}

impl Told {
    /// Group Tips: `fields`, with the group, the operator and the member log's version.
    pub(crate) fn tips(&self, fields: serde_json::Value) -> serde_json::Value {
        let mut tips = serde_json::json!({
            "group": self.group,
            "opUser": self.op_user,
            "groupMemberVersion": self.version,
            "groupMemberVersionID": self.version_id,
        });
        if let (Some(all), serde_json::Value::Object(more)) = (tips.as_object_mut(), fields) {
            all.extend(more);
        }
        tips
    }
}

/// Reads what a notification about the group shows, after the change.
pub(crate) async fn told(
    state: &ApiState,
    group_id: &str,
    operator: &str,
) -> Result<Told, ApiError> {
    let group = find_group(state, group_id).await?;
    let op_user = match find_member(state, group_id, operator).await? {
        Some(member) => MemberJson::from(member),
        None => {
            let user = users::find(&state.db, &[operator.to_owned()])
                .await
                .map_err(|error| super::user::read_failed(&error))?
                .into_iter()
                .next();
            MemberJson::from(MemberRow {
                group_id: group_id.to_owned(),
                user_id: operator.to_owned(),
                nickname: user
                    .as_ref()
                    .map(|u| u.nickname.clone())
                    .unwrap_or_default(),
                face_url: user.map(|u| u.face_url).unwrap_or_default(),
                role_level: 0,
                join_time: 0,
                join_source: 0,
                inviter_user_id: String::new(),
                operator_user_id: String::new(),
                mute_end_time: 0,
                ex: String::new(),
            })
        }
    };
    let (version_id, version) = super::incremental::current(
        state,
        jetim_readmodel::versions::Log::GroupMembers,
        group_id,
    )
    .await?;
    Ok(Told {
        group: GroupInfoJson::from(group),
        op_user,
        version,
        version_id,
    })
}

/// Members as JSON, in the order of `user_ids` (those still in the group).
pub(crate) async fn members_json(
    state: &ApiState,
    group_id: &str,
    user_ids: &[String],
) -> Result<Vec<MemberJson>, ApiError> {
    Ok(groups::members(&state.db, group_id, user_ids)
        .await
        .map_err(|error| group_read_failed(&error))?
        .into_iter()
        .map(MemberJson::from)
        .collect())
}

/// A notification to a group: pushed in `n_<groupID>` to the members (and `also`), and, when
/// `store_copy`, stored in the `sg_<groupID>` timeline (the push service delivers that one).
pub(crate) async fn notify_group(
    state: &ApiState,
    operation_id: &str,
    who: (i32, &str, &str),
    tips: serde_json::Value,
    also: &[String],
    store_copy: bool,
) -> Result<(), ApiError> {
    let recipients = group_recipients(state, who.2, also).await?;
    notify_group_to(state, operation_id, who, tips, &recipients, store_copy).await
}

/// The group's current members and `also`, each once.
pub(crate) async fn group_recipients(
    state: &ApiState,
    group_id: &str,
    also: &[String],
) -> Result<Vec<String>, ApiError> {
    let mut recipients = groups::member_ids(&state.db, group_id)
        .await
        .map_err(|error| group_read_failed(&error))?;
    recipients.extend(also.iter().cloned());
    recipients.sort();
    recipients.dedup();
    Ok(recipients)
}

/// As [`notify_group`], to recipients already read (several notifications in a row).
pub(crate) async fn notify_group_to(
    state: &ApiState,
    operation_id: &str,
    (content_type, operator, group_id): (i32, &str, &str),
    tips: serde_json::Value,
    recipients: &[String],
    store_copy: bool,
) -> Result<(), ApiError> {
    let notification = Notification {
        content_type,
        send_id: operator.to_owned(),
        recv_id: group_id.to_owned(),
        group_id: group_id.to_owned(),
        tips,
        offline_push: false,
        now_ms: now_millis(),
    };
    super::push_notification(state, operation_id, &notification, recipients).await;
    if store_copy {
        store(state, operation_id, &notification).await?;
    }
    Ok(())
}

/// Stores the notification's copy in the group's timeline; its seq.
pub(crate) async fn store(
    state: &ApiState,
    operation_id: &str,
    notification: &Notification,
) -> Result<u64, ApiError> {
    let copy = notification.chat_copy();
    super::store_message(state, (&notification.send_id, operation_id), &copy).await
}

/// A notification between users about an application (1503, 1505, 1506): to each receiver,
/// from `operator`, in their pair's `n_` conversation, pushed to the receiver and the
/// operator, with an offline push.
pub(crate) async fn notify_users(
    state: &ApiState,
    operation_id: &str,
    (content_type, operator): (i32, &str),
    receivers: &[String],
    tips: &serde_json::Value,
) {
    for receiver in receivers {
        let notification = Notification {
            content_type,
            send_id: operator.to_owned(),
            recv_id: receiver.clone(),
            group_id: String::new(),
            tips: tips.clone(),
            offline_push: true,
            now_ms: now_millis(),
        };
        super::push_to_both(state, operation_id, &notification).await;
    }
}

/// 1001 if the user is not a member of the group.
pub(crate) fn require_listed(
    members: &[MemberRow],
    user_id: &str,
    group_id: &str,
) -> Result<MemberRow, ApiError> {
    members
        .iter()
        .find(|member| member.user_id == user_id)
        .cloned()
        .ok_or_else(|| not_a_member(user_id, group_id))
}

/// After a user's nickname or avatar changed (at `stream_sequence` of `IM_USER`): once the
/// member logs show it (the `group_profiles` projection), 1516 `GroupMemberInfoSetTips` to
/// the members of each group where the user shows what changed (having set no group
/// nickname or avatar of their own there), as upstream tells groups of a profile change.
pub(crate) async fn member_profile_changed(
    state: &ApiState,
    operation_id: &str,
    update: &jetim_schemas::events::user::UserUpdated,
    stream_sequence: u64,
) -> Result<(), ApiError> {
    let user_id = update.user_id.as_str();
    super::wait_for_projection(
        state,
        groups::PROFILES_NAME,
        groups::PROFILES_VERSION,
        stream_sequence,
    )
    .await;
    let showing = groups::showing_profile(
        &state.db,
        user_id,
        (update.nickname.is_some(), update.face_url.is_some()),
    )
    .await
    .map_err(|error| group_read_failed(&error))?;
    for group_id in showing {
        let told = told(state, &group_id, user_id).await?;
        let tips = told.tips(serde_json::json!({
            "operationTime": now_millis(),
            "changedUser": told.op_user,
            "groupSortVersion": 0,
        }));
        notify_group(
            state,
            operation_id,
            (1516, user_id, &group_id),
            tips,
            &[],
            false,
        )
        .await?;
    }
    Ok(())
}
