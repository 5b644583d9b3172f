//! Online status: who is online on which platforms, as the gateways report it in the
//! `IM_PRESENCE` bucket, and the users' own status subscriptions.
//!
//! Live status pushes go over the WebSocket (2005); these routes answer from the same
//! presence, and keep a user's REST subscription list in the `IM_STATUS_SUBSCRIPTIONS`
//! bucket.

use std::collections::BTreeSet;

use axum::extract::State;
use jetim_common::auth::Platform;
use jetim_streams::kv::{self, JsonBucket, KvError};
use serde::{Deserialize, Serialize};

use super::args::{check_id_list, check_user_id};
use crate::ApiState;
use crate::openim::{ApiError, Authed, Reply, null_if_empty};

/// The most users one user may follow through `/user/subscribe_users_status`.
pub const MAX_SUBSCRIPTIONS: usize = 3000;

/// A status: 1 online, 0 offline.
fn status_of(platforms: &[i32]) -> i32 {
    i32::from(!platforms.is_empty())
}

fn presence_failed(error: &KvError) -> ApiError {
    ApiError::internal("reading presence", error)
}

/// `/user/get_users_online_status` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UserIdsRequest {
    #[serde(rename = "userIDs")]
    user_ids: Vec<String>,
}

/// One platform a user is online on.
#[derive(Debug, Serialize)]
pub struct PlatformStatus {
    #[serde(rename = "platformID")]
    platform_id: i32,
    platform: &'static str,
    status: i32,
    /// Connections are not named outside their gateway: empty.
    #[serde(rename = "connID")]
    conn_id: String,
    #[serde(rename = "isBackground")]
    is_background: bool,
    /// Never a live token (OpenIM returns them; jetim does not): empty.
    token: String,
}

/// One user's online status, with a line per platform.
#[derive(Debug, Serialize)]
pub struct OnlineStatus {
    #[serde(rename = "userID")]
    user_id: String,
    status: i32,
    #[serde(rename = "detailPlatformStatus", serialize_with = "null_if_empty")]
    detail_platform_status: Vec<PlatformStatus>,
}

/// Every asked user's status, in the order asked (admin only).
pub async fn get_users_online_status(
    State(state): State<ApiState>,
    request: Authed<UserIdsRequest>,
) -> Result<Reply<Vec<OnlineStatus>>, ApiError> {
    request.caller.require_admin()?;
    let ids = request.body.user_ids;
    check_id_list("userIDs", &ids)?;
    let online = state
        .presence
        .online_many(&ids)
        .await
        .map_err(|error| presence_failed(&error))?;
    let statuses = ids
        .into_iter()
        .zip(online)
        .map(|(user_id, platforms)| OnlineStatus {
            status: status_of(&platforms),
            detail_platform_status: platforms
                .into_iter()
                .map(|platform_id| PlatformStatus {
                    platform_id,
                    platform: Platform::from_id(platform_id).map_or("", Platform::name),
                    status: 1,
                    conn_id: String::new(),
                    is_background: false,
                    token: String::new(),
                })
                .collect(),
            user_id,
        })
        .collect();
    Ok(Reply(statuses))
}

/// One platform's tokens in `/user/get_users_online_token_detail`.
#[derive(Debug, Serialize)]
pub struct PlatformTokens {
    #[serde(rename = "platformID")]
    platform_id: i32,
    total: i32,
    /// The fingerprint of each connection's token (jetim keeps no token itself; the same
    /// fingerprints key the `IM_TOKENS` bucket's entries).
    #[serde(serialize_with = "null_if_empty")]
    token: Vec<String>,
}

/// One online user in `/user/get_users_online_token_detail`.
#[derive(Debug, Serialize)]
pub struct TokenDetail {
    #[serde(rename = "userID")]
    user_id: String,
    status: i32,
    #[serde(rename = "singlePlatformToken", serialize_with = "null_if_empty")]
    single_platform_token: Vec<PlatformTokens>,
}

/// For each asked user who is online, their connections' tokens per platform (admin only).
/// Offline users are left out, as upstream leaves them out.
pub async fn get_users_online_token_detail(
    State(state): State<ApiState>,
    request: Authed<UserIdsRequest>,
) -> Result<Reply<Vec<TokenDetail>>, ApiError> {
    request.caller.require_admin()?;
    let ids = request.body.user_ids;
    check_id_list("userIDs", &ids)?;
    let mut details = Vec::new();
    for user_id in ids {
        let tokens = state
            .presence
            .online_tokens(&user_id)
            .await
            .map_err(|error| presence_failed(&error))?;
        if tokens.is_empty() {
            continue;
        }
        details.push(TokenDetail {
            user_id,
            status: 1,
            single_platform_token: tokens
                .into_iter()
                .map(|(platform_id, token)| PlatformTokens {
                    platform_id,
                    total: i32::try_from(token.len()).unwrap_or(i32::MAX),
                    token,
                })
                .collect(),
        });
    }
    Ok(Reply(details))
}

