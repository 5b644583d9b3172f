//! `/statistics/user/*`: registration figures for admins.

use std::collections::BTreeMap;

use axum::extract::State;
use jetim_readmodel::users;
use serde::{Deserialize, Serialize};

use super::user::read_failed;
use crate::ApiState;
use crate::openim::{ApiError, Authed, Reply};

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
