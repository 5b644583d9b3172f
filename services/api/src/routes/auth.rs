//! `/auth/*`: admin and user tokens, token parsing, force logout.

use axum::extract::State;
use jetim_common::auth::Platform;
use serde::{Deserialize, Serialize};

use super::user::registered_user;
use crate::ApiState;
use crate::openim::extract::token_error;
use crate::openim::{ApiError, Authed, Done, Public, Reply};

/// `/auth/get_admin_token` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GetAdminTokenRequest {
    secret: String,
    #[serde(rename = "userID")]
    user_id: String,
}

/// The reply of both token-issuing routes.
#[derive(Debug, Serialize)]
pub struct TokenReply {
    token: String,
    /// The token's lifetime in seconds.
    #[serde(rename = "expireTimeSeconds")]
    expire_time_seconds: i64,
}

/// Compares secrets in time independent of where they differ.
fn same_secret(given: &str, configured: &str) -> bool {
    given.len() == configured.len()
        && given
            .bytes()
            .zip(configured.bytes())
            .fold(0u8, |difference, (left, right)| difference | (left ^ right))
            == 0
}

/// Issues an admin token (platform 10) for a configured admin who knows the secret.
pub async fn get_admin_token(
    State(state): State<ApiState>,
    request: Public<GetAdminTokenRequest>,
) -> Result<Reply<TokenReply>, ApiError> {
    let body = request.body;
    if !same_secret(&body.secret, &state.tokens.config().secret) {
        return Err(ApiError::no_permission("the secret is wrong"));
    }
    if !state.tokens.is_admin(&body.user_id) {
        return Err(ApiError::args(format!(
            "userID {:?} is not an admin",
            body.user_id
        )));
    }
    let issued = state
        .tokens
        .issue(&body.user_id, Platform::ADMIN)
        .await
        .map_err(token_error)?;
    Ok(Reply(TokenReply {
        token: issued.token,
        expire_time_seconds: issued.lifetime_seconds,
    }))
}

/// `/auth/get_user_token` and `/auth/force_logout` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UserPlatformRequest {
    #[serde(rename = "platformID")]
    platform_id: i32,
    #[serde(rename = "userID")]
    user_id: String,
}

fn platform(platform_id: i32) -> Result<Platform, ApiError> {
    Platform::from_id(platform_id)
        .ok_or_else(|| ApiError::args(format!("platformID {platform_id} is not a platform (1-11)")))
}

/// Issues a token for a registered user on a platform (admin only). The multi-login policy
/// is applied to the user's other tokens.
pub async fn get_user_token(
    State(state): State<ApiState>,
    request: Authed<UserPlatformRequest>,
) -> Result<Reply<TokenReply>, ApiError> {
    request.caller.require_admin()?;
    let body = request.body;
    let platform = platform(body.platform_id)?;
    if platform == Platform::ADMIN {
        return Err(ApiError::no_permission(
            "platform 10 is for admin tokens; use /auth/get_admin_token",
        ));
    }
    if state.tokens.is_admin(&body.user_id) {
        return Err(ApiError::no_permission(format!(
            "{} is an admin; admins get tokens from /auth/get_admin_token",
            body.user_id
        )));
    }
    let user = registered_user(&state, &body.user_id).await?;
    if user.app_manger_level >= 3 {
        return Err(ApiError::args(format!(
            "{} is a notification account or robot (appMangerLevel {}) and cannot log in",
            body.user_id, user.app_manger_level
        )));
    }
    let issued = state
        .tokens
        .issue(&body.user_id, platform)
        .await
        .map_err(token_error)?;
    Ok(Reply(TokenReply {
        token: issued.token,
        expire_time_seconds: issued.lifetime_seconds,
    }))
}

/// `/auth/parse_token` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ParseTokenRequest {
    token: String,
}

/// `/auth/parse_token` reply.
#[derive(Debug, Serialize)]
pub struct ParseTokenReply {
    #[serde(rename = "userID")]
    user_id: String,
    #[serde(rename = "platformID")]
    platform_id: i32,
    /// The expiry as a Unix timestamp in seconds (unlike the issuing routes).
    #[serde(rename = "expireTimeSeconds")]
    expire_time_seconds: i64,
}

/// Checks a token exactly as every route does and says whose it is.
pub async fn parse_token(
    State(state): State<ApiState>,
    request: Public<ParseTokenRequest>,
) -> Result<Reply<ParseTokenReply>, ApiError> {
    let claims = state
        .tokens
        .verify(&request.body.token)
        .await
        .map_err(token_error)?;
    Ok(Reply(ParseTokenReply {
        user_id: claims.user_id,
        platform_id: claims.platform_id,
        expire_time_seconds: claims.exp,
    }))
}

/// Kicks every token of a user on a platform (admin only); they are refused from then on.
pub async fn force_logout(
    State(state): State<ApiState>,
    request: Authed<UserPlatformRequest>,
) -> Result<Done, ApiError> {
    request.caller.require_admin()?;
    let body = request.body;
    let platform = platform(body.platform_id)?;
    if body.user_id.is_empty() {
        return Err(ApiError::args("userID is empty"));
    }
    let kicked = state
        .tokens
        .kick_platform(&body.user_id, platform)
        .await
        .map_err(token_error)?;
    tracing::info!(user = %body.user_id, platform = platform.id(), kicked, "force logout");
    // The tokens are refused from now on; the gateways holding the user's connections on
    // that platform send 2002 and close them.
    jetim_common::session::announce(
        &state.nats,
        &body.user_id,
        &jetim_common::session::SessionControl::ForceLogout {
            platform_id: platform.id(),
        },
    )
    .await
    .map_err(|error| ApiError::internal("announcing the logout to the gateways", &error))?;
    Ok(Done)
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("openIM123", "openIM123"));
        assert!(!same_secret("openIM124", "openIM123"));
        assert!(!same_secret("openIM12", "openIM123"));
        assert!(!same_secret("", "openIM123"));
    }
}
