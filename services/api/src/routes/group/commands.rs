//! The `/group/*` routes that change a group.

use std::collections::BTreeSet;

use axum::extract::State;
use jetim_readmodel::groups::{self, GroupRow};
use jetim_schemas::events::group::{
    GroupApplicationHandled, GroupApplied, GroupCreated, GroupDismissed, GroupInfoSet, GroupMuted,
    GroupProfile, MemberInfoChange, MemberMuted, MembersInfoSet, MembersJoined, MembersLeft,
    NewMember, OwnerTransferred, join_source, role,
};
use jetim_streams::Expect;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    Appended, GroupInfoJson, MemberJson, append_to_group, caller_role, check_group_id, contended,
    find_group, find_member, group_read_failed, group_recipients, members_json, notify_group,
    notify_group_to, notify_users, request_json, require_listed, require_live, require_manager,
    require_registered, store, timeline_last_seq, told,
};
use crate::ApiState;
use crate::openim::{ApiError, Authed, Code, Done, Reply};
use crate::routes::args::{
    MAX_EX_BYTES, MAX_FACE_URL_BYTES, MAX_IDS_PER_REQUEST, check_id_list, check_length,
    check_user_id,
};
use crate::routes::user::now_millis;

/// The longest group name, in bytes.
const MAX_GROUP_NAME_BYTES: usize = 255;
/// The longest announcement or introduction, in bytes.
const MAX_GROUP_TEXT_BYTES: usize = 4096;
/// The longest application or answer message, in bytes.
const MAX_MESSAGE_BYTES: usize = 1024;
/// Invited members are announced (1509) this many at a time, as upstream batches them.
const INVITES_PER_NOTICE: usize = 50;

fn check_flag(field: &str, value: Option<i32>, max: i32) -> Result<(), ApiError> {
    match value {
        Some(value) if !(0..=max).contains(&value) => Err(ApiError::args(format!(
            "{field} {value} is not between 0 and {max}"
        ))),
        _ => Ok(()),
    }
}

/// The first seq new members may read, when history for new members is off.
async fn history_from(state: &ApiState, group_id: &str) -> Result<Option<u64>, ApiError> {
    if state.messaging.enable_history_for_new_members {
        return Ok(None);
    }
    Ok(Some(timeline_last_seq(state, group_id).await? + 1))
}

// ---- create_group ----

/// The group part of `/group/create_group`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NewGroupInfo {
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "groupName")]
    group_name: String,
    notification: String,
    introduction: String,
    #[serde(rename = "faceURL")]
    face_url: String,
    ex: String,
    #[serde(rename = "groupType")]
    group_type: i32,
    #[serde(rename = "needVerification")]
    need_verification: i32,
    #[serde(rename = "lookMemberInfo")]
    look_member_info: i32,
    #[serde(rename = "applyMemberFriend")]
    apply_member_friend: i32,
}

/// `/group/create_group` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CreateGroupRequest {
    #[serde(rename = "memberUserIDs")]
    member_user_ids: Vec<String>,
    #[serde(rename = "adminUserIDs")]
    admin_user_ids: Vec<String>,
    #[serde(rename = "ownerUserID")]
    owner_user_id: String,
    #[serde(rename = "groupInfo")]
    group_info: Option<NewGroupInfo>,
    #[serde(rename = "sendMessage")]
    send_message: Option<bool>,
}

/// `/group/create_group` reply.
#[derive(Debug, Serialize)]
pub struct CreateGroupReply {
    #[serde(rename = "groupInfo")]
    group_info: GroupInfoJson,
}

fn check_profile(info: &NewGroupInfo) -> Result<(), ApiError> {
    check_length("groupName", &info.group_name, MAX_GROUP_NAME_BYTES)?;
    check_length("notification", &info.notification, MAX_GROUP_TEXT_BYTES)?;
    check_length("introduction", &info.introduction, MAX_GROUP_TEXT_BYTES)?;
    check_length("faceURL", &info.face_url, MAX_FACE_URL_BYTES)?;
    check_length("ex", &info.ex, MAX_EX_BYTES)?;
    check_flag("needVerification", Some(info.need_verification), 2)?;
    check_flag("lookMemberInfo", Some(info.look_member_info), 1)?;
    check_flag("applyMemberFriend", Some(info.apply_member_friend), 1)
}

/// A new group ID: the decimal value of the first 8 hex digits of an MD5, as upstream makes
/// them.
fn new_group_id() -> String {
    use md5::Digest as _;
    let digest = md5::Md5::digest(nuid::next().to_string().as_bytes());
    let mut first = [0u8; 4];
    first.copy_from_slice(&digest[..4]);
    u32::from_be_bytes(first).to_string()
}

