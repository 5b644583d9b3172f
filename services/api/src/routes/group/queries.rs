//! The `/group/*` routes that read: groups, members, applications, and incremental sync.

use std::collections::BTreeMap;

use axum::extract::State;
use jetim_readmodel::groups::{self, Applicants, MemberFilter, RequestFilter};
use jetim_readmodel::versions::Log;
use serde::{Deserialize, Serialize};

use super::commands::require_member;
use super::{
    GroupInfoJson, GroupRequestJson, MemberJson, check_group_id, find_group, group_read_failed,
    no_such_group, not_a_member, request_json, require_live, require_manager,
};
use crate::ApiState;
use crate::openim::{ApiError, Authed, Caller, Reply, null_if_empty};
use crate::routes::args::{MAX_IDS_PER_REQUEST, Pagination, check_id_list, check_user_id};
use crate::routes::incremental::{self, Changes, FullIdsRequest, IncrementalRequest};

/// How many changed records one batch member sync collects before it stops.
const BATCH_CHANGES: usize = 500;

/// `{groupIDs}` requests.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GroupIdsRequest {
    #[serde(rename = "groupIDs")]
    group_ids: Vec<String>,
}

fn check_group_ids(field: &str, ids: &[String]) -> Result<(), ApiError> {
    if ids.is_empty() {
        return Err(ApiError::args(format!("{field} is empty")));
    }
    if ids.len() > MAX_IDS_PER_REQUEST {
        return Err(ApiError::args(format!(
            "{field} holds more than {MAX_IDS_PER_REQUEST} IDs"
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for id in ids {
        check_group_id(field, id)?;
        if !seen.insert(id) {
            return Err(ApiError::args(format!(
                "{field} names {id:?} more than once"
            )));
        }
    }
    Ok(())
}

/// `/group/get_groups_info` reply.
#[derive(Debug, Serialize)]
pub struct GroupsInfoReply {
    #[serde(rename = "groupInfos", serialize_with = "null_if_empty")]
    group_infos: Vec<GroupInfoJson>,
}

/// The groups that exist among those asked (any caller).
pub async fn get_groups_info(
    State(state): State<ApiState>,
    request: Authed<GroupIdsRequest>,
) -> Result<Reply<GroupsInfoReply>, ApiError> {
    check_group_ids("groupIDs", &request.body.group_ids)?;
    let found = groups::groups(&state.db, &request.body.group_ids)
        .await
        .map_err(|error| group_read_failed(&error))?;
    Ok(Reply(GroupsInfoReply {
        group_infos: found.into_iter().map(GroupInfoJson::from).collect(),
    }))
}

/// `/group/get_group_members_info` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MembersInfoRequest {
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "userIDs")]
    user_ids: Vec<String>,
}

/// `{members}` replies.
#[derive(Debug, Serialize)]
pub struct MembersReply {
    #[serde(serialize_with = "null_if_empty")]
    members: Vec<MemberJson>,
}

/// The members among `userIDs` (members only).
pub async fn get_group_members_info(
    State(state): State<ApiState>,
    request: Authed<MembersInfoRequest>,
) -> Result<Reply<MembersReply>, ApiError> {
    let body = &request.body;
    check_group_id("groupID", &body.group_id)?;
    check_id_list("userIDs", &body.user_ids)?;
    find_group(&state, &body.group_id).await?;
    require_member(&state, &request, &body.group_id).await?;
    let found = groups::members(&state.db, &body.group_id, &body.user_ids)
        .await
        .map_err(|error| group_read_failed(&error))?;
    Ok(Reply(MembersReply {
        members: found.into_iter().map(MemberJson::from).collect(),
    }))
}

/// `/group/get_group_member_list` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MemberListRequest {
    pagination: Option<Pagination>,
    #[serde(rename = "groupID")]
    group_id: String,
    filter: i32,
    keyword: String,
}

/// `{total, members}` replies.
#[derive(Debug, Serialize)]
pub struct MemberPageReply {
    total: i64,
    #[serde(serialize_with = "null_if_empty")]
    members: Vec<MemberJson>,
}

