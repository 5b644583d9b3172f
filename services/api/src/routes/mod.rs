//! The OpenIM routes, one module per group. Each handler parses (the extractor), calls the
//! domain (the token service, the event log, the read models), and maps the result.

pub mod args;
pub mod auth;
pub mod client_config;
pub mod conversation;
pub mod delete;
pub mod friend;
pub mod group;
pub mod incremental;
pub mod jssdk;
pub mod msg;
pub mod notification_account;
pub mod read;
pub mod revoke;
pub mod search;
pub mod statistics;
pub mod status;
pub mod user;
pub mod user_command;

use std::time::Duration;

use axum::Router;
use axum::routing::post;

use crate::ApiState;

/// How long a write waits for the read model to show it.
const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(5);

/// Pushes a notification (never stored, seq 0) to `to`'s connections, tagged with the
/// request's operationID. Delivery is best effort: a failure is logged.
pub(crate) async fn push_notification(
    state: &ApiState,
    operation_id: &str,
    notification: &jetim_messaging::notification::Notification,
    to: &[String],
) {
    let message = notification.push_only();
    if let Err(error) =
        jetim_messaging::delivery::publish(&state.nats, to, &message, operation_id).await
    {
        tracing::warn!(%error, content_type = message.content_type, "a notification was not pushed");
    }
}

/// Pushes a notification between users to its receiver and, when that is someone else, to
/// its sender's own connections.
pub(crate) async fn push_to_both(
    state: &ApiState,
    operation_id: &str,
    notification: &jetim_messaging::notification::Notification,
) {
    let mut to = vec![notification.recv_id.clone()];
    if notification.send_id != notification.recv_id {
        to.push(notification.send_id.clone());
    }
    push_notification(state, operation_id, notification, &to).await;
}

/// Appends a message the server makes (a stored notification, or a notification's copy in a
/// chat) to its timeline in the name of `actor` and the request, and waits until the messages
/// projection shows it. Its seq.
pub(crate) async fn store_message(
    state: &ApiState,
    (actor, operation_id): (&str, &str),
    message: &jetim_schemas::events::msg::MsgSent,
) -> Result<u64, crate::openim::ApiError> {
    let appended = state
        .log
        .append_to_timeline(
            &message.conversation_id,
            &message.client_msg_id,
            jetim_streams::Actor::with_operation(actor, operation_id),
            message,
        )
        .await
        .map_err(|error| user::append_failed(&error))?;
    wait_for_projection(
        state,
        jetim_readmodel::messages::NAME,
        jetim_readmodel::messages::VERSION,
        appended.stream_sequence,
    )
    .await;
    Ok(appended.seq)
}

