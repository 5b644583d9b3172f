//! `/user/process_user_command_*`: a user's commands (app-defined typed entries, e.g.
//! favourites), each an event on `im.user.<userID>.command`, read from `user_commands_v1`.

use axum::extract::State;
use jetim_readmodel::settings::{self, CommandRow};
use jetim_schemas::events::settings::{UserCommandDeleted, UserCommandSet};
use jetim_streams::Expect;
use jetim_streams::subject::{Subject, UserKind};
use serde::{Deserialize, Serialize};

use super::args::{MAX_EX_BYTES, check_length, check_user_id};
use super::user::{append_failed, now_millis, read_failed, registered_user};
use crate::ApiState;
use crate::openim::{ApiError, Authed, Code, Done, Reply, null_if_empty};

/// The longest command uuid, in bytes.
const MAX_UUID_BYTES: usize = 64;
/// The longest command value, in bytes.
const MAX_VALUE_BYTES: usize = 4096;

/// The body of every command route.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CommandRequest {
    #[serde(rename = "userID")]
    user_id: String,
    #[serde(rename = "type")]
    command_type: i32,
    uuid: String,
    value: Option<String>,
    ex: Option<String>,
}

/// One command as replies show it.
#[derive(Debug, Serialize)]
pub struct CommandInfo {
    #[serde(rename = "type")]
    command_type: i32,
    #[serde(rename = "createTime")]
    create_time: i64,
    uuid: String,
    value: String,
    ex: String,
}

impl From<CommandRow> for CommandInfo {
    fn from(row: CommandRow) -> Self {
        Self {
            command_type: row.command_type,
            create_time: row.create_time,
            uuid: row.uuid,
            value: row.value,
            ex: row.ex,
        }
    }
}

/// The reply of the two get routes; OpenIM spells the key `CommandResp`.
#[derive(Debug, Serialize)]
pub struct CommandsReply {
    #[serde(rename = "CommandResp", serialize_with = "null_if_empty")]
    command_resp: Vec<CommandInfo>,
}

/// Checks the caller and the user, and for the writing routes the uuid, value and ex.
async fn checked(
    state: &ApiState,
    request: &Authed<CommandRequest>,
    writing: bool,
) -> Result<(), ApiError> {
    let body = &request.body;
    check_user_id("userID", &body.user_id)?;
    request.caller.require_self_or_admin(&body.user_id)?;
    if writing {
        if body.uuid.is_empty() {
            return Err(ApiError::args("uuid is empty"));
        }
        check_length("uuid", &body.uuid, MAX_UUID_BYTES)?;
        check_length(
            "value",
            body.value.as_deref().unwrap_or(""),
            MAX_VALUE_BYTES,
        )?;
        check_length("ex", body.ex.as_deref().unwrap_or(""), MAX_EX_BYTES)?;
    }
    registered_user(state, &body.user_id).await?;
    Ok(())
}

async fn existing(state: &ApiState, body: &CommandRequest) -> Result<Option<CommandRow>, ApiError> {
    settings::command(&state.db, &body.user_id, body.command_type, &body.uuid)
        .await
        .map_err(|error| read_failed(&error))
}

fn not_found(body: &CommandRequest) -> ApiError {
    ApiError::new(
        Code::RecordNotFound,
        format!(
            "{} has no command of type {} with uuid {:?}",
            body.user_id, body.command_type, body.uuid
        ),
    )
}

async fn write<E: jetim_schemas::event::Event>(
    state: &ApiState,
    actor: &str,
    user_id: &str,
    event: &E,
) -> Result<Done, ApiError> {
    let subject = Subject::user(user_id, UserKind::Command)
        .map_err(|error| ApiError::args(format!("userID {user_id:?}: {error}")))?;
    let appended = state
        .log
        .append(&subject, actor, Expect::Anything, None, event)
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

/// Adds a command; 1003 if the user already has one of that type and uuid.
pub async fn add(
    State(state): State<ApiState>,
    request: Authed<CommandRequest>,
) -> Result<Done, ApiError> {
    checked(&state, &request, true).await?;
    let body = &request.body;
    if existing(&state, body).await?.is_some() {
        return Err(ApiError::new(
            Code::DuplicateKey,
            format!(
                "{} already has a command of type {} with uuid {:?}; update it instead",
                body.user_id, body.command_type, body.uuid
            ),
        ));
    }
    let event = UserCommandSet {
        user_id: body.user_id.clone(),
        command_type: body.command_type,
        uuid: body.uuid.clone(),
        value: body.value.clone().unwrap_or_default(),
        ex: body.ex.clone().unwrap_or_default(),
        create_time: now_millis(),
    };
    write(&state, &request.caller.user_id, &body.user_id, &event).await
}

/// Changes a command's value and/or ex; 1004 if there is none.
pub async fn update(
    State(state): State<ApiState>,
    request: Authed<CommandRequest>,
) -> Result<Done, ApiError> {
    checked(&state, &request, true).await?;
    let body = &request.body;
    let current = existing(&state, body)
        .await?
        .ok_or_else(|| not_found(body))?;
    let event = UserCommandSet {
        user_id: body.user_id.clone(),
        command_type: body.command_type,
        uuid: body.uuid.clone(),
        value: body.value.clone().unwrap_or(current.value),
        ex: body.ex.clone().unwrap_or(current.ex),
        create_time: current.create_time,
    };
    write(&state, &request.caller.user_id, &body.user_id, &event).await
}

/// Removes a command; 1004 if there is none.
pub async fn delete(
    State(state): State<ApiState>,
    request: Authed<CommandRequest>,
) -> Result<Done, ApiError> {
    checked(&state, &request, true).await?;
    let body = &request.body;
    existing(&state, body)
        .await?
        .ok_or_else(|| not_found(body))?;
    let event = UserCommandDeleted {
        user_id: body.user_id.clone(),
        command_type: body.command_type,
        uuid: body.uuid.clone(),
    };
    write(&state, &request.caller.user_id, &body.user_id, &event).await
}

async fn list(
    state: &ApiState,
    request: &Authed<CommandRequest>,
    command_type: Option<i32>,
) -> Result<Reply<CommandsReply>, ApiError> {
    checked(state, request, false).await?;
    let rows = settings::commands(&state.db, &request.body.user_id, command_type)
        .await
        .map_err(|error| read_failed(&error))?;
    Ok(Reply(CommandsReply {
        command_resp: rows.into_iter().map(CommandInfo::from).collect(),
    }))
}

/// A user's commands of one type.
pub async fn get(
    State(state): State<ApiState>,
    request: Authed<CommandRequest>,
) -> Result<Reply<CommandsReply>, ApiError> {
    let command_type = request.body.command_type;
    list(&state, &request, Some(command_type)).await
}

/// All of a user's commands.
pub async fn get_all(
    State(state): State<ApiState>,
    request: Authed<CommandRequest>,
) -> Result<Reply<CommandsReply>, ApiError> {
    list(&state, &request, None).await
}