/// A page of the members (owner, admins, members), optionally by keyword (members only).
/// `filter` picks roles as the SDKs' `GroupMemberFilter` numbers them: 0 all, 1 owner,
/// 2 admins, 3 ordinary members, 4 admins and ordinary members, 5 admins and the owner.
/// (Upstream ignores it at HEAD and lists everyone.)
pub async fn get_group_member_list(
    State(state): State<ApiState>,
    request: Authed<MemberListRequest>,
) -> Result<Reply<MemberPageReply>, ApiError> {
    let body = &request.body;
    check_group_id("groupID", &body.group_id)?;
    let (offset, limit) = Pagination::window(body.pagination.as_ref())?;
    let filter = match body.filter {
        0 => MemberFilter::All,
        1 => MemberFilter::Owner,
        2 => MemberFilter::Admins,
        3 => MemberFilter::Ordinary,
        4 => MemberFilter::NotOwner,
        5 => MemberFilter::Managers,
        other => return Err(ApiError::args(format!("filter {other} is not 0 to 5"))),
    };
    find_group(&state, &body.group_id).await?;
    require_member(&state, &request, &body.group_id).await?;
    let (total, found) = groups::members_page(
        &state.db,
        &body.group_id,
        filter,
        &body.keyword,
        offset,
        limit,
    )
    .await
    .map_err(|error| group_read_failed(&error))?;
    Ok(Reply(MemberPageReply {
        total,
        members: found.into_iter().map(MemberJson::from).collect(),
    }))
}

/// `/group/get_group_member_user_id` reply.
#[derive(Debug, Serialize)]
pub struct MemberIdsReply {
    #[serde(rename = "userIDs", serialize_with = "null_if_empty")]
    user_ids: Vec<String>,
}

/// Every member's user ID (members only).
pub async fn get_group_member_user_id(
    State(state): State<ApiState>,
    request: Authed<super::GroupIdRequest>,
) -> Result<Reply<MemberIdsReply>, ApiError> {
    let group_id = &request.body.group_id;
    find_group(&state, group_id).await?;
    require_member(&state, &request, group_id).await?;
    let user_ids = groups::member_ids(&state.db, group_id)
        .await
        .map_err(|error| group_read_failed(&error))?;
    Ok(Reply(MemberIdsReply { user_ids }))
}

/// `/group/get_joined_group_list` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct JoinedListRequest {
    pagination: Option<Pagination>,
    #[serde(rename = "fromUserID")]
    from_user_id: String,
}

/// `{total, groups}` replies.
#[derive(Debug, Serialize)]
pub struct GroupPageReply {
    total: i64,
    #[serde(serialize_with = "null_if_empty")]
    groups: Vec<GroupInfoJson>,
}

/// A page of the groups the user is in.
pub async fn get_joined_group_list(
    State(state): State<ApiState>,
    request: Authed<JoinedListRequest>,
) -> Result<Reply<GroupPageReply>, ApiError> {
    let body = &request.body;
    check_user_id("fromUserID", &body.from_user_id)?;
    request.caller.require_self_or_admin(&body.from_user_id)?;
    let (offset, limit) = Pagination::window(body.pagination.as_ref())?;
    let (total, found) = groups::joined_page(&state.db, &body.from_user_id, offset, limit)
        .await
        .map_err(|error| group_read_failed(&error))?;
    Ok(Reply(GroupPageReply {
        total,
        groups: found.into_iter().map(GroupInfoJson::from).collect(),
    }))
}

/// `/group/get_group_abstract_info` reply entry.
#[derive(Debug, Serialize)]
pub struct AbstractInfo {
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "groupMemberNumber")]
    group_member_number: i64,
    #[serde(rename = "groupMemberListHash")]
    group_member_list_hash: u64,
}

/// `/group/get_group_abstract_info` reply.
#[derive(Debug, Serialize)]
pub struct AbstractInfoReply {
    #[serde(rename = "groupAbstractInfos", serialize_with = "null_if_empty")]
    group_abstract_infos: Vec<AbstractInfo>,
}

