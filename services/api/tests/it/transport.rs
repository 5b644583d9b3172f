//! OpenIM's transport rules, checked on real routes.

use serde_json::json;

use crate::support::{MAX_BODY_BYTES, TestApp, error};

#[tokio::test]
async fn a_request_without_operation_id_gets_1001_before_anything_else() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .post(format!("{}/user/get_users_info", app.address))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body,
        error(1001, "ArgsError", "header must have operationID")
    );
}

#[tokio::test]
async fn a_request_without_a_token_gets_1001() {
    let app = TestApp::spawn().await;
    let reply = app
        .post("/user/get_users_info", None, &json!({"userIDs": ["a"]}))
        .await;
    assert_eq!(reply, error(1001, "ArgsError", "header must have token"));
}

#[tokio::test]
async fn bad_tokens_get_their_own_codes() {
    let app = TestApp::spawn().await;
    let body = json!({"userIDs": ["a"]});
    let reply = app
        .post("/user/get_users_info", Some("garbage"), &body)
        .await;
    assert_eq!(
        reply,
        error(1503, "TokenMalformedError", "token is malformed")
    );

    let now = jetim_common::auth::now_seconds();
    let claims = |exp| jetim_common::auth::Claims {
        user_id: "imAdmin".into(),
        platform_id: 10,
        exp,
        iat: now - 5,
        jti: String::new(),
    };
    let forged = jetim_common::auth::jwt::Keys::new("not the secret")
        .sign(&claims(now + 3600))
        .unwrap();
    let reply = app.post("/user/get_users_info", Some(&forged), &body).await;
    assert_eq!(reply["errCode"], 1505, "{reply}");
    assert_eq!(reply["errMsg"], "TokenUnknownError");

    let keys = jetim_common::auth::jwt::Keys::new(crate::support::SECRET);
    let expired = keys.sign(&claims(now - 1)).unwrap();
    let reply = app
        .post("/user/get_users_info", Some(&expired), &body)
        .await;
    assert_eq!(reply, error(1501, "TokenExpiredError", "token expired"));

    // Signed with the right secret but never issued: the server does not know it.
    let unissued = keys.sign(&claims(now + 3600)).unwrap();
    let reply = app
        .post("/user/get_users_info", Some(&unissued), &body)
        .await;
    assert_eq!(
        reply,
        error(1507, "TokenNotExistError", "token does not exist")
    );
}

#[tokio::test]
async fn bodies_that_do_not_decode_get_1001_with_the_decoder_text() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let send = |body: &'static str| {
        app.http
            .post(format!("{}/user/get_users_info", app.address))
            .header("operationID", "op")
            .header("token", &admin)
            .body(body)
            .send()
    };
    let reply: serde_json::Value = send("{not json").await.unwrap().json().await.unwrap();
    assert_eq!(reply["errCode"], 1001);
    assert!(
        reply["errMsg"]
            .as_str()
            .unwrap()
            .contains("key must be a string"),
        "{reply}"
    );
    assert_eq!(reply["errDlt"], "");

    let reply: serde_json::Value = send("").await.unwrap().json().await.unwrap();
    assert_eq!(reply["errCode"], 1001, "an empty body is not JSON: {reply}");

    let reply: serde_json::Value = send(r#"{"userIDs":"a"}"#)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        reply,
        json!({"errCode": 1001, "errMsg": "invalid type: string \"a\", expected a sequence", "errDlt": ""})
    );
}

#[tokio::test]
async fn an_oversized_body_gets_1001_and_is_not_read() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let huge = "x".repeat(MAX_BODY_BYTES + 1);
    let reply = app
        .post(
            "/user/get_users_info",
            Some(&admin),
            &json!({"userIDs": [huge]}),
        )
        .await;
    assert_eq!(
        reply,
        error(
            1001,
            "ArgsError",
            &format!("the request body is larger than {MAX_BODY_BYTES} bytes")
        )
    );
}

#[tokio::test]
async fn keys_are_matched_case_insensitively_and_unknown_keys_ignored() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["casey"]).await;
    let data = app
        .ok(
            "/user/get_users_info",
            &admin,
            &json!({"USERIDS": ["casey"], "somethingElse": 1}),
        )
        .await;
    assert_eq!(data["usersInfo"][0]["userID"], "casey");
}