/// Creates a group of type 2 with its owner, admins and members (the caller joins too).
pub async fn create_group(
    State(state): State<ApiState>,
    request: Authed<CreateGroupRequest>,
) -> Result<Reply<CreateGroupReply>, ApiError> {
    let body = &request.body;
    let info = body
        .group_info
        .as_ref()
        .ok_or_else(|| ApiError::args("groupInfo is missing"))?;
    check_user_id("ownerUserID", &body.owner_user_id)?;
    request.caller.require_self_or_admin(&body.owner_user_id)?;
    if info.group_type != 2 {
        return Err(ApiError::args(format!(
            "groupType {} is not supported; only 2 (a working group) is",
            info.group_type
        )));
    }
    if !info.group_id.is_empty() {
        check_group_id("groupInfo.groupID", &info.group_id)?;
    }
    check_profile(info)?;
    if body.member_user_ids.len() > MAX_IDS_PER_REQUEST {
        return Err(ApiError::args(format!(
            "memberUserIDs holds more than {MAX_IDS_PER_REQUEST} IDs"
        )));
    }
    let mut members = vec![NewMember {
        user_id: body.owner_user_id.clone(),
        role_level: role::OWNER,
        join_source: join_source::ADMIN,
        inviter_user_id: String::new(),
    }];
    for (field, ids, role_level) in [
        ("adminUserIDs", &body.admin_user_ids, role::ADMIN),
        ("memberUserIDs", &body.member_user_ids, role::MEMBER),
    ] {
        for user_id in ids {
            check_user_id(field, user_id)?;
            members.push(NewMember {
                user_id: user_id.clone(),
                role_level,
                join_source: join_source::INVITATION,
                inviter_user_id: request.caller.user_id.clone(),
            });
        }
    }
    let mut seen = BTreeSet::new();
    for member in &members {
        if !seen.insert(member.user_id.as_str()) {
            return Err(ApiError::args(format!(
                "user {:?} is named more than once",
                member.user_id
            )));
        }
    }
    if !request.caller.is_admin && !seen.contains(request.caller.user_id.as_str()) {
        members.push(NewMember {
            user_id: request.caller.user_id.clone(),
            role_level: role::MEMBER,
            join_source: join_source::INVITATION,
            inviter_user_id: request.caller.user_id.clone(),
        });
    }
    let user_ids: Vec<String> = members.iter().map(|m| m.user_id.clone()).collect();
    require_registered(&state, &user_ids).await?;

    let now = now_millis();
    let profile = GroupProfile {
        name: info.group_name.clone(),
        face_url: info.face_url.clone(),
        notification: info.notification.clone(),
        introduction: info.introduction.clone(),
        ex: info.ex.clone(),
        need_verification: info.need_verification,
        look_member_info: info.look_member_info,
        apply_member_friend: info.apply_member_friend,
    };
    let mut group_id = info.group_id.clone();
    for _ in 0..super::MAX_ATTEMPTS {
        if info.group_id.is_empty() {
            group_id = new_group_id();
        }
        let event = GroupCreated {
            group_id: group_id.clone(),
            creator_user_id: request.caller.user_id.clone(),
            group_type: 2,
            profile: profile.clone(),
            members: members.clone(),
            create_time: now,
        };
        match append_to_group(&state, &request, &group_id, Expect::Empty, &event).await? {
            Appended::Done => {
                let told = told(&state, &group_id, &request.caller.user_id).await?;
                let member_list = members_json(&state, &group_id, &user_ids).await?;
                let owner = member_list.first().cloned();
                let tips = told.tips(json!({
                    "memberList": member_list,
                    "operationTime": now,
                    "groupOwnerUser": owner,
                }));
                let send_message = body.send_message.unwrap_or(true);
                let recipients = group_recipients(&state, &group_id, &[]).await?;
                notify_group_to(
                    &state,
                    &request.operation_id,
                    (1501, &request.caller.user_id, &group_id),
                    tips,
                    &recipients,
                    send_message,
                )
                .await?;
                if !info.notification.is_empty() {
                    let tips = told.tips(json!({}));
                    notify_group_to(
                        &state,
                        &request.operation_id,
                        (1519, &request.caller.user_id, &group_id),
                        tips,
                        &recipients,
                        send_message,
                    )
                    .await?;
                }
                return Ok(Reply(CreateGroupReply {
                    group_info: told.group,
                }));
            }
            Appended::Raced if info.group_id.is_empty() => {}
            Appended::Raced => {
                return Err(ApiError::new(
                    Code::GroupIdExisted,
                    format!("group ID {group_id:?} is taken"),
                ));
            }
        }
    }
    Err(contended(&group_id))
}

// ---- set_group_info, set_group_info_ex ----

/// The fields a group-info change sets; `None` leaves one as it is.
#[derive(Debug, Default)]
struct InfoChange {
    name: Option<String>,
    face_url: Option<String>,
    notification: Option<String>,
    introduction: Option<String>,
    ex: Option<String>,
    need_verification: Option<i32>,
    look_member_info: Option<i32>,
    apply_member_friend: Option<i32>,
}

impl InfoChange {
    fn check(&self) -> Result<(), ApiError> {
        let text = [
            ("groupName", &self.name, MAX_GROUP_NAME_BYTES),
            ("faceURL", &self.face_url, MAX_FACE_URL_BYTES),
            ("notification", &self.notification, MAX_GROUP_TEXT_BYTES),
            ("introduction", &self.introduction, MAX_GROUP_TEXT_BYTES),
            ("ex", &self.ex, MAX_EX_BYTES),
        ];
        for (field, value, max) in text {
            if let Some(value) = value {
                check_length(field, value, max)?;
            }
        }
        check_flag("needVerification", self.need_verification, 2)?;
        check_flag("lookMemberInfo", self.look_member_info, 1)?;
        check_flag("applyMemberFriend", self.apply_member_friend, 1)
    }
}

/// `/group/set_group_info` request: empty strings and zero flags leave a field as it is.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SetGroupInfoRequest {
    #[serde(rename = "groupInfoForSet")]
    group_info_for_set: Option<GroupInfoForSet>,
}

/// The `groupInfoForSet` of `/group/set_group_info`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GroupInfoForSet {
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "groupName")]
    group_name: String,
    notification: String,
    introduction: String,
    #[serde(rename = "faceURL")]
    face_url: String,
    ex: Option<String>,
    #[serde(rename = "needVerification")]
    need_verification: Option<i32>,
    #[serde(rename = "lookMemberInfo")]
    look_member_info: Option<i32>,
    #[serde(rename = "applyMemberFriend")]
    apply_member_friend: Option<i32>,
}

/// `/group/set_group_info_ex` request: every field present is set, even to empty.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SetGroupInfoExRequest {
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "groupName")]
    group_name: Option<String>,
    notification: Option<String>,
    introduction: Option<String>,
    #[serde(rename = "faceURL")]
    face_url: Option<String>,
    ex: Option<String>,
    #[serde(rename = "needVerification")]
    need_verification: Option<i32>,
    #[serde(rename = "lookMemberInfo")]
    look_member_info: Option<i32>,
    #[serde(rename = "applyMemberFriend")]
    apply_member_friend: Option<i32>,
}

fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

/// Changes a group's info (owner or admin): `set_group_info`, where empty means unchanged.
pub async fn set_group_info(
    State(state): State<ApiState>,
    request: Authed<SetGroupInfoRequest>,
) -> Result<Done, ApiError> {
    let set = request
        .body
        .group_info_for_set
        .as_ref()
        .ok_or_else(|| ApiError::args("groupInfoForSet is missing"))?;
    let change = InfoChange {
        name: non_empty(&set.group_name),
        face_url: non_empty(&set.face_url),
        notification: non_empty(&set.notification),
        introduction: non_empty(&set.introduction),
        ex: set.ex.clone(),
        need_verification: set.need_verification,
        look_member_info: set.look_member_info,
        apply_member_friend: set.apply_member_friend,
    };
    change_info(&state, &request, &set.group_id.clone(), change).await
}