/// Each group's member count and a hash of its member IDs (members of each only).
pub async fn get_group_abstract_info(
    State(state): State<ApiState>,
    request: Authed<GroupIdsRequest>,
) -> Result<Reply<AbstractInfoReply>, ApiError> {
    let group_ids = &request.body.group_ids;
    check_group_ids("groupIDs", group_ids)?;
    // Two queries for all the groups: which exist, and their members (which also says
    // whether the caller is one).
    let (found, mut members) = futures::try_join!(
        groups::groups(&state.db, group_ids),
        groups::member_ids_of_groups(&state.db, group_ids),
    )
    .map_err(|error| group_read_failed(&error))?;
    let caller = &request.caller;
    for group_id in group_ids {
        if !found.iter().any(|group| &group.group_id == group_id) {
            return Err(no_such_group(group_id));
        }
        let is_member = members
            .get(group_id)
            .is_some_and(|ids| ids.binary_search(&caller.user_id).is_ok());
        if !caller.is_admin && !is_member {
            return Err(not_a_member(&caller.user_id, group_id));
        }
    }
    Ok(Reply(AbstractInfoReply {
        group_abstract_infos: group_ids
            .iter()
            .map(|group_id| {
                let ids = members.remove(group_id).unwrap_or_default();
                AbstractInfo {
                    group_id: group_id.clone(),
                    group_member_number: i64::try_from(ids.len()).unwrap_or(i64::MAX),
                    group_member_list_hash: incremental::id_hash(&ids),
                }
            })
            .collect(),
    }))
}

/// `/group/get_groups` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SearchGroupsRequest {
    pagination: Option<Pagination>,
    #[serde(rename = "groupName")]
    group_name: String,
    #[serde(rename = "groupID")]
    group_id: String,
}

/// A `/group/get_groups` entry.
#[derive(Debug, Serialize)]
pub struct FoundGroup {
    #[serde(rename = "groupInfo")]
    group_info: GroupInfoJson,
    #[serde(rename = "groupOwnerUserName")]
    group_owner_user_name: String,
    #[serde(rename = "groupOwnerUserID")]
    group_owner_user_id: String,
}

/// `/group/get_groups` reply.
#[derive(Debug, Serialize)]
pub struct SearchGroupsReply {
    total: i64,
    #[serde(serialize_with = "null_if_empty")]
    groups: Vec<FoundGroup>,
}

/// Every group, by name or ID (admin).
pub async fn get_groups(
    State(state): State<ApiState>,
    request: Authed<SearchGroupsRequest>,
) -> Result<Reply<SearchGroupsReply>, ApiError> {
    request.caller.require_admin()?;
    let body = &request.body;
    let (offset, limit) = Pagination::window(body.pagination.as_ref())?;
    let (total, found) =
        groups::groups_page(&state.db, &body.group_name, &body.group_id, offset, limit)
            .await
            .map_err(|error| group_read_failed(&error))?;
    let owners: Vec<String> = found.iter().map(|g| g.owner_user_id.clone()).collect();
    let profiles = jetim_readmodel::users::find(&state.db, &owners)
        .await
        .map_err(|error| crate::routes::user::read_failed(&error))?;
    Ok(Reply(SearchGroupsReply {
        total,
        groups: found
            .into_iter()
            .map(|group| {
                let owner = group.owner_user_id.clone();
                let name = profiles
                    .iter()
                    .find(|user| user.user_id == owner)
                    .map(|user| user.nickname.clone())
                    .unwrap_or_default();
                FoundGroup {
                    group_info: GroupInfoJson::from(group),
                    group_owner_user_name: name,
                    group_owner_user_id: owner,
                }
            })
            .collect(),
    }))
}

// ---- Applications ----

