//! User commands and client configuration.

use jetim_common::auth::Platform;
use serde_json::json;

use crate::support::{TestApp, error};

#[tokio::test]
async fn a_user_adds_updates_lists_and_deletes_their_commands() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["fay", "gus"]).await;
    let fay = app.user_token(&admin, "fay", Platform::WEB).await;

    let add = |uuid: &'static str, value: &'static str| json!({"userID": "fay", "type": 1, "uuid": uuid, "value": value, "ex": "e"});
    app.ok("/user/process_user_command_add", &fay, &add("c1", "first"))
        .await;
    app.ok("/user/process_user_command_add", &fay, &add("c2", "second"))
        .await;
    app.ok(
        "/user/process_user_command_add",
        &fay,
        &json!({"userID": "fay", "type": 2, "uuid": "c3"}),
    )
    .await;
    let reply = app
        .post(
            "/user/process_user_command_add",
            Some(&fay),
            &add("c1", "again"),
        )
        .await;
    assert_eq!(reply["errCode"], 1003, "{reply}");

    app.ok(
        "/user/process_user_command_update",
        &fay,
        &json!({"userID": "fay", "type": 1, "uuid": "c1", "value": "changed"}),
    )
    .await;
    app.ok(
        "/user/process_user_command_delete",
        &fay,
        &json!({"userID": "fay", "type": 1, "uuid": "c2"}),
    )
    .await;

    let data = app
        .ok(
            "/user/process_user_command_get",
            &fay,
            &json!({"userID": "fay", "type": 1}),
        )
        .await;
    let commands = data["CommandResp"].as_array().unwrap();
    assert_eq!(commands.len(), 1);
    let created = commands[0]["createTime"].as_i64().unwrap();
    assert_eq!(
        commands[0],
        json!({"type": 1, "createTime": created, "uuid": "c1", "value": "changed", "ex": "e"})
    );
    let data = app
        .ok(
            "/user/process_user_command_get_all",
            &fay,
            &json!({"userID": "fay"}),
        )
        .await;
    assert_eq!(data["CommandResp"].as_array().unwrap().len(), 2);
    let data = app
        .ok(
            "/user/process_user_command_get",
            &fay,
            &json!({"userID": "fay", "type": 9}),
        )
        .await;
    assert_eq!(data, json!({"CommandResp": null}));
}

#[tokio::test]
async fn bad_command_requests_are_refused_and_write_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["fay", "gus"]).await;
    let fay = app.user_token(&admin, "fay", Platform::WEB).await;
    let before = app.user_events().await;
    let reply = app
        .post(
            "/user/process_user_command_add",
            Some(&fay),
            &json!({"userID": "gus", "type": 1, "uuid": "x"}),
        )
        .await;
    assert_eq!(
        reply,
        error(1002, "NoPermissionError", "fay may not act for gus")
    );
    let reply = app
        .post(
            "/user/process_user_command_add",
            Some(&fay),
            &json!({"userID": "fay", "type": 1, "uuid": ""}),
        )
        .await;
    assert_eq!(reply, error(1001, "ArgsError", "uuid is empty"));
    let reply = app
        .post(
            "/user/process_user_command_update",
            Some(&fay),
            &json!({"userID": "fay", "type": 1, "uuid": "missing"}),
        )
        .await;
    assert_eq!(
        reply,
        error(
            1004,
            "RecordNotFoundError",
            "fay has no command of type 1 with uuid \"missing\""
        )
    );
    let reply = app
        .post(
            "/user/process_user_command_delete",
            Some(&fay),
            &json!({"userID": "fay", "type": 1, "uuid": "missing"}),
        )
        .await;
    assert_eq!(reply["errCode"], 1004);
    let reply = app
        .post(
            "/user/process_user_command_add",
            Some(&fay),
            &json!({"userID": "fay", "type": "1", "uuid": "x"}),
        )
        .await;
    assert_eq!(reply["errCode"], 1001);
    assert_eq!(app.user_events().await, before);
}

#[tokio::test]
async fn client_config_is_app_wide_with_per_user_overrides() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["hal", "ivy"]).await;
    let hal = app.user_token(&admin, "hal", Platform::WEB).await;

    app.ok(
        "/user/set_user_client_config",
        &admin,
        &json!({"userID": "", "configs": {"theme": "light", "beta": "off"}}),
    )
    .await;
    app.ok(
        "/user/set_user_client_config",
        &admin,
        &json!({"userID": "hal", "configs": {"theme": "dark"}}),
    )
    .await;
    let data = app
        .ok(
            "/user/get_user_client_config",
            &hal,
            &json!({"userID": "hal"}),
        )
        .await;
    assert_eq!(data, json!({"configs": {"beta": "off", "theme": "dark"}}));

    app.ok(
        "/user/del_user_client_config",
        &admin,
        &json!({"userID": "", "keys": ["beta", "theme"]}),
    )
    .await;
    let data = app
        .ok(
            "/user/get_user_client_config",
            &admin,
            &json!({"userID": "ivy"}),
        )
        .await;
    assert_eq!(data, json!({}), "an empty map is left out, as Go does");

    let data = app
        .ok(
            "/user/page_user_client_config",
            &admin,
            &json!({"userID": "hal", "pagination": {"pageNumber": 1, "showNumber": 10}}),
        )
        .await;
    assert_eq!(
        data,
        json!({"total": 1, "configs": [{"key": "theme", "userID": "hal", "value": "dark"}]})
    );

    let reply = app
        .post(
            "/user/get_user_client_config",
            Some(&hal),
            &json!({"userID": "ivy"}),
        )
        .await;
    assert_eq!(reply["errCode"], 1002);
    let reply = app
        .post(
            "/user/set_user_client_config",
            Some(&hal),
            &json!({"userID": "hal", "configs": {"a": "b"}}),
        )
        .await;
    assert_eq!(reply["errCode"], 1002, "setting is for admins");
    let reply = app
        .post(
            "/user/set_user_client_config",
            Some(&admin),
            &json!({"userID": "hal", "configs": {}}),
        )
        .await;
    assert_eq!(reply, error(1001, "ArgsError", "configs is empty"));
    let reply = app
        .post(
            "/user/del_user_client_config",
            Some(&admin),
            &json!({"userID": "a:b", "keys": ["x"]}),
        )
        .await;
    assert_eq!(reply["errCode"], 1001);
}
