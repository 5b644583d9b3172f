//! `/user/*_user_client_config`: configuration entries the client reads at login, app-wide
//! (userID `""`) or per user (overriding the app-wide ones). Each change is an event on
//! `im.user.<userID>.config` (`im.user.=.config` for app-wide), read from `client_configs_v1`.

use std::collections::BTreeMap;

use axum::extract::State;
use jetim_readmodel::settings::{self, ConfigRow};
use jetim_schemas::events::settings::{ClientConfigDeleted, ClientConfigSet};
use jetim_streams::Expect;
use jetim_streams::subject::{Subject, UserKind};
use serde::{Deserialize, Serialize};

use super::args::{Pagination, check_length, check_user_id};
use super::user::{append_failed, read_failed};
use crate::ApiState;
use crate::openim::{ApiError, Authed, Done, Reply, null_if_empty};

/// The longest key, in bytes.
const MAX_KEY_BYTES: usize = 255;
/// The longest value, in bytes.
const MAX_VALUE_BYTES: usize = 4096;
/// The most entries one request may set or delete.
const MAX_ENTRIES: usize = 100;

/// `/user/get_user_client_config` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GetRequest {
    #[serde(rename = "userID")]
    user_id: String,
}

/// `/user/get_user_client_config` reply; Go leaves an empty map out.
#[derive(Debug, Serialize)]
pub struct GetReply {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    configs: BTreeMap<String, String>,
}

/// The user's effective configuration (app-wide entries overridden by theirs).
pub async fn get(
    State(state): State<ApiState>,
    request: Authed<GetRequest>,
) -> Result<Reply<GetReply>, ApiError> {
    check_user_id("userID", &request.body.user_id)?;
    request
        .caller
        .require_self_or_admin(&request.body.user_id)?;
    let configs = settings::effective_config(&state.db, &request.body.user_id)
        .await
        .map_err(|error| read_failed(&error))?;
    Ok(Reply(GetReply { configs }))
}

/// The subject for a user's entries, or the app-wide ones for `""`.
fn subject(user_id: &str) -> Result<Subject, ApiError> {
    if user_id.is_empty() {
        return Ok(Subject::app_config());
    }
    check_user_id("userID", user_id)?;
    Subject::user(user_id, UserKind::Config)
        .map_err(|error| ApiError::args(format!("userID {user_id:?}: {error}")))
}

async fn write<E: jetim_schemas::event::Event>(
    state: &ApiState,
    actor: &str,
    subject: &Subject,
    event: &E,
) -> Result<Done, ApiError> {
    let appended = state
        .log
        .append(subject, actor, Expect::Anything, None, event)
        .await
        .map_err(|error| append_failed(&error))?;
    super::wait_for_projection(
        state,
        settings::NAME,
        settings::VERSION,
        appended.stream_sequence,
    )
    .await;
    Ok(Done)
}

/// `/user/set_user_client_config` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SetRequest {
    #[serde(rename = "userID")]
    user_id: String,
    configs: BTreeMap<String, String>,
}

/// Sets entries for a user, or app-wide for userID `""` (admin only).
pub async fn set(
    State(state): State<ApiState>,
    request: Authed<SetRequest>,
) -> Result<Done, ApiError> {
    request.caller.require_admin()?;
    let body = request.body;
    let subject = subject(&body.user_id)?;
    if body.configs.is_empty() {
        return Err(ApiError::args("configs is empty"));
    }
    if body.configs.len() > MAX_ENTRIES {
        return Err(ApiError::args(format!(
            "configs has {} entries; at most {MAX_ENTRIES} per request",
            body.configs.len()
        )));
    }
    for (key, value) in &body.configs {
        if key.is_empty() {
            return Err(ApiError::args("a config key is empty"));
        }
        check_length("config key", key, MAX_KEY_BYTES)?;
        check_length(&format!("config {key:?}"), value, MAX_VALUE_BYTES)?;
    }
    let event = ClientConfigSet {
        user_id: body.user_id,
        configs: body.configs,
    };
    write(&state, &request.caller.user_id, &subject, &event).await
}

/// `/user/del_user_client_config` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeleteRequest {
    #[serde(rename = "userID")]
    user_id: String,
    keys: Vec<String>,
}

/// Removes entries of a user, or app-wide for userID `""` (admin only).
pub async fn delete(
    State(state): State<ApiState>,
    request: Authed<DeleteRequest>,
) -> Result<Done, ApiError> {
    request.caller.require_admin()?;
    let body = request.body;
    let subject = subject(&body.user_id)?;
    if body.keys.is_empty() {
        return Err(ApiError::args("keys is empty"));
    }
    if body.keys.len() > MAX_ENTRIES {
        return Err(ApiError::args(format!(
            "keys has {} entries; at most {MAX_ENTRIES} per request",
            body.keys.len()
        )));
    }
    if body.keys.iter().any(String::is_empty) {
        return Err(ApiError::args("a key is empty"));
    }
    let event = ClientConfigDeleted {
        user_id: body.user_id,
        keys: body.keys,
    };
    write(&state, &request.caller.user_id, &subject, &event).await
}

/// `/user/page_user_client_config` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PageRequest {
    #[serde(rename = "userID")]
    user_id: String,
    key: String,
    pagination: Option<Pagination>,
}

/// One stored entry as `page_user_client_config` shows it.
#[derive(Debug, Serialize)]
pub struct ConfigEntry {
    key: String,
    #[serde(rename = "userID")]
    user_id: String,
    value: String,
}

/// `/user/page_user_client_config` reply.
#[derive(Debug, Serialize)]
pub struct PageReply {
    total: i64,
    #[serde(serialize_with = "null_if_empty")]
    configs: Vec<ConfigEntry>,
}

/// A page of stored entries, filtered by user and key when given (admin only).
pub async fn page(
    State(state): State<ApiState>,
    request: Authed<PageRequest>,
) -> Result<Reply<PageReply>, ApiError> {
    request.caller.require_admin()?;
    let body = request.body;
    let (offset, limit) = Pagination::window(body.pagination.as_ref())?;
    let non_empty = |value: &str| (!value.is_empty()).then(|| value.to_owned());
    let (total, rows) = settings::config_page(
        &state.db,
        non_empty(&body.user_id).as_deref(),
        non_empty(&body.key).as_deref(),
        offset,
        limit,
    )
    .await
    .map_err(|error| read_failed(&error))?;
    Ok(Reply(PageReply {
        total,
        configs: rows
            .into_iter()
            .map(
                |ConfigRow {
                     user_id,
                     key,
                     value,
                 }| ConfigEntry {
                    key,
                    user_id,
                    value,
                },
            )
            .collect(),
    }))
}