/// `/group/get_recv_group_applicationList` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReceivedApplicationsRequest {
    pagination: Option<Pagination>,
    #[serde(rename = "fromUserID")]
    from_user_id: String,
    #[serde(rename = "groupIDs")]
    group_ids: Vec<String>,
    #[serde(rename = "handleResults")]
    handle_results: Vec<i32>,
}

/// `/group/get_user_req_group_applicationList` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OwnApplicationsRequest {
    pagination: Option<Pagination>,
    #[serde(rename = "userID")]
    user_id: String,
    #[serde(rename = "groupIDs")]
    group_ids: Vec<String>,
    #[serde(rename = "handleResults")]
    handle_results: Vec<i32>,
}

/// `{total, groupRequests}` replies.
#[derive(Debug, Serialize)]
pub struct ApplicationsReply {
    total: i64,
    #[serde(rename = "groupRequests", serialize_with = "null_if_empty")]
    group_requests: Vec<GroupRequestJson>,
}

fn request_filter(group_ids: &[String], handle_results: &[i32]) -> Result<RequestFilter, ApiError> {
    if group_ids.len() > MAX_IDS_PER_REQUEST {
        return Err(ApiError::args(format!(
            "groupIDs holds more than {MAX_IDS_PER_REQUEST} IDs"
        )));
    }
    if let Some(bad) = handle_results.iter().find(|r| !(-1..=1).contains(*r)) {
        return Err(ApiError::args(format!(
            "handleResults holds {bad}, not 0 (pending), 1 (accepted) or -1 (refused)"
        )));
    }
    Ok(RequestFilter {
        group_ids: group_ids.to_vec(),
        handle_results: handle_results.to_vec(),
        since: 0,
    })
}

/// A page of applications (`whose`: a user's own, or those to the groups they manage),
/// newest first. The user is the request's `field`; the caller must be them or an admin.
async fn applications_page(
    state: &ApiState,
    caller: &Caller,
    (field, whose): (&str, Applicants<'_>),
    (pagination, group_ids, handle_results): (Option<&Pagination>, &[String], &[i32]),
) -> Result<Reply<ApplicationsReply>, ApiError> {
    let (Applicants::ManagedBy(user_id) | Applicants::Of(user_id)) = whose;
    check_user_id(field, user_id)?;
    caller.require_self_or_admin(user_id)?;
    let (offset, limit) = Pagination::window(pagination)?;
    let filter = request_filter(group_ids, handle_results)?;
    let (total, found) = groups::requests_page(&state.db, whose, &filter, offset, limit)
        .await
        .map_err(|error| group_read_failed(&error))?;
    Ok(Reply(ApplicationsReply {
        total,
        group_requests: request_json(state, found).await?,
    }))
}

/// Applications to the groups the user owns or administers, newest first.
pub async fn get_recv_group_application_list(
    State(state): State<ApiState>,
    request: Authed<ReceivedApplicationsRequest>,
) -> Result<Reply<ApplicationsReply>, ApiError> {
    let body = &request.body;
    applications_page(
        &state,
        &request.caller,
        ("fromUserID", Applicants::ManagedBy(&body.from_user_id)),
        (
            body.pagination.as_ref(),
            &body.group_ids,
            &body.handle_results,
        ),
    )
    .await
}

/// The user's own applications, newest first.
pub async fn get_user_req_group_application_list(
    State(state): State<ApiState>,
    request: Authed<OwnApplicationsRequest>,
) -> Result<Reply<ApplicationsReply>, ApiError> {
    let body = &request.body;
    applications_page(
        &state,
        &request.caller,
        ("userID", Applicants::Of(&body.user_id)),
        (
            body.pagination.as_ref(),
            &body.group_ids,
            &body.handle_results,
        ),
    )
    .await
}

/// `/group/get_group_users_req_application_list` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GroupApplicationsRequest {
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "userIDs")]
    user_ids: Vec<String>,
}