/// Changes a group's info (owner or admin): `set_group_info_ex`, where present means set.
pub async fn set_group_info_ex(
    State(state): State<ApiState>,
    request: Authed<SetGroupInfoExRequest>,
) -> Result<Done, ApiError> {
    let body = &request.body;
    let change = InfoChange {
        name: body.group_name.clone(),
        face_url: body.face_url.clone(),
        notification: body.notification.clone(),
        introduction: body.introduction.clone(),
        ex: body.ex.clone(),
        need_verification: body.need_verification,
        look_member_info: body.look_member_info,
        apply_member_friend: body.apply_member_friend,
    };
    change_info(&state, &request, &body.group_id.clone(), change).await
}

async fn change_info<T>(
    state: &ApiState,
    request: &Authed<T>,
    group_id: &str,
    change: InfoChange,
) -> Result<Done, ApiError> {
    check_group_id("groupID", group_id)?;
    change.check()?;
    let operator = &request.caller.user_id;
    for _ in 0..super::MAX_ATTEMPTS {
        let group = find_group(state, group_id).await?;
        require_live(&group)?;
        require_manager(state, request, group_id).await?;
        let event = GroupInfoSet {
            group_id: group_id.to_owned(),
            operator_user_id: operator.clone(),
            name: change.name.clone(),
            face_url: change.face_url.clone(),
            notification: change.notification.clone(),
            introduction: change.introduction.clone(),
            ex: change.ex.clone(),
            need_verification: change.need_verification,
            look_member_info: change.look_member_info,
            apply_member_friend: change.apply_member_friend,
            time: now_millis(),
        };
        let expect = Expect::LastAt(group.stream_sequence);
        if let Appended::Raced = append_to_group(state, request, group_id, expect, &event).await? {
            continue;
        }
        let told = told(state, group_id, operator).await?;
        let tips = told.tips(json!({}));
        let op = &request.operation_id;
        let recipients = group_recipients(state, group_id, &[]).await?;
        if let Some(notification) = &change.notification {
            notify_group_to(
                state,
                op,
                (1519, operator, group_id),
                tips.clone(),
                &recipients,
                !notification.is_empty(),
            )
            .await?;
        }
        if change.name.is_some() {
            notify_group_to(
                state,
                op,
                (1520, operator, group_id),
                tips.clone(),
                &recipients,
                true,
            )
            .await?;
        }
        let others = change.face_url.is_some()
            || change.introduction.is_some()
            || change.ex.is_some()
            || change.need_verification.is_some()
            || change.look_member_info.is_some()
            || change.apply_member_friend.is_some();
        if others {
            let mut tips = tips;
            tips["muteTime"] = json!(0);
            let who = (1502, operator.as_str(), group_id);
            notify_group_to(state, op, who, tips, &recipients, false).await?;
        }
        return Ok(Done);
    }
    Err(contended(group_id))
}

// ---- join_group, group_application_response ----

/// `/group/join_group` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct JoinGroupRequest {
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "reqMessage")]
    req_message: String,
    #[serde(rename = "joinSource")]
    join_source: i32,
    #[serde(rename = "inviterUserID")]
    inviter_user_id: String,
    ex: String,
}

/// Joins a group (policy 2) or applies to join it. The applicant is the caller: upstream
/// takes `inviterUserID` as the applicant without checking it, so anyone could enrol anyone;
/// here only an app admin may name someone else there.
pub async fn join_group(
    State(state): State<ApiState>,
    request: Authed<JoinGroupRequest>,
) -> Result<Done, ApiError> {
    let body = &request.body;
    check_group_id("groupID", &body.group_id)?;
    check_length("reqMessage", &body.req_message, MAX_MESSAGE_BYTES)?;
    check_length("ex", &body.ex, MAX_EX_BYTES)?;
    if !(1..=4).contains(&body.join_source) {
        return Err(ApiError::args(format!(
            "joinSource {} is not 1 (admin), 2 (invitation), 3 (search) or 4 (QR code)",
            body.join_source
        )));
    }
    let applicant = if request.caller.is_admin && !body.inviter_user_id.is_empty() {
        check_user_id("inviterUserID", &body.inviter_user_id)?;
        body.inviter_user_id.clone()
    } else {
        request.caller.user_id.clone()
    };
    require_registered(&state, std::slice::from_ref(&applicant)).await?;
    let group_id = &body.group_id;
    for _ in 0..super::MAX_ATTEMPTS {
        let group = find_group(&state, group_id).await?;
        require_live(&group)?;
        if find_member(&state, group_id, &applicant).await?.is_some() {
            return Err(ApiError::args(format!(
                "{applicant} is already a member of group {group_id:?}"
            )));
        }
        let expect = Expect::LastAt(group.stream_sequence);
        let now = now_millis();
        if group.need_verification == 2 {
            let event = MembersJoined {
                group_id: group_id.clone(),
                operator_user_id: applicant.clone(),
                members: vec![NewMember {
                    user_id: applicant.clone(),
                    role_level: role::MEMBER,
                    join_source: body.join_source,
                    inviter_user_id: String::new(),
                }],
                join_time: now,
                history_from_seq: history_from(&state, group_id).await?,
            };
            if let Appended::Raced =
                append_to_group(&state, &request, group_id, expect, &event).await?
            {
                continue;
            }
            announce_entrant(&state, &request.operation_id, group_id, &applicant, now).await?;
            return Ok(Done);
        }
        let event = GroupApplied {
            group_id: group_id.clone(),
            user_id: applicant.clone(),
            req_msg: body.req_message.clone(),
            join_source: body.join_source,
            inviter_user_id: String::new(),
            ex: body.ex.clone(),
            req_time: now,
        };
        if let Appended::Raced = append_to_group(&state, &request, group_id, expect, &event).await?
        {
            continue;
        }
        announce_applications(&state, &request, group_id, std::slice::from_ref(&applicant)).await?;
        return Ok(Done);
    }
    Err(contended(group_id))
}

/// 1510 `MemberEnterTips` to the group.
async fn announce_entrant(
    state: &ApiState,
    operation_id: &str,
    group_id: &str,
    user_id: &str,
    now: i64,
) -> Result<(), ApiError> {
    let told = told(state, group_id, user_id).await?;
    let tips = json!({
        "group": told.group,
        "entrantUser": told.op_user,
        "operationTime": now,
        "groupMemberVersion": told.version,
        "groupMemberVersionID": told.version_id,
    });
    notify_group(
        state,
        operation_id,
        (1510, user_id, group_id),
        tips,
        &[],
        true,
    )
    .await
}

