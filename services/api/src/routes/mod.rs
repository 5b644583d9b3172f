//! The OpenIM routes, one module per group. Each handler parses (the extractor), calls the
//! domain (the token service, the event log, the read models), and maps the result.

pub mod auth;
pub mod user;

use axum::Router;
use axum::routing::post;

use crate::ApiState;

/// Every OpenIM route.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/auth/get_admin_token", post(auth::get_admin_token))
        .route("/auth/get_user_token", post(auth::get_user_token))
        .route("/auth/parse_token", post(auth::parse_token))
        .route("/auth/force_logout", post(auth::force_logout))
        .route("/user/user_register", post(user::user_register))
        .route("/user/get_users_info", post(user::get_users_info))
        .route("/user/update_user_info", post(user::update_user_info))
        .route("/user/update_user_info_ex", post(user::update_user_info_ex))
        .route(
            "/user/set_global_msg_recv_opt",
            post(user::set_global_msg_recv_opt),
        )
        .route("/user/account_check", post(user::account_check))
        .route("/user/get_all_users_uid", post(user::get_all_users_uid))
        .route("/user/get_users", post(user::get_users))
}