/// The applications of the named users to the group (owner or admin).
pub async fn get_group_users_req_application_list(
    State(state): State<ApiState>,
    request: Authed<GroupApplicationsRequest>,
) -> Result<Reply<ApplicationsReply>, ApiError> {
    let body = &request.body;
    check_group_id("groupID", &body.group_id)?;
    check_id_list("userIDs", &body.user_ids)?;
    find_group(&state, &body.group_id).await?;
    require_manager(&state, &request, &body.group_id).await?;
    let found = groups::requests_of(&state.db, &body.group_id, &body.user_ids)
        .await
        .map_err(|error| group_read_failed(&error))?;
    Ok(Reply(ApplicationsReply {
        total: i64::try_from(found.len()).unwrap_or(i64::MAX),
        group_requests: request_json(&state, found).await?,
    }))
}

/// `/group/get_specified_user_group_request_info` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SpecifiedApplicationRequest {
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "userID")]
    user_id: String,
}

/// One user's application to the group (the user, or the group's owner or an admin).
pub async fn get_specified_user_group_request_info(
    State(state): State<ApiState>,
    request: Authed<SpecifiedApplicationRequest>,
) -> Result<Reply<ApplicationsReply>, ApiError> {
    let body = &request.body;
    check_group_id("groupID", &body.group_id)?;
    check_user_id("userID", &body.user_id)?;
    find_group(&state, &body.group_id).await?;
    if request.caller.user_id != body.user_id {
        require_manager(&state, &request, &body.group_id).await?;
    }
    let found = groups::requests_of(
        &state.db,
        &body.group_id,
        std::slice::from_ref(&body.user_id),
    )
    .await
    .map_err(|error| group_read_failed(&error))?;
    Ok(Reply(ApplicationsReply {
        total: i64::try_from(found.len()).unwrap_or(i64::MAX),
        group_requests: request_json(&state, found).await?,
    }))
}

/// `/group/get_group_application_unhandled_count` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UnhandledCountRequest {
    #[serde(rename = "userID")]
    user_id: String,
    time: i64,
}

/// `/group/get_group_application_unhandled_count` reply.
#[derive(Debug, Serialize)]
pub struct CountReply {
    count: i64,
}

/// How many pending applications made at or after `time` wait on groups the user manages.
pub async fn get_group_application_unhandled_count(
    State(state): State<ApiState>,
    request: Authed<UnhandledCountRequest>,
) -> Result<Reply<CountReply>, ApiError> {
    let body = &request.body;
    check_user_id("userID", &body.user_id)?;
    request.caller.require_self_or_admin(&body.user_id)?;
    let filter = RequestFilter {
        group_ids: Vec::new(),
        handle_results: vec![0],
        since: body.time.max(0),
    };
    let (count, _) = groups::requests_page(
        &state.db,
        Applicants::ManagedBy(&body.user_id),
        &filter,
        0,
        0,
    )
    .await
    .map_err(|error| group_read_failed(&error))?;
    Ok(Reply(CountReply { count }))
}

// ---- Incremental sync ----

/// `/group/get_incremental_join_groups` reply.
#[derive(Debug, Serialize)]
pub struct IncrementalGroupsReply {
    version: i64,
    #[serde(rename = "versionID")]
    version_id: String,
    full: bool,
    #[serde(serialize_with = "null_if_empty")]
    delete: Vec<String>,
    #[serde(serialize_with = "null_if_empty")]
    insert: Vec<GroupInfoJson>,
    #[serde(serialize_with = "null_if_empty")]
    update: Vec<GroupInfoJson>,
    #[serde(rename = "sortVersion")]
    sort_version: i64,
}

/// The changes to the user's groups since the client's version, or `full`.
pub async fn get_incremental_join_groups(
    State(state): State<ApiState>,
    request: Authed<IncrementalRequest>,
) -> Result<Reply<IncrementalGroupsReply>, ApiError> {
    let delta = incremental::delta(&state, &request, Log::JoinedGroups).await?;
    let mut reply = IncrementalGroupsReply {
        version: delta.version,
        version_id: delta.version_id,
        full: delta.changes.is_none(),
        delete: Vec::new(),
        insert: Vec::new(),
        update: Vec::new(),
        sort_version: delta.sort_version,
    };
    if let Some(changes) = delta.changes {
        let mut found: BTreeMap<String, GroupInfoJson> =
            groups::groups(&state.db, &changes.present())
                .await
                .map_err(|error| group_read_failed(&error))?
                .into_iter()
                .map(|group| (group.group_id.clone(), group.into()))
                .collect();
        reply.insert = incremental::take(&mut found, &changes.inserted);
        reply.update = incremental::take(&mut found, &changes.updated);
        reply.delete = changes.deleted;
    }
    Ok(Reply(reply))
}