/// 1503 `JoinGroupApplicationTips` for each new application: to the owner and admins, the
/// applicant and the operator.
async fn announce_applications<T>(
    state: &ApiState,
    request: &Authed<T>,
    group_id: &str,
    applicants: &[String],
) -> Result<(), ApiError> {
    let stored = groups::requests_of(&state.db, group_id, applicants)
        .await
        .map_err(|error| group_read_failed(&error))?;
    let managers = groups::manager_ids(&state.db, group_id)
        .await
        .map_err(|error| group_read_failed(&error))?;
    for application in request_json(state, stored).await? {
        let applicant = serde_json::to_value(&application).unwrap_or_default();
        let user_id = applicant["userInfo"]["userID"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let tips = json!({
            "group": applicant["groupInfo"],
            "applicant": applicant["userInfo"],
            "reqMsg": applicant["reqMsg"],
            "uuid": "",
            "request": applicant,
        });
        let mut receivers = managers.clone();
        receivers.push(user_id);
        receivers.sort();
        receivers.dedup();
        notify_users(
            state,
            &request.operation_id,
            (1503, &request.caller.user_id),
            &receivers,
            &tips,
        )
        .await;
    }
    Ok(())
}

/// `/group/group_application_response` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ApplicationResponseRequest {
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "fromUserID")]
    from_user_id: String,
    #[serde(rename = "handledMsg")]
    handled_msg: String,
    #[serde(rename = "handleResult")]
    handle_result: i32,
}

/// Accepts or refuses a pending application (owner or admin).
pub async fn group_application_response(
    State(state): State<ApiState>,
    request: Authed<ApplicationResponseRequest>,
) -> Result<Done, ApiError> {
    let body = &request.body;
    check_group_id("groupID", &body.group_id)?;
    check_user_id("fromUserID", &body.from_user_id)?;
    check_length("handledMsg", &body.handled_msg, MAX_MESSAGE_BYTES)?;
    if body.handle_result != 1 && body.handle_result != -1 {
        return Err(ApiError::args(format!(
            "handleResult {} is not 1 (accept) or -1 (refuse)",
            body.handle_result
        )));
    }
    let group_id = &body.group_id;
    let handler = &request.caller.user_id;
    for _ in 0..super::MAX_ATTEMPTS {
        let group = find_group(&state, group_id).await?;
        require_live(&group)?;
        require_manager(&state, &request, group_id).await?;
        let application = groups::requests_of(
            &state.db,
            group_id,
            std::slice::from_ref(&body.from_user_id),
        )
        .await
        .map_err(|error| group_read_failed(&error))?
        .into_iter()
        .next()
        .ok_or_else(|| {
            ApiError::new(
                Code::RecordNotFound,
                format!(
                    "{} has not applied to group {group_id:?}",
                    body.from_user_id
                ),
            )
        })?;
        if application.handle_result != 0 {
            return Err(ApiError::new(
                Code::GroupRequestHandled,
                format!(
                    "the application of {} to group {group_id:?} is already handled",
                    body.from_user_id
                ),
            ));
        }
        let already_member = find_member(&state, group_id, &body.from_user_id)
            .await?
            .is_some();
        let joins = body.handle_result == 1 && !already_member;
        let now = now_millis();
        let event = GroupApplicationHandled {
            group_id: group_id.clone(),
            user_id: body.from_user_id.clone(),
            handle_result: body.handle_result,
            handled_msg: body.handled_msg.clone(),
            handler_user_id: handler.clone(),
            handle_time: now,
            member: joins.then(|| NewMember {
                user_id: body.from_user_id.clone(),
                role_level: role::MEMBER,
                join_source: application.join_source,
                inviter_user_id: application.inviter_user_id.clone(),
            }),
            history_from_seq: if joins {
                history_from(&state, group_id).await?
            } else {
                None
            },
        };
        let expect = Expect::LastAt(group.stream_sequence);
        if let Appended::Raced = append_to_group(&state, &request, group_id, expect, &event).await?
        {
            continue;
        }
        let told = told(&state, group_id, handler).await?;
        let stored = groups::requests_of(
            &state.db,
            group_id,
            std::slice::from_ref(&body.from_user_id),
        )
        .await
        .map_err(|error| group_read_failed(&error))?;
        let stored = request_json(&state, stored).await?.into_iter().next();
        let mut receivers = groups::manager_ids(&state.db, group_id)
            .await
            .map_err(|error| group_read_failed(&error))?;
        receivers.push(body.from_user_id.clone());
        receivers.sort();
        receivers.dedup();
        let tips = json!({
            "group": told.group,
            "opUser": told.op_user,
            "handleMsg": body.handled_msg,
            "receiverAs": 0,
            "uuid": "",
            "request": stored,
        });
        let content_type = if body.handle_result == 1 { 1505 } else { 1506 };
        notify_users(
            &state,
            &request.operation_id,
            (content_type, handler),
            &receivers,
            &tips,
        )
        .await;
        if joins {
            if application.inviter_user_id.is_empty() {
                announce_entrant(
                    &state,
                    &request.operation_id,
                    group_id,
                    &body.from_user_id,
                    now,
                )
                .await?;
            } else {
                announce_invited(
                    &state,
                    &request.operation_id,
                    (group_id, handler, &application.inviter_user_id),
                    std::slice::from_ref(&body.from_user_id),
                    now,
                )
                .await?;
            }
        }
        return Ok(Done);
    }
    Err(contended(group_id))
}

// ---- invite_user_to_group, kick_group, quit_group ----

/// `/group/invite_user_to_group` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct InviteRequest {
    #[serde(rename = "groupID")]
    group_id: String,
    reason: String,
    #[serde(rename = "invitedUserIDs")]
    invited_user_ids: Vec<String>,
    #[serde(rename = "sendMessage")]
    send_message: Option<bool>,
}

/// 1509 `MemberInvitedTips` to the group, [`INVITES_PER_NOTICE`] members at a time.
async fn announce_invited(
    state: &ApiState,
    operation_id: &str,
    (group_id, operator, inviter): (&str, &str, &str),
    invited: &[String],
    now: i64,
) -> Result<(), ApiError> {
    let told = told(state, group_id, operator).await?;
    let inviter = if inviter == operator {
        Some(told.op_user.clone())
    } else {
        members_json(state, group_id, &[inviter.to_owned()])
            .await?
            .into_iter()
            .next()
    };
    let recipients = group_recipients(state, group_id, &[]).await?;
    for batch in invited.chunks(INVITES_PER_NOTICE) {
        let tips = told.tips(json!({
            "invitedUserList": members_json(state, group_id, batch).await?,
            "operationTime": now,
            "inviterUser": inviter,
        }));
        notify_group_to(
            state,
            operation_id,
            (1509, operator, group_id),
            tips,
            &recipients,
            true,
        )
        .await?;
    }
    Ok(())
}