/// Waits (briefly) until a projection has applied `stream_sequence`, so a client that reads
/// right after writing sees its write. The write is durable either way; a projection that
/// lags longer is logged.
pub(crate) async fn wait_for_projection(
    state: &ApiState,
    name: &str,
    version: i32,
    stream_sequence: u64,
) {
    match jetim_readmodel::projection::wait_for(
        &state.db,
        state.log.hurry(),
        name,
        version,
        stream_sequence,
        READ_YOUR_WRITES_WAIT,
    )
    .await
    {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            projection = name,
            stream_sequence,
            "the projection has not applied a write yet; readers may not see it"
        ),
        Err(error) => tracing::warn!(%error, "cannot tell whether the projection caught up"),
    }
}

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
        .route("/user/process_user_command_add", post(user_command::add))
        .route(
            "/user/process_user_command_update",
            post(user_command::update),
        )
        .route(
            "/user/process_user_command_delete",
            post(user_command::delete),
        )
        .route("/user/process_user_command_get", post(user_command::get))
        .route(
            "/user/process_user_command_get_all",
            post(user_command::get_all),
        )
        .route(
            "/user/add_notification_account",
            post(notification_account::add),
        )
        .route(
            "/user/update_notification_account",
            post(notification_account::update),
        )
        .route(
            "/user/search_notification_account",
            post(notification_account::search),
        )
        .route("/statistics/user/register", post(statistics::user_register))
        .route("/statistics/user/active", post(statistics::user_active))
        .route("/statistics/group/create", post(statistics::group_create))
        .route("/statistics/group/active", post(statistics::group_active))
        .route(
            "/user/get_users_online_token_detail",
            post(status::get_users_online_token_detail),
        )
        .route(
            "/user/get_users_online_status",
            post(status::get_users_online_status),
        )
        .route("/user/get_users_status", post(status::get_users_status))
        .route(
            "/user/subscribe_users_status",
            post(status::subscribe_users_status),
        )
        .route(
            "/user/get_subscribe_users_status",
            post(status::get_subscribe_users_status),
        )
        .route("/msg/send_msg", post(msg::send_msg))
        .route("/msg/newest_seq", post(msg::newest_seq))
        .route("/msg/pull_msg_by_seq", post(msg::pull_msg_by_seq))
        .route("/msg/get_server_time", post(msg::get_server_time))
        .route("/msg/revoke_msg", post(revoke::revoke_msg))
        .route("/msg/delete_msgs", post(delete::delete_msgs))
        .route(
            "/msg/delete_msg_phsical_by_seq",
            post(delete::delete_msg_physical_by_seq),
        )
        .route(
            "/msg/delete_msg_physical",
            post(delete::delete_msg_physical),
        )
        .route(
            "/msg/check_msg_is_send_success",
            post(msg::check_msg_is_send_success),
        )
        .route("/msg/batch_send_msg", post(msg::batch_send_msg))
        .route("/msg/search_msg", post(search::search_msg))
        .route("/msg/send_simple_msg", post(msg::send_simple_msg))
        .route(
            "/msg/send_business_notification",
            post(msg::send_business_notification),
        )
        .route(
            "/msg/clear_conversation_msg",
            post(delete::clear_conversation_msg),
        )
        .route("/msg/user_clear_all_msg", post(delete::user_clear_all_msg))
        .route(
            "/jssdk/get_active_conversations",
            post(jssdk::get_active_conversations),
        )
        .route("/jssdk/get_conversations", post(jssdk::get_conversations))
        .route(
            "/conversation/get_all_conversations",
            post(conversation::get_all_conversations),
        )
        .route(
            "/conversation/get_conversation",
            post(conversation::get_conversation),
        )
        .route(
            "/conversation/get_conversations",
            post(conversation::get_conversations),
        )
        .route(
            "/conversation/get_owner_conversation",
            post(conversation::get_owner_conversation),
        )
        .route(
            "/conversation/get_not_notify_conversation_ids",
            post(conversation::get_not_notify_conversation_ids),
        )
        .route(
            "/conversation/get_pinned_conversation_ids",
            post(conversation::get_pinned_conversation_ids),
        )
        .route(
            "/conversation/set_conversations",
            post(conversation::set_conversations),
        )
        .route(
            "/conversation/get_incremental_conversations",
            post(conversation::get_incremental_conversations),
        )
        .route(
            "/conversation/get_full_conversation_ids",
            post(conversation::get_full_conversation_ids),
        )
        .route(
            "/conversation/delete_conversations",
            post(conversation::delete_conversations),
        )
        .route(
            "/conversation/get_sorted_conversation_list",
            post(conversation::get_sorted_conversation_list),
        )
        .route(
            "/conversation/update_conversations_by_user",
            post(conversation::update_conversations_by_user),
        )
        .route("/msg/mark_msgs_as_read", post(read::mark_msgs_as_read))
        .route(
            "/msg/mark_conversation_as_read",
            post(read::mark_conversation_as_read),
        )
        .route(
            "/msg/set_conversation_has_read_seq",
            post(read::set_conversation_has_read_seq),
        )
        .route(
            "/msg/get_conversations_has_read_and_max_seq",
            post(read::get_conversations_has_read_and_max_seq),
        )
        .route("/user/get_user_client_config", post(client_config::get))
        .route("/user/set_user_client_config", post(client_config::set))
        .route("/user/del_user_client_config", post(client_config::delete))
        .route("/user/page_user_client_config", post(client_config::page))
        .route("/group/create_group", post(group::create_group))
        .route("/group/set_group_info", post(group::set_group_info))
        .route("/group/set_group_info_ex", post(group::set_group_info_ex))
        .route("/group/join_group", post(group::join_group))
        .route("/group/quit_group", post(group::quit_group))
        .route(
            "/group/group_application_response",
            post(group::group_application_response),
        )
        .route("/group/transfer_group", post(group::transfer_group))
        .route(
            "/group/get_recv_group_applicationList",
            post(group::get_recv_group_application_list),
        )
        .route(
            "/group/get_user_req_group_applicationList",
            post(group::get_user_req_group_application_list),
        )
        .route(
            "/group/get_group_users_req_application_list",
            post(group::get_group_users_req_application_list),
        )
        .route(
            "/group/get_specified_user_group_request_info",
            post(group::get_specified_user_group_request_info),
        )
        .route("/group/get_groups_info", post(group::get_groups_info))
        .route("/group/kick_group", post(group::kick_group))
        .route(
            "/group/get_group_members_info",
            post(group::get_group_members_info),
        )
        .route(
            "/group/get_group_member_list",
            post(group::get_group_member_list),
        )
        .route(
            "/group/invite_user_to_group",
            post(group::invite_user_to_group),
        )
        .route(
            "/group/get_joined_group_list",
            post(group::get_joined_group_list),
        )
        .route("/group/dismiss_group", post(group::dismiss_group))
        .route("/group/mute_group_member", post(group::mute_group_member))
        .route(
            "/group/cancel_mute_group_member",
            post(group::cancel_mute_group_member),
        )
        .route("/group/mute_group", post(group::mute_group))
        .route("/group/cancel_mute_group", post(group::cancel_mute_group))
        .route(
            "/group/set_group_member_info",
            post(group::set_group_member_info),
        )
        .route(
            "/group/get_group_abstract_info",
            post(group::get_group_abstract_info),
        )
        .route("/group/get_groups", post(group::get_groups))
        .route(
            "/group/get_group_member_user_id",
            post(group::get_group_member_user_id),
        )
        .route(
            "/group/get_incremental_join_groups",
            post(group::get_incremental_join_groups),
        )
        .route(
            "/group/get_incremental_group_members",
            post(group::get_incremental_group_members),
        )
        .route(
            "/group/get_incremental_group_members_batch",
            post(group::get_incremental_group_members_batch),
        )
        .route(
            "/group/get_full_group_member_user_ids",
            post(group::get_full_group_member_user_ids),
        )
        .route(
            "/group/get_full_join_group_ids",
            post(group::get_full_join_group_ids),
        )
        .route(
            "/group/get_group_application_unhandled_count",
            post(group::get_group_application_unhandled_count),
        )
        .route("/friend/add_friend", post(friend::add_friend))
        .route(
            "/friend/add_friend_response",
            post(friend::add_friend_response),
        )
        .route("/friend/delete_friend", post(friend::delete_friend))
        .route(
            "/friend/get_friend_apply_list",
            post(friend::get_friend_apply_list),
        )
        .route(
            "/friend/get_self_friend_apply_list",
            post(friend::get_self_friend_apply_list),
        )
        .route(
            "/friend/get_designated_friend_apply",
            post(friend::get_designated_friend_apply),
        )
        .route("/friend/get_friend_list", post(friend::get_friend_list))
        .route(
            "/friend/get_designated_friends",
            post(friend::get_designated_friends),
        )
        .route("/friend/set_friend_remark", post(friend::set_friend_remark))
        .route("/friend/update_friends", post(friend::update_friends))
        .route("/friend/add_black", post(friend::add_black))
        .route("/friend/remove_black", post(friend::remove_black))
        .route("/friend/get_black_list", post(friend::get_black_list))
        .route(
            "/friend/get_specified_blacks",
            post(friend::get_specified_blacks),
        )
        .route(
            "/friend/get_incremental_blacks",
            post(friend::get_incremental_blacks),
        )
        .route("/friend/import_friend", post(friend::import_friend))
        .route("/friend/is_friend", post(friend::is_friend))
        .route("/friend/get_friend_id", post(friend::get_friend_id))
        .route(
            "/friend/get_specified_friends_info",
            post(friend::get_specified_friends_info),
        )
        .route(
            "/friend/get_incremental_friends",
            post(friend::get_incremental_friends),
        )
        .route(
            "/friend/get_full_friend_user_ids",
            post(friend::get_full_friend_user_ids),
        )
        .route(
            "/friend/get_self_unhandled_apply_count",
            post(friend::get_self_unhandled_apply_count),
        )
}
