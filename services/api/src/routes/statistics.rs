//! `/statistics/user/*` and `/statistics/group/*`: registration, creation and activity
//! figures for admins.

use std::collections::BTreeMap;

use axum::extract::State;
use jetim_readmodel::{groups, messages, users};
use serde::{Deserialize, Serialize};

use super::args::Pagination;
use super::user::{UserInfo, read_failed};
use crate::ApiState;
use crate::openim::{ApiError, Authed, Reply, null_if_empty};

/// `/statistics/user/register` request: a time range in Unix milliseconds.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RangeRequest {
    start: i64,
    end: i64,
}

/// `/statistics/user/register` reply.
#[derive(Debug, Serialize)]
pub struct RegisterReply {
    /// Every registered user.
    total: i64,
    /// Users registered before `start`.
    before: i64,
    /// Registrations per UTC day in the range; left out when empty, as Go does for maps.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    count: BTreeMap<String, i64>,
}

/// Registrations per day in a range (admin only; upstream checks nothing).
pub async fn user_register(
    State(state): State<ApiState>,
    request: Authed<RangeRequest>,
) -> Result<Reply<RegisterReply>, ApiError> {
    request.caller.require_admin()?;
    let RangeRequest { start, end } = request.body;
    if start < 0 || end <= start {
        return Err(ApiError::args(format!(
            "the range start {start} .. end {end} is empty or negative"
        )));
    }
    let (total, before, count) = users::registrations_by_day(&state.db, start, end)
        .await
        .map_err(|error| read_failed(&error))?;
    Ok(Reply(RegisterReply {
        total,
        before,
        count,
    }))
}

/// `/statistics/user/active` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ActiveRequest {
    /// Unix milliseconds, inclusive.
    start: i64,
    /// Unix milliseconds, exclusive.
    end: i64,
    /// Fewest messages first.
    ase: bool,
    /// Count group chats as well as single chats.
    group: bool,
    pagination: Option<Pagination>,
}

/// One active user.
#[derive(Debug, Serialize)]
pub struct ActiveUser {
    user: Option<UserInfo>,
    count: i64,
}

/// `/statistics/user/active` reply.
#[derive(Debug, Serialize)]
pub struct ActiveReply {
    #[serde(rename = "msgCount")]
    msg_count: i64,
    #[serde(rename = "userCount")]
    user_count: i64,
    /// Messages per UTC day; left out when empty, as Go does for maps.
    #[serde(rename = "dateCount", skip_serializing_if = "BTreeMap::is_empty")]
    date_count: BTreeMap<String, i64>,
    #[serde(serialize_with = "null_if_empty")]
    users: Vec<ActiveUser>,
}

/// Who sent messages in a range, busiest first (or last, with `ase`), a page at a time
/// (admin only). Notifications (content types from 1000) are not counted. (Upstream pages by skipping
/// `pageNumber - 1` users rather than whole pages; not copied.)
pub async fn user_active(
    State(state): State<ApiState>,
    request: Authed<ActiveRequest>,
) -> Result<Reply<ActiveReply>, ApiError> {
    request.caller.require_admin()?;
    let body = &request.body;
    if body.start < 0 || body.end <= body.start {
        return Err(ApiError::args(format!(
            "the range start {} .. end {} is empty or negative",
            body.start, body.end
        )));
    }
    let (offset, limit) = Pagination::window(body.pagination.as_ref())?;
    let active = messages::active_senders(
        &state.db,
        (body.start, body.end),
        body.group,
        body.ase,
        (offset, limit),
    )
    .await
    .map_err(|error| ApiError::internal("counting messages", &error))?;
    let ids: Vec<String> = active.ranked.iter().map(|(id, _)| id.clone()).collect();
    let profiles = users::find(&state.db, &ids)
        .await
        .map_err(|error| read_failed(&error))?;
    let users = active
        .ranked
        .into_iter()
        .map(|(user_id, count)| ActiveUser {
            user: profiles
                .iter()
                .find(|profile| profile.user_id == user_id)
                .cloned()
                .map(UserInfo::from),
            count,
        })
        .collect();
    Ok(Reply(ActiveReply {
        msg_count: active.msg_count,
        user_count: active.active_count,
        date_count: active.date_count,
        users,
    }))
}

fn check_range(start: i64, end: i64) -> Result<(), ApiError> {
    if start < 0 || end <= start {
        return Err(ApiError::args(format!(
            "the range start {start} .. end {end} is empty or negative"
        )));
    }
    Ok(())
}

/// Group creations per day in a range (admin only): the same shape as registrations.
pub async fn group_create(
    State(state): State<ApiState>,
    request: Authed<RangeRequest>,
) -> Result<Reply<RegisterReply>, ApiError> {
    request.caller.require_admin()?;
    let RangeRequest { start, end } = request.body;
    check_range(start, end)?;
    let (total, before, count) = groups::creations_by_day(&state.db, start, end)
        .await
        .map_err(|error| ApiError::internal("counting groups", &error))?;
    Ok(Reply(RegisterReply {
        total,
        before,
        count,
    }))
}

/// `/statistics/group/active` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GroupActiveRequest {
    /// Unix milliseconds, inclusive.
    start: i64,
    /// Unix milliseconds, exclusive.
    end: i64,
    /// Fewest messages first.
    ase: bool,
    pagination: Option<Pagination>,
}

/// One active group.
#[derive(Debug, Serialize)]
pub struct ActiveGroup {
    group: Option<super::group::GroupInfoJson>,
    count: i64,
}

/// `/statistics/group/active` reply.
#[derive(Debug, Serialize)]
pub struct GroupActiveReply {
    #[serde(rename = "msgCount")]
    msg_count: i64,
    #[serde(rename = "groupCount")]
    group_count: i64,
    /// Messages per UTC day; left out when empty, as Go does for maps.
    #[serde(rename = "dateCount", skip_serializing_if = "BTreeMap::is_empty")]
    date_count: BTreeMap<String, i64>,
    #[serde(serialize_with = "null_if_empty")]
    groups: Vec<ActiveGroup>,
}

/// Which groups had messages in a range, busiest first (or last, with `ase`), a page at a
/// time (admin only). Notifications are not counted.
pub async fn group_active(
    State(state): State<ApiState>,
    request: Authed<GroupActiveRequest>,
) -> Result<Reply<GroupActiveReply>, ApiError> {
    request.caller.require_admin()?;
    let body = &request.body;
    check_range(body.start, body.end)?;
    let window = Pagination::window(body.pagination.as_ref())?;
    let active = messages::active_groups(&state.db, (body.start, body.end), body.ase, window)
        .await
        .map_err(|error| ApiError::internal("counting messages", &error))?;
    let ids: Vec<String> = active.ranked.iter().map(|(id, _)| id.clone()).collect();
    let found = groups::groups(&state.db, &ids)
        .await
        .map_err(|error| ApiError::internal("reading groups", &error))?;
    let groups = active
        .ranked
        .into_iter()
        .map(|(group_id, count)| ActiveGroup {
            group: found
                .iter()
                .find(|group| group.group_id == group_id)
                .cloned()
                .map(super::group::GroupInfoJson::from),
            count,
        })
        .collect();
    Ok(Reply(GroupActiveReply {
        msg_count: active.msg_count,
        group_count: active.active_count,
        date_count: active.date_count,
        groups,
    }))
}