/// Invites users (a member's right): they join at once, unless the group needs approval for
/// everything (policy 1) and the inviter is an ordinary member, when each invitation becomes
/// an application.
pub async fn invite_user_to_group(
    State(state): State<ApiState>,
    request: Authed<InviteRequest>,
) -> Result<Done, ApiError> {
    let body = &request.body;
    check_group_id("groupID", &body.group_id)?;
    check_id_list("invitedUserIDs", &body.invited_user_ids)?;
    check_length("reason", &body.reason, MAX_MESSAGE_BYTES)?;
    require_registered(&state, &body.invited_user_ids).await?;
    let group_id = &body.group_id;
    let inviter = &request.caller.user_id;
    for _ in 0..super::MAX_ATTEMPTS {
        let group = find_group(&state, group_id).await?;
        require_live(&group)?;
        let inviter_role = caller_role(&state, &request, group_id).await?;
        let present = groups::members(&state.db, group_id, &body.invited_user_ids)
            .await
            .map_err(|error| group_read_failed(&error))?;
        if let Some(member) = present.first() {
            return Err(ApiError::args(format!(
                "{} is already a member of group {group_id:?}",
                member.user_id
            )));
        }
        let now = now_millis();
        let expect = Expect::LastAt(group.stream_sequence);
        if group.need_verification == 1 && inviter_role < role::ADMIN {
            // Each invitation waits for an owner or admin; they are one command, so they go
            // in as separate events only after the first one (which checks the group) lands.
            let mut expect = expect;
            for (index, user_id) in body.invited_user_ids.iter().enumerate() {
                let event = GroupApplied {
                    group_id: group_id.clone(),
                    user_id: user_id.clone(),
                    req_msg: body.reason.clone(),
                    join_source: join_source::INVITATION,
                    inviter_user_id: inviter.clone(),
                    ex: String::new(),
                    req_time: now,
                };
                match append_to_group(&state, &request, group_id, expect, &event).await? {
                    Appended::Done => expect = Expect::Anything,
                    Appended::Raced if index == 0 => break,
                    Appended::Raced => return Err(contended(group_id)),
                }
            }
            if expect != Expect::Anything {
                continue;
            }
            announce_applications(&state, &request, group_id, &body.invited_user_ids).await?;
            return Ok(Done);
        }
        let event = MembersJoined {
            group_id: group_id.clone(),
            operator_user_id: inviter.clone(),
            members: body
                .invited_user_ids
                .iter()
                .map(|user_id| NewMember {
                    user_id: user_id.clone(),
                    role_level: role::MEMBER,
                    join_source: join_source::INVITATION,
                    inviter_user_id: inviter.clone(),
                })
                .collect(),
            join_time: now,
            history_from_seq: history_from(&state, group_id).await?,
        };
        if let Appended::Raced = append_to_group(&state, &request, group_id, expect, &event).await?
        {
            continue;
        }
        if body.send_message.unwrap_or(true) {
            announce_invited(
                &state,
                &request.operation_id,
                (group_id, inviter, inviter),
                &body.invited_user_ids,
                now,
            )
            .await?;
        }
        return Ok(Done);
    }
    Err(contended(group_id))
}

/// `/group/kick_group` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct KickRequest {
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "kickedUserIDs")]
    kicked_user_ids: Vec<String>,
    reason: String,
    #[serde(rename = "sendMessage")]
    send_message: Option<bool>,
}

/// Removes members: the owner removes anyone but themself, an admin removes ordinary members.
pub async fn kick_group(
    State(state): State<ApiState>,
    request: Authed<KickRequest>,
) -> Result<Done, ApiError> {
    let body = &request.body;
    check_group_id("groupID", &body.group_id)?;
    check_id_list("kickedUserIDs", &body.kicked_user_ids)?;
    check_length("reason", &body.reason, MAX_MESSAGE_BYTES)?;
    let group_id = &body.group_id;
    let operator = &request.caller.user_id;
    if body.kicked_user_ids.contains(operator) {
        return Err(ApiError::args(
            "a member cannot kick themself; quit instead",
        ));
    }
    for _ in 0..super::MAX_ATTEMPTS {
        let group = find_group(&state, group_id).await?;
        require_live(&group)?;
        let operator_role = require_manager(&state, &request, group_id).await?;
        let kicked = groups::members(&state.db, group_id, &body.kicked_user_ids)
            .await
            .map_err(|error| group_read_failed(&error))?;
        for user_id in &body.kicked_user_ids {
            let member = require_listed(&kicked, user_id, group_id)?;
            if member.role_level == role::OWNER {
                return Err(ApiError::no_permission("nobody may kick the group's owner"));
            }
            if member.role_level >= operator_role {
                return Err(ApiError::no_permission(format!(
                    "{operator} may not kick {user_id}, who is an admin too"
                )));
            }
        }
        let kicked_json: Vec<MemberJson> = kicked.into_iter().map(MemberJson::from).collect();
        let before = told(&state, group_id, operator).await?;
        let tips = |told: &super::Told| {
            told.tips(json!({
                "kickedUserList": kicked_json,
                "operationTime": now_millis(),
            }))
        };
        let copy = body.send_message.unwrap_or(true).then(|| tips(&before));
        let left = leave(
            &state,
            &request,
            &group,
            (&body.kicked_user_ids, true),
            copy,
        )
        .await?;
        let Some(told) = left else {
            continue;
        };
        let tips = tips(&told);
        notify_group(
            &state,
            &request.operation_id,
            (1508, operator, group_id),
            tips,
            &body.kicked_user_ids,
            false,
        )
        .await?;
        return Ok(Done);
    }
    Err(contended(group_id))
}