/// `/group/get_incremental_group_members` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct IncrementalMembersRequest {
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "versionID")]
    version_id: String,
    version: i64,
}

/// `/group/get_incremental_group_members` reply.
#[derive(Debug, Serialize)]
pub struct IncrementalMembersReply {
    version: i64,
    #[serde(rename = "versionID")]
    version_id: String,
    full: bool,
    #[serde(serialize_with = "null_if_empty")]
    delete: Vec<String>,
    #[serde(serialize_with = "null_if_empty")]
    insert: Vec<MemberJson>,
    #[serde(serialize_with = "null_if_empty")]
    update: Vec<MemberJson>,
    group: Option<GroupInfoJson>,
    #[serde(rename = "sortVersion")]
    sort_version: i64,
}

/// What changed in one group's members since the client's version; how many records it
/// carries.
async fn member_changes(
    state: &ApiState,
    group: jetim_readmodel::groups::GroupRow,
    version_id: &str,
    version: i64,
) -> Result<(IncrementalMembersReply, usize), ApiError> {
    let group_id = group.group_id.clone();
    let delta =
        incremental::delta_of(state, Log::GroupMembers, &group_id, version_id, version).await?;
    let changes: Option<Changes> = delta.changes;
    let show_group = changes.as_ref().is_none_or(|changes| {
        delta.group_changed || !changes.present().is_empty() || !changes.deleted.is_empty()
    });
    let mut reply = IncrementalMembersReply {
        version: delta.version,
        version_id: delta.version_id,
        full: changes.is_none(),
        delete: Vec::new(),
        insert: Vec::new(),
        update: Vec::new(),
        group: show_group.then(|| GroupInfoJson::from(group)),
        sort_version: delta.sort_version,
    };
    let mut records = 0;
    if let Some(changes) = changes {
        let mut found: BTreeMap<String, MemberJson> =
            groups::members(&state.db, &group_id, &changes.present())
                .await
                .map_err(|error| group_read_failed(&error))?
                .into_iter()
                .map(|member| (member.user_id.clone(), member.into()))
                .collect();
        reply.insert = incremental::take(&mut found, &changes.inserted);
        reply.update = incremental::take(&mut found, &changes.updated);
        reply.delete = changes.deleted;
        records = reply.insert.len() + reply.update.len() + reply.delete.len();
    }
    Ok((reply, records))
}

/// The changes to a group's members since the client's version, or `full` (members only).
pub async fn get_incremental_group_members(
    State(state): State<ApiState>,
    request: Authed<IncrementalMembersRequest>,
) -> Result<Reply<IncrementalMembersReply>, ApiError> {
    let body = &request.body;
    let group = find_group(&state, &body.group_id).await?;
    require_live(&group)?;
    require_member(&state, &request, &body.group_id).await?;
    let (reply, _) = member_changes(&state, group, &body.version_id, body.version).await?;
    Ok(Reply(reply))
}

/// One group of `/group/get_incremental_group_members_batch`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MembersVersion {
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "versionID")]
    version_id: String,
    version: i64,
}

/// `/group/get_incremental_group_members_batch` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct IncrementalMembersBatchRequest {
    #[serde(rename = "userID")]
    user_id: String,
    #[serde(rename = "reqList")]
    req_list: Vec<MembersVersion>,
}

/// `/group/get_incremental_group_members_batch` reply.
#[derive(Debug, Serialize)]
pub struct IncrementalMembersBatchReply {
    #[serde(rename = "respList")]
    resp_list: BTreeMap<String, IncrementalMembersReply>,
}