/// One entry of a `statusList`.
#[derive(Debug, Serialize)]
pub struct UserStatus {
    #[serde(rename = "userID")]
    user_id: String,
    status: i32,
    #[serde(rename = "platformIDs", serialize_with = "null_if_empty")]
    platform_ids: Vec<i32>,
}

/// A reply holding a `statusList`.
#[derive(Debug, Serialize)]
pub struct StatusListReply {
    #[serde(rename = "statusList", serialize_with = "null_if_empty")]
    status_list: Vec<UserStatus>,
}

async fn status_list(state: &ApiState, user_ids: &[String]) -> Result<StatusListReply, ApiError> {
    let online = state
        .presence
        .online_many(user_ids)
        .await
        .map_err(|error| presence_failed(&error))?;
    let status_list = user_ids
        .iter()
        .zip(online)
        .map(|(user_id, platform_ids)| UserStatus {
            user_id: user_id.clone(),
            status: status_of(&platform_ids),
            platform_ids,
        })
        .collect();
    Ok(StatusListReply { status_list })
}

/// `/user/get_users_status` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UsersStatusRequest {
    #[serde(rename = "userID")]
    user_id: String,
    #[serde(rename = "userIDs")]
    user_ids: Vec<String>,
}

/// The status of the asked users, for the caller (`userID`).
pub async fn get_users_status(
    State(state): State<ApiState>,
    request: Authed<UsersStatusRequest>,
) -> Result<Reply<StatusListReply>, ApiError> {
    let body = request.body;
    check_user_id("userID", &body.user_id)?;
    request.caller.require_self_or_admin(&body.user_id)?;
    check_id_list("userIDs", &body.user_ids)?;
    Ok(Reply(status_list(&state, &body.user_ids).await?))
}

/// `/user/subscribe_users_status` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SubscribeRequest {
    #[serde(rename = "userID")]
    user_id: String,
    #[serde(rename = "userIDs")]
    user_ids: Vec<String>,
    /// 1 subscribe, 2 unsubscribe.
    genre: i32,
}

/// Opens (creating if needed) the bucket of REST status subscriptions.
pub async fn open_subscriptions(
    jetstream: &async_nats::jetstream::Context,
    replicas: usize,
) -> Result<JsonBucket<BTreeSet<String>>, KvError> {
    let store =
        kv::ensure_bucket(jetstream, kv::status_subscriptions_bucket_config(replicas)).await?;
    Ok(JsonBucket::new(store, kv::STATUS_SUBSCRIPTIONS_BUCKET))
}

/// Subscribes `userID` to (genre 1) or unsubscribes them from (genre 2) the status of
/// `userIDs`; a subscribe answers with their current status.
pub async fn subscribe_users_status(
    State(state): State<ApiState>,
    request: Authed<SubscribeRequest>,
) -> Result<Reply<StatusListReply>, ApiError> {
    let body = request.body;
    check_user_id("userID", &body.user_id)?;
    request.caller.require_self_or_admin(&body.user_id)?;
    check_id_list("userIDs", &body.user_ids)?;
    let subscribe = match body.genre {
        1 => true,
        2 => false,
        other => {
            return Err(ApiError::args(format!(
                "genre {other} is neither 1 (subscribe) nor 2 (unsubscribe)"
            )));
        }
    };
    let written = state
        .status_subscriptions
        .modify(&body.user_id, |following| {
            for user_id in &body.user_ids {
                if subscribe {
                    following.insert(user_id.clone());
                } else {
                    following.remove(user_id);
                }
            }
            (following.len() <= MAX_SUBSCRIPTIONS).then_some(())
        })
        .await
        .map_err(|error| ApiError::internal("storing the subscriptions", &error))?;
    if written.is_none() {
        return Err(ApiError::args(format!(
            "a user follows at most {MAX_SUBSCRIPTIONS} users' status"
        )));
    }
    if subscribe {
        Ok(Reply(status_list(&state, &body.user_ids).await?))
    } else {
        Ok(Reply(StatusListReply {
            status_list: Vec::new(),
        }))
    }
}

/// `/user/get_subscribe_users_status` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SubscribedRequest {
    #[serde(rename = "userID")]
    user_id: String,
}

/// The status of every user `userID` follows.
pub async fn get_subscribe_users_status(
    State(state): State<ApiState>,
    request: Authed<SubscribedRequest>,
) -> Result<Reply<StatusListReply>, ApiError> {
    let body = request.body;
    check_user_id("userID", &body.user_id)?;
    request.caller.require_self_or_admin(&body.user_id)?;
    let following: Vec<String> = state
        .status_subscriptions
        .get(&body.user_id)
        .await
        .map_err(|error| ApiError::internal("reading the subscriptions", &error))?
        .map(|(list, _)| list.into_iter().collect())
        .unwrap_or_default();
    Ok(Reply(status_list(&state, &following).await?))
}