/// Removes `user_ids` from the group, capping what they may read at the timeline's last
/// seq; `None` when the group changed meanwhile. With `copy` (the Tips of the quit or kick
/// as they read before it), the stored copy goes in the timeline first, so the leavers still
/// read it. The caller pushes the notification.
async fn leave<T>(
    state: &ApiState,
    request: &Authed<T>,
    group: &GroupRow,
    (user_ids, kicked): (&[String], bool),
    copy: Option<serde_json::Value>,
) -> Result<Option<super::Told>, ApiError> {
    let group_id = &group.group_id;
    let operator = &request.caller.user_id;
    let max_seq = if let Some(tips) = copy {
        let notification = jetim_messaging::notification::Notification {
            content_type: if kicked { 1508 } else { 1504 },
            send_id: operator.clone(),
            recv_id: group_id.clone(),
            group_id: group_id.clone(),
            tips,
            offline_push: false,
            now_ms: now_millis(),
        };
        store(state, &request.operation_id, &notification).await?
    } else {
        timeline_last_seq(state, group_id).await?
    };
    let event = MembersLeft {
        group_id: group_id.clone(),
        operator_user_id: operator.clone(),
        user_ids: user_ids.to_vec(),
        kicked,
        max_seq,
        time: now_millis(),
    };
    let expect = Expect::LastAt(group.stream_sequence);
    match append_to_group(state, request, group_id, expect, &event).await? {
        Appended::Raced => Ok(None),
        Appended::Done => Ok(Some(told(state, group_id, operator).await?)),
    }
}

/// `/group/quit_group` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct QuitRequest {
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "userID")]
    user_id: String,
}

/// Leaves a group (the owner cannot: transfer or dismiss it first).
pub async fn quit_group(
    State(state): State<ApiState>,
    request: Authed<QuitRequest>,
) -> Result<Done, ApiError> {
    let body = &request.body;
    check_group_id("groupID", &body.group_id)?;
    let user_id = if body.user_id.is_empty() {
        request.caller.user_id.clone()
    } else {
        check_user_id("userID", &body.user_id)?;
        body.user_id.clone()
    };
    request.caller.require_self_or_admin(&user_id)?;
    let group_id = &body.group_id;
    for _ in 0..super::MAX_ATTEMPTS {
        let group = find_group(&state, group_id).await?;
        require_live(&group)?;
        let member = find_member(&state, group_id, &user_id)
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    Code::NotInGroupYet,
                    format!("{user_id} is not a member of group {group_id:?}"),
                )
            })?;
        if member.role_level == role::OWNER {
            return Err(ApiError::no_permission(
                "the owner cannot quit; transfer the group or dismiss it",
            ));
        }
        let quitter = MemberJson::from(member);
        let users = [user_id.clone()];
        let before = told(&state, group_id, &user_id).await?;
        let tips = |told: &super::Told| {
            json!({
                "group": told.group,
                "quitUser": quitter,
                "operationTime": now_millis(),
                "groupMemberVersion": told.version,
                "groupMemberVersionID": told.version_id,
            })
        };
        let copy = Some(tips(&before));
        let Some(told) = leave(&state, &request, &group, (&users, false), copy).await? else {
            continue;
        };
        let tips = tips(&told);
        notify_group(
            &state,
            &request.operation_id,
            (1504, &user_id, group_id),
            tips,
            &users,
            false,
        )
        .await?;
        return Ok(Done);
    }
    Err(contended(group_id))
}

// ---- transfer_group, dismiss_group ----

/// `/group/transfer_group` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TransferRequest {
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "oldOwnerUserID")]
    old_owner_user_id: String,
    #[serde(rename = "newOwnerUserID")]
    new_owner_user_id: String,
}

/// Hands the group to another member (the owner, or an app admin).
pub async fn transfer_group(
    State(state): State<ApiState>,
    request: Authed<TransferRequest>,
) -> Result<Done, ApiError> {
    let body = &request.body;
    check_group_id("groupID", &body.group_id)?;
    check_user_id("oldOwnerUserID", &body.old_owner_user_id)?;
    check_user_id("newOwnerUserID", &body.new_owner_user_id)?;
    if body.old_owner_user_id == body.new_owner_user_id {
        return Err(ApiError::args("the new owner is the old one"));
    }
    let group_id = &body.group_id;
    let operator = &request.caller.user_id;
    for _ in 0..super::MAX_ATTEMPTS {
        let group = find_group(&state, group_id).await?;
        require_live(&group)?;
        if group.owner_user_id != body.old_owner_user_id {
            return Err(ApiError::args(format!(
                "{} does not own group {group_id:?}",
                body.old_owner_user_id
            )));
        }
        if !request.caller.is_admin && *operator != group.owner_user_id {
            return Err(ApiError::no_permission(
                "only the owner may hand the group over",
            ));
        }
        let new_owner = find_member(&state, group_id, &body.new_owner_user_id)
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    Code::NotInGroupYet,
                    format!(
                        "{} is not a member of group {group_id:?}",
                        body.new_owner_user_id
                    ),
                )
            })?;
        let event = OwnerTransferred {
            group_id: group_id.clone(),
            operator_user_id: operator.clone(),
            old_owner_user_id: body.old_owner_user_id.clone(),
            new_owner_user_id: body.new_owner_user_id.clone(),
            old_owner_role_level: new_owner.role_level,
            time: now_millis(),
        };
        let expect = Expect::LastAt(group.stream_sequence);
        if let Appended::Raced = append_to_group(&state, &request, group_id, expect, &event).await?
        {
            continue;
        }
        let told = told(&state, group_id, operator).await?;
        let both = members_json(
            &state,
            group_id,
            &[
                body.new_owner_user_id.clone(),
                body.old_owner_user_id.clone(),
            ],
        )
        .await?;
        let tips = told.tips(json!({
            "newGroupOwner": both.first(),
            "oldGroupOwner": body.old_owner_user_id,
            "operationTime": now_millis(),
            "oldGroupOwnerInfo": both.get(1),
        }));
        notify_group(
            &state,
            &request.operation_id,
            (1507, operator, group_id),
            tips,
            &[],
            true,
        )
        .await?;
        return Ok(Done);
    }
    Err(contended(group_id))
}

/// `/group/dismiss_group` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DismissRequest {
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "deleteMember")]
    delete_member: bool,
    #[serde(rename = "sendMessage")]
    send_message: Option<bool>,
}