#[tokio::test]
async fn options_on_any_path_is_answered_with_openims_cors_headers() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/anything/at/all", app.address),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert_eq!(headers["access-control-allow-methods"], "*");
    assert_eq!(headers["access-control-allow-headers"], "*");
    assert_eq!(headers["access-control-max-age"], "172800");
    assert_eq!(headers["access-control-allow-credentials"], "false");
    assert_eq!(response.text().await.unwrap(), "\"Options Request!\"");

    // Ordinary replies carry them too.
    let response = app
        .http
        .post(format!("{}/auth/parse_token", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn replies_are_gzipped_when_asked_and_unknown_paths_get_a_plain_404() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let response = app
        .http
        .post(format!("{}/user/get_users_info", app.address))
        .header("operationID", "op")
        .header("token", &admin)
        .header("Accept-Encoding", "gzip")
        .body(format!(
            r#"{{"userIDs":[{}]}}"#,
            vec!["\"someone\""; 200].join(",")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");

    let response = app
        .http
        .post(format!("{}/no/such/route", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(response.text().await.unwrap(), "404 page not found");
}

/// Every OpenIM route jetim serves, with whether it needs a token.
const ROUTES: &[(&str, bool)] = &[
    ("/auth/get_admin_token", false),
    ("/auth/parse_token", false),
    ("/auth/get_user_token", true),
    ("/auth/force_logout", true),
    ("/user/user_register", true),
    ("/user/get_users_info", true),
    ("/user/update_user_info", true),
    ("/user/update_user_info_ex", true),
    ("/user/set_global_msg_recv_opt", true),
    ("/user/account_check", true),
    ("/user/get_all_users_uid", true),
    ("/user/get_users", true),
    ("/user/process_user_command_add", true),
    ("/user/process_user_command_update", true),
    ("/user/process_user_command_delete", true),
    ("/user/process_user_command_get", true),
    ("/user/process_user_command_get_all", true),
    ("/user/add_notification_account", true),
    ("/user/update_notification_account", true),
    ("/user/search_notification_account", true),
    ("/user/get_user_client_config", true),
    ("/user/set_user_client_config", true),
    ("/user/del_user_client_config", true),
    ("/user/page_user_client_config", true),
    ("/statistics/user/register", true),
    ("/statistics/user/active", true),
    ("/user/get_users_online_status", true),
    ("/user/get_users_status", true),
    ("/user/subscribe_users_status", true),
    ("/user/get_subscribe_users_status", true),
    ("/msg/send_msg", true),
    ("/msg/newest_seq", true),
    ("/msg/pull_msg_by_seq", true),
    ("/msg/get_server_time", true),
    ("/msg/revoke_msg", true),
    ("/msg/delete_msgs", true),
    ("/msg/delete_msg_phsical_by_seq", true),
    ("/msg/delete_msg_physical", true),
    ("/msg/check_msg_is_send_success", true),
    ("/msg/batch_send_msg", true),
    ("/msg/search_msg", true),
    ("/msg/send_simple_msg", true),
    ("/msg/send_business_notification", true),
    ("/msg/clear_conversation_msg", true),
    ("/msg/user_clear_all_msg", true),
    ("/jssdk/get_active_conversations", true),
    ("/jssdk/get_conversations", true),
    ("/conversation/get_all_conversations", true),
    ("/conversation/get_conversation", true),
    ("/conversation/get_conversations", true),
    ("/conversation/get_owner_conversation", true),
    ("/conversation/get_not_notify_conversation_ids", true),
    ("/conversation/get_pinned_conversation_ids", true),
    ("/conversation/set_conversations", true),
    ("/conversation/get_incremental_conversations", true),
    ("/conversation/get_full_conversation_ids", true),
    ("/conversation/update_conversations_by_user", true),
    ("/conversation/delete_conversations", true),
    ("/conversation/get_sorted_conversation_list", true),
    ("/msg/mark_msgs_as_read", true),
    ("/msg/mark_conversation_as_read", true),
    ("/msg/set_conversation_has_read_seq", true),
    ("/msg/get_conversations_has_read_and_max_seq", true),
    ("/friend/add_friend", true),
    ("/friend/add_friend_response", true),
    ("/friend/delete_friend", true),
    ("/friend/get_friend_apply_list", true),
    ("/friend/get_self_friend_apply_list", true),
    ("/friend/get_designated_friend_apply", true),
    ("/friend/get_friend_list", true),
    ("/friend/get_designated_friends", true),
    ("/friend/set_friend_remark", true),
    ("/friend/update_friends", true),
    ("/friend/add_black", true),
    ("/friend/remove_black", true),
    ("/friend/get_black_list", true),
    ("/friend/get_specified_blacks", true),
    ("/friend/get_incremental_blacks", true),
    ("/friend/import_friend", true),
    ("/friend/is_friend", true),
    ("/friend/get_friend_id", true),
    ("/friend/get_specified_friends_info", true),
    ("/friend/get_incremental_friends", true),
    ("/friend/get_full_friend_user_ids", true),
    ("/friend/get_self_unhandled_apply_count", true),
    ("/group/create_group", true),
    ("/group/set_group_info", true),
    ("/group/set_group_info_ex", true),
    ("/group/join_group", true),
    ("/group/quit_group", true),
    ("/group/transfer_group", true),
    ("/group/get_groups_info", true),
    ("/group/kick_group", true),
    ("/group/dismiss_group", true),
    ("/group/mute_group_member", true),
    ("/group/mute_group", true),
    ("/group/cancel_mute_group", true),
    ("/group/get_groups", true),
    ("/group/group_application_response", true),
    ("/group/get_recv_group_applicationList", true),
    ("/group/get_user_req_group_applicationList", true),
    ("/group/get_group_users_req_application_list", true),
    ("/group/get_specified_user_group_request_info", true),
    ("/group/get_group_members_info", true),
    ("/group/get_group_member_list", true),
    ("/group/invite_user_to_group", true),
    ("/group/get_joined_group_list", true),
    ("/group/cancel_mute_group_member", true),
    ("/group/set_group_member_info", true),
    ("/group/get_group_abstract_info", true),
    ("/group/get_group_member_user_id", true),
    ("/group/get_incremental_join_groups", true),
    ("/group/get_incremental_group_members", true),
    ("/group/get_incremental_group_members_batch", true),
    ("/group/get_full_group_member_user_ids", true),
    ("/group/get_full_join_group_ids", true),
    ("/group/get_group_application_unhandled_count", true),
    ("/user/get_users_online_token_detail", true),
    ("/statistics/group/create", true),
    ("/statistics/group/active", true),
];

#[tokio::test]
async fn every_route_refuses_bad_transport_input_with_1001_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let before = app.user_events().await;
    let raw = |path: &str, operation_id: bool, token: Option<&str>, body: String| {
        let mut request = app.http.post(format!("{}{path}", app.address)).body(body);
        if operation_id {
            request = request.header("operationID", "op");
        }
        if let Some(token) = token {
            request = request.header("token", token);
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200);
            response.json::<serde_json::Value>().await.unwrap()
        }
    };
    for (path, needs_token) in ROUTES {
        let reply = raw(path, false, Some(&admin), "{}".into()).await;
        assert_eq!(
            reply,
            error(1001, "ArgsError", "header must have operationID"),
            "{path}"
        );
        if *needs_token {
            let reply = raw(path, true, None, "{}".into()).await;
            assert_eq!(
                reply,
                error(1001, "ArgsError", "header must have token"),
                "{path}"
            );
            let reply = raw(path, true, Some("forged.token.here"), "{}".into()).await;
            assert_eq!(reply["errCode"], 1503, "{path}: {reply}");
        }
        let reply = raw(path, true, Some(&admin), "{\"userID\": ".into()).await;
        assert_eq!(reply["errCode"], 1001, "{path}: {reply}");
        assert_eq!(
            reply["errDlt"], "",
            "{path}: the decoder text is the errMsg"
        );
        let reply = raw(path, true, Some(&admin), "[]".into()).await;
        assert_eq!(
            reply["errCode"], 1001,
            "{path}: an array is not a request: {reply}"
        );
        let reply = raw(
            path,
            true,
            Some(&admin),
            format!("{{\"ex\":\"{}\"}}", "x".repeat(MAX_BODY_BYTES)),
        )
        .await;
        assert_eq!(reply["errCode"], 1001, "{path}: {reply}");
        assert!(
            reply["errDlt"].as_str().unwrap().contains("larger than"),
            "{path}: {reply}"
        );
    }
    assert_eq!(
        app.user_events().await,
        before,
        "no bad request wrote anything"
    );
}
