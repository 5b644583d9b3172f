//! Reading an OpenIM request: the `operationID` header, the `token` header (except on the
//! public `/auth` routes), and the JSON body, in OpenIM's order, each failure an OpenIM error.

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use jetim_common::auth::{Platform, TokenError};
use serde::de::DeserializeOwned;

use super::error::{ApiError, Code};
use super::json;
use crate::ApiState;

/// Who is calling, from their verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's user.
    pub user_id: String,
    /// The token's platform.
    pub platform: Platform,
    /// Whether the user is a configured admin.
    pub is_admin: bool,
}

impl Caller {
    /// 1002 unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin {
            Ok(())
        } else {
            Err(ApiError::no_permission(format!(
                "only an admin may do this; {} is not one",
                self.user_id
            )))
        }
    }

    /// 1002 unless the caller is `user_id` or an admin.
    pub fn require_self_or_admin(&self, user_id: &str) -> Result<(), ApiError> {
        if self.is_admin || self.user_id == user_id {
            Ok(())
        } else {
            Err(ApiError::no_permission(format!(
                "{} may not act for {user_id}",
                self.user_id
            )))
        }
    }
}

/// A request that needs a valid token.
pub struct Authed<T> {
    /// The request's `operationID`.
    pub operation_id: String,
    /// The caller.
    pub caller: Caller,
    /// The decoded body.
    pub body: T,
}

/// A request on a route without a token (`/auth/get_admin_token`, `/auth/parse_token`).
pub struct Public<T> {
    /// The request's `operationID`.
    pub operation_id: String,
    /// The decoded body.
    pub body: T,
}

fn operation_id(headers: &HeaderMap) -> Result<String, ApiError> {
    headers
        .get("operationID")
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ApiError::args("header must have operationID"))
}

/// Maps a token failure to its OpenIM code.
pub fn token_error(error: TokenError) -> ApiError {
    let Some(code) = Code::of_token_error(&error) else {
        return ApiError::internal("checking the token", &error);
    };
    ApiError::new(code, error.to_string())
}

/// Verifies a token and makes the caller from it.
pub async fn caller_from_token(state: &ApiState, token: &str) -> Result<Caller, ApiError> {
    let claims = state.tokens.verify(token).await.map_err(token_error)?;
    let platform = Platform::from_id(claims.platform_id).ok_or_else(|| {
        ApiError::new(
            Code::TokenUnknown,
            format!("token platform {} is not a platform", claims.platform_id),
        )
    })?;
    Ok(Caller {
        is_admin: state.tokens.is_admin(&claims.user_id),
        user_id: claims.user_id,
        platform,
    })
}

async fn decode_body<T: DeserializeOwned>(body: Body, limit: usize) -> Result<T, ApiError> {
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::args(format!("the request body is larger than {limit} bytes")))?;
    json::decode(&bytes).map_err(|error| ApiError {
        code: Code::Args,
        message: error.to_string(),
        detail: String::new(),
    })
}

impl<T: DeserializeOwned> FromRequest<ApiState> for Authed<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &ApiState) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let operation_id = operation_id(&parts.headers)?;
        tracing::Span::current().record("operation_id", operation_id.as_str());
        let token = parts
            .headers
            .get("token")
            .and_then(|value| value.to_str().ok())
            .filter(|value| !value.is_empty())
            .ok_or_else(|| ApiError::args("header must have token"))?;
        let caller = caller_from_token(state, token).await?;
        let body = decode_body(body, state.limits.max_body_bytes).await?;
        Ok(Self {
            operation_id,
            caller,
            body,
        })
    }
}

impl<T: DeserializeOwned> FromRequest<ApiState> for Public<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &ApiState) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let operation_id = operation_id(&parts.headers)?;
        tracing::Span::current().record("operation_id", operation_id.as_str());
        let body = decode_body(body, state.limits.max_body_bytes).await?;
        Ok(Self { operation_id, body })
    }
}

/// A request whose body the handler decodes itself (the `/jssdk` routes take protobuf).
pub struct AuthedBytes {
    /// The request's `operationID`.
    pub operation_id: String,
    /// The caller.
    pub caller: Caller,
    /// The `Content-Type` header, lower-cased; empty when absent.
    pub content_type: String,
    /// The raw body.
    pub body: axum::body::Bytes,
}

impl FromRequest<ApiState> for AuthedBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &ApiState) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let operation_id = operation_id(&parts.headers)?;
        tracing::Span::current().record("operation_id", operation_id.as_str());
        let token = parts
            .headers
            .get("token")
            .and_then(|value| value.to_str().ok())
            .filter(|value| !value.is_empty())
            .ok_or_else(|| ApiError::args("header must have token"))?;
        let caller = caller_from_token(state, token).await?;
        let limit = state.limits.max_body_bytes;
        let body = axum::body::to_bytes(body, limit).await.map_err(|_| {
            ApiError::args(format!("the request body is larger than {limit} bytes"))
        })?;
        let content_type = parts
            .headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        Ok(Self {
            operation_id,
            caller,
            content_type,
            body,
        })
    }
}