/// Member changes for several of the user's groups at once; dismissed groups and groups the
/// user is not in are left out, and it stops once about 500 changed records are collected
/// (the client asks again for the rest).
pub async fn get_incremental_group_members_batch(
    State(state): State<ApiState>,
    request: Authed<IncrementalMembersBatchRequest>,
) -> Result<Reply<IncrementalMembersBatchReply>, ApiError> {
    let body = &request.body;
    check_user_id("userID", &body.user_id)?;
    request.caller.require_self_or_admin(&body.user_id)?;
    if body.req_list.len() > MAX_IDS_PER_REQUEST {
        return Err(ApiError::args(format!(
            "reqList holds more than {MAX_IDS_PER_REQUEST} groups"
        )));
    }
    for wanted in &body.req_list {
        check_group_id("reqList.groupID", &wanted.group_id)?;
    }
    let joined = groups::joined_ids(&state.db, &body.user_id)
        .await
        .map_err(|error| group_read_failed(&error))?;
    // The asked groups the user is in, read in one query.
    let asked: Vec<String> = body
        .req_list
        .iter()
        .map(|wanted| wanted.group_id.clone())
        .filter(|group_id| joined.binary_search(group_id).is_ok())
        .collect();
    let mut in_groups: BTreeMap<String, jetim_readmodel::groups::GroupRow> =
        groups::groups(&state.db, &asked)
            .await
            .map_err(|error| group_read_failed(&error))?
            .into_iter()
            .map(|group| (group.group_id.clone(), group))
            .collect();
    let mut resp_list = BTreeMap::new();
    let mut records = 0;
    for wanted in &body.req_list {
        if records >= BATCH_CHANGES {
            break;
        }
        // Taken out once: a group asked twice is answered once.
        let Some(group) = in_groups.remove(&wanted.group_id) else {
            continue;
        };
        if group.is_dismissed() {
            continue;
        }
        let (reply, counted) =
            member_changes(&state, group, &wanted.version_id, wanted.version).await?;
        records += counted;
        resp_list.insert(wanted.group_id.clone(), reply);
    }
    Ok(Reply(IncrementalMembersBatchReply { resp_list }))
}

/// `/group/get_full_group_member_user_ids` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FullMemberIdsRequest {
    #[serde(rename = "idHash")]
    id_hash: u64,
    #[serde(rename = "groupID")]
    group_id: String,
}

/// Every member's ID with the member log's version, or `equal` when the hash matches.
pub async fn get_full_group_member_user_ids(
    State(state): State<ApiState>,
    request: Authed<FullMemberIdsRequest>,
) -> Result<Reply<incremental::FullIds>, ApiError> {
    let body = &request.body;
    find_group(&state, &body.group_id).await?;
    require_member(&state, &request, &body.group_id).await?;
    let ids = async {
        groups::member_ids(&state.db, &body.group_id)
            .await
            .map_err(|error| group_read_failed(&error))
    };
    let owner = (Log::GroupMembers, body.group_id.as_str());
    Ok(Reply(
        incremental::full_ids(&state, owner, body.id_hash, "userIDs", ids).await?,
    ))
}

/// Every group ID the user is in with the joined-group log's version, or `equal`.
pub async fn get_full_join_group_ids(
    State(state): State<ApiState>,
    request: Authed<FullIdsRequest>,
) -> Result<Reply<incremental::FullIds>, ApiError> {
    let body = &request.body;
    check_user_id("userID", &body.user_id)?;
    request.caller.require_self_or_admin(&body.user_id)?;
    let ids = async {
        groups::joined_ids(&state.db, &body.user_id)
            .await
            .map_err(|error| group_read_failed(&error))
    };
    let owner = (Log::JoinedGroups, body.user_id.as_str());
    Ok(Reply(
        incremental::full_ids(&state, owner, body.id_hash, "groupIDs", ids).await?,
    ))
}