/// Dismisses the group (its owner, or an app admin): every member leaves, and nobody sends
/// to it again. Without `deleteMember` the members are told (1511) first.
pub async fn dismiss_group(
    State(state): State<ApiState>,
    request: Authed<DismissRequest>,
) -> Result<Done, ApiError> {
    let body = &request.body;
    check_group_id("groupID", &body.group_id)?;
    let group_id = &body.group_id;
    let operator = &request.caller.user_id;
    for _ in 0..super::MAX_ATTEMPTS {
        let group = find_group(&state, group_id).await?;
        require_live(&group)?;
        if !request.caller.is_admin && *operator != group.owner_user_id {
            return Err(ApiError::no_permission(
                "only the owner may dismiss the group",
            ));
        }
        let told_before = told(&state, group_id, operator).await?;
        let members = groups::member_ids(&state.db, group_id)
            .await
            .map_err(|error| group_read_failed(&error))?;
        let tell = !body.delete_member;
        let tips = json!({
            "group": told_before.group,
            "opUser": told_before.op_user,
            "operationTime": now_millis(),
        });
        let max_seq = if tell && body.send_message.unwrap_or(true) {
            let notification = jetim_messaging::notification::Notification {
                content_type: 1511,
                send_id: operator.clone(),
                recv_id: group_id.clone(),
                group_id: group_id.clone(),
                tips: tips.clone(),
                offline_push: false,
                now_ms: now_millis(),
            };
            store(&state, &request.operation_id, &notification).await?
        } else {
            timeline_last_seq(&state, group_id).await?
        };
        let event = GroupDismissed {
            group_id: group_id.clone(),
            operator_user_id: operator.clone(),
            max_seq,
            time: now_millis(),
        };
        let expect = Expect::LastAt(group.stream_sequence);
        if let Appended::Raced = append_to_group(&state, &request, group_id, expect, &event).await?
        {
            continue;
        }
        if tell {
            notify_group(
                &state,
                &request.operation_id,
                (1511, operator, group_id),
                tips,
                &members,
                false,
            )
            .await?;
        }
        return Ok(Done);
    }
    Err(contended(group_id))
}

// ---- mutes ----

/// `/group/mute_group_member` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MuteMemberRequest {
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "userID")]
    user_id: String,
    #[serde(rename = "mutedSeconds")]
    muted_seconds: i64,
}

/// `/group/cancel_mute_group_member` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CancelMuteMemberRequest {
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "userID")]
    user_id: String,
}

/// Mutes a member for `mutedSeconds`: the owner mutes admins and members, an admin mutes
/// members; nobody mutes the owner.
pub async fn mute_group_member(
    State(state): State<ApiState>,
    request: Authed<MuteMemberRequest>,
) -> Result<Done, ApiError> {
    let body = &request.body;
    if body.muted_seconds <= 0 || body.muted_seconds > i64::from(u32::MAX) {
        return Err(ApiError::args(format!(
            "mutedSeconds {} is not a positive number of seconds",
            body.muted_seconds
        )));
    }
    let (group_id, user_id) = (body.group_id.clone(), body.user_id.clone());
    mute_member(
        &state,
        &request,
        &group_id,
        &user_id,
        Some(body.muted_seconds),
    )
    .await
}

/// Lifts a member's mute, with the same hierarchy as muting.
pub async fn cancel_mute_group_member(
    State(state): State<ApiState>,
    request: Authed<CancelMuteMemberRequest>,
) -> Result<Done, ApiError> {
    let (group_id, user_id) = (request.body.group_id.clone(), request.body.user_id.clone());
    mute_member(&state, &request, &group_id, &user_id, None).await
}

async fn mute_member<T>(
    state: &ApiState,
    request: &Authed<T>,
    group_id: &str,
    user_id: &str,
    seconds: Option<i64>,
) -> Result<Done, ApiError> {
    check_group_id("groupID", group_id)?;
    check_user_id("userID", user_id)?;
    let operator = &request.caller.user_id;
    for _ in 0..super::MAX_ATTEMPTS {
        let group = find_group(state, group_id).await?;
        require_live(&group)?;
        let operator_role = require_manager(state, request, group_id).await?;
        let target = find_member(state, group_id, user_id)
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    Code::NotInGroupYet,
                    format!("{user_id} is not a member of group {group_id:?}"),
                )
            })?;
        if target.role_level == role::OWNER {
            return Err(ApiError::no_permission("nobody may mute the group's owner"));
        }
        if target.role_level >= operator_role && !request.caller.is_admin {
            return Err(ApiError::no_permission(format!(
                "{operator} may not mute {user_id}, who is an admin too"
            )));
        }
        let now = now_millis();
        let event = MemberMuted {
            group_id: group_id.to_owned(),
            operator_user_id: operator.clone(),
            user_id: user_id.to_owned(),
            mute_end_time: seconds.map_or(0, |seconds| now + seconds * 1000),
            time: now,
        };
        let expect = Expect::LastAt(group.stream_sequence);
        if let Appended::Raced = append_to_group(state, request, group_id, expect, &event).await? {
            continue;
        }
        let told = told(state, group_id, operator).await?;
        let muted = members_json(state, group_id, &[user_id.to_owned()])
            .await?
            .into_iter()
            .next();
        let mut tips = told.tips(json!({
            "operationTime": now,
            "mutedUser": muted,
        }));
        let content_type = if let Some(seconds) = seconds {
            tips["mutedSeconds"] = json!(seconds);
            1512
        } else {
            1513
        };
        notify_group(
            state,
            &request.operation_id,
            (content_type, operator, group_id),
            tips,
            &[],
            true,
        )
        .await?;
        return Ok(Done);
    }
    Err(contended(group_id))
}

/// `/group/mute_group` and `/group/cancel_mute_group` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GroupIdRequest {
    #[serde(rename = "groupID")]
    pub(crate) group_id: String,
}

/// Mutes the whole group: only its owner and admins may send (owner or admin).
pub async fn mute_group(
    State(state): State<ApiState>,
    request: Authed<GroupIdRequest>,
) -> Result<Done, ApiError> {
    set_group_muted(&state, &request, true).await
}

/// Lets every member send again (owner or admin).
pub async fn cancel_mute_group(
    State(state): State<ApiState>,
    request: Authed<GroupIdRequest>,
) -> Result<Done, ApiError> {
    set_group_muted(&state, &request, false).await
}

async fn set_group_muted(
    state: &ApiState,
    request: &Authed<GroupIdRequest>,
    muted: bool,
) -> Result<Done, ApiError> {
    let group_id = &request.body.group_id;
    check_group_id("groupID", group_id)?;
    let operator = &request.caller.user_id;
    for _ in 0..super::MAX_ATTEMPTS {
        let group = find_group(state, group_id).await?;
        require_live(&group)?;
        require_manager(state, request, group_id).await?;
        let now = now_millis();
        let event = GroupMuted {
            group_id: group_id.clone(),
            operator_user_id: operator.clone(),
            muted,
            time: now,
        };
        let expect = Expect::LastAt(group.stream_sequence);
        if let Appended::Raced = append_to_group(state, request, group_id, expect, &event).await? {
            continue;
        }
        let told = told(state, group_id, operator).await?;
        let tips = told.tips(json!({
            "operationTime": now,
        }));
        let content_type = if muted { 1514 } else { 1515 };
        notify_group(
            state,
            &request.operation_id,
            (content_type, operator, group_id),
            tips,
            &[],
            true,
        )
        .await?;
        return Ok(Done);
    }
    Err(contended(group_id))
}

// ---- set_group_member_info ----

/// One entry of `/group/set_group_member_info`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MemberInfoSet {
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "userID")]
    user_id: String,
    nickname: Option<String>,
    #[serde(rename = "faceURL")]
    face_url: Option<String>,
    #[serde(rename = "roleLevel")]
    role_level: Option<i32>,
    ex: Option<String>,
}

/// `/group/set_group_member_info` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SetMemberInfoRequest {
    members: Vec<MemberInfoSet>,
}

/// Changes members' group nickname, avatar, role or extension data. The owner edits anyone
/// but cannot change their own role; an admin edits themself and ordinary members (and may
/// make them admins); an ordinary member edits only their own nickname, avatar and ex.
/// Roles are 60 or 20 (100 is only given by a transfer). All entries are of one group.
pub async fn set_group_member_info(
    State(state): State<ApiState>,
    request: Authed<SetMemberInfoRequest>,
) -> Result<Done, ApiError> {
    let entries = &request.body.members;
    let Some(first) = entries.first() else {
        return Err(ApiError::args("members is empty"));
    };
    if entries.len() > MAX_IDS_PER_REQUEST {
        return Err(ApiError::args(format!(
            "members holds more than {MAX_IDS_PER_REQUEST} entries"
        )));
    }
    let group_id = first.group_id.clone();
    check_group_id("members.groupID", &group_id)?;
    let mut seen = BTreeSet::new();
    for entry in entries {
        if entry.group_id != group_id {
            return Err(ApiError::args(
                "every entry of members must be of one group",
            ));
        }
        check_user_id("members.userID", &entry.user_id)?;
        if !seen.insert(entry.user_id.as_str()) {
            return Err(ApiError::args(format!(
                "user {:?} is named more than once",
                entry.user_id
            )));
        }
        if let Some(nickname) = &entry.nickname {
            check_length("nickname", nickname, MAX_GROUP_NAME_BYTES)?;
        }
        if let Some(face_url) = &entry.face_url {
            check_length("faceURL", face_url, MAX_FACE_URL_BYTES)?;
        }
        if let Some(ex) = &entry.ex {
            check_length("ex", ex, MAX_EX_BYTES)?;
        }
        match entry.role_level {
            None | Some(role::ADMIN | role::MEMBER) => {}
            Some(role::OWNER) => {
                return Err(ApiError::no_permission(
                    "roleLevel 100 is given only by transferring the group",
                ));
            }
            Some(other) => {
                return Err(ApiError::args(format!(
                    "roleLevel {other} is not 60 (admin) or 20 (member)"
                )));
            }
        }
    }
    let operator = &request.caller.user_id;
    let user_ids: Vec<String> = entries.iter().map(|e| e.user_id.clone()).collect();
    for _ in 0..super::MAX_ATTEMPTS {
        let group = find_group(&state, &group_id).await?;
        require_live(&group)?;
        let operator_role = caller_role(&state, &request, &group_id).await?;
        let targets = groups::members(&state.db, &group_id, &user_ids)
            .await
            .map_err(|error| group_read_failed(&error))?;
        let mut changes = Vec::with_capacity(entries.len());
        let mut role_changes = Vec::new();
        for entry in entries {
            let target = require_listed(&targets, &entry.user_id, &group_id)?;
            let is_self = entry.user_id == *operator;
            let role_change = entry.role_level.filter(|level| *level != target.role_level);
            let allowed = if request.caller.is_admin || operator_role == role::OWNER {
                !(is_self && role_change.is_some())
            } else if operator_role == role::ADMIN {
                (is_self && role_change.is_none()) || target.role_level == role::MEMBER
            } else {
                is_self && role_change.is_none()
            };
            if !allowed || (role_change.is_some() && target.role_level == role::OWNER) {
                return Err(ApiError::no_permission(format!(
                    "{operator} may not change {}'s info{}",
                    entry.user_id,
                    if role_change.is_some() {
                        " or role"
                    } else {
                        ""
                    }
                )));
            }
            if let Some(level) = role_change {
                role_changes.push((entry.user_id.clone(), level));
            }
            changes.push(MemberInfoChange {
                user_id: entry.user_id.clone(),
                nickname: entry.nickname.clone(),
                face_url: entry.face_url.clone(),
                role_level: role_change,
                ex: entry.ex.clone(),
            });
        }
        let now = now_millis();
        let event = MembersInfoSet {
            group_id: group_id.clone(),
            operator_user_id: operator.clone(),
            changes,
            time: now,
        };
        let expect = Expect::LastAt(group.stream_sequence);
        if let Appended::Raced =
            append_to_group(&state, &request, &group_id, expect, &event).await?
        {
            continue;
        }
        let told = told(&state, &group_id, operator).await?;
        let changed = members_json(&state, &group_id, &user_ids).await?;
        let recipients = group_recipients(&state, &group_id, &[]).await?;
        for (entry, member) in entries.iter().zip(&changed) {
            let content_type = match role_changes.iter().find(|(user, _)| *user == entry.user_id) {
                Some((_, role::ADMIN)) => 1517,
                Some(_) => 1518,
                None => 1516,
            };
            let tips = told.tips(json!({
                "operationTime": now,
                "changedUser": member,
                "groupSortVersion": 0,
            }));
            notify_group_to(
                &state,
                &request.operation_id,
                (content_type, operator, &group_id),
                tips,
                &recipients,
                false,
            )
            .await?;
        }
        return Ok(Done);
    }
    Err(contended(&group_id))
}

/// Used by the queries: the caller is a member (or an app admin), else 1203.
pub(crate) async fn require_member<T>(
    state: &ApiState,
    request: &Authed<T>,
    group_id: &str,
) -> Result<(), ApiError> {
    caller_role(state, request, group_id).await.map(|_| ())
}
