use futures::StreamExt as _;
use jetim_common::auth::Platform;
use serde_json::{Value, json};

use crate::support::{ADMIN, SECRET, TestApp, error};

#[tokio::test]
async fn the_admin_gets_a_90_day_token_with_the_secret() {
    let app = TestApp::spawn().await;
    let reply = app
        .post(
            "/auth/get_admin_token",
            None,
            &json!({"secret": SECRET, "userID": ADMIN}),
        )
        .await;
    assert_eq!(reply["errCode"], 0);
    assert_eq!(reply["errMsg"], "");
    assert_eq!(reply["errDlt"], "");
    assert_eq!(reply["data"]["expireTimeSeconds"], 7_776_000);
    let token = reply["data"]["token"].as_str().unwrap();
    assert_eq!(reply["data"].as_object().unwrap().len(), 2);

    let parsed = app
        .post("/auth/parse_token", None, &json!({"token": token}))
        .await;
    assert_eq!(parsed["data"]["userID"], ADMIN);
    assert_eq!(parsed["data"]["platformID"], 10);
    let expiry = parsed["data"]["expireTimeSeconds"].as_i64().unwrap();
    let now = jetim_common::auth::now_seconds();
    assert!((now + 7_776_000 - 10..=now + 7_776_000).contains(&expiry));
}

#[tokio::test]
async fn a_wrong_secret_or_a_non_admin_gets_no_admin_token() {
    let app = TestApp::spawn().await;
    let reply = app
        .post(
            "/auth/get_admin_token",
            None,
            &json!({"secret": "guess", "userID": ADMIN}),
        )
        .await;
    assert_eq!(
        reply,
        error(1002, "NoPermissionError", "the secret is wrong")
    );
    let reply = app
        .post(
            "/auth/get_admin_token",
            None,
            &json!({"secret": SECRET, "userID": "mallory"}),
        )
        .await;
    assert_eq!(
        reply,
        error(1001, "ArgsError", "userID \"mallory\" is not an admin")
    );
}

#[tokio::test]
async fn user_tokens_need_an_admin_a_registered_user_and_a_real_platform() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["alice"]).await;
    let alice = app.user_token(&admin, "alice", Platform::WEB).await;

    let ask = |token: String, user: &'static str, platform: i32| {
        let app = &app;
        async move {
            app.post(
                "/auth/get_user_token",
                Some(&token),
                &json!({"platformID": platform, "userID": user}),
            )
            .await
        }
    };
    assert_eq!(
        ask(alice.clone(), "alice", 1).await,
        error(
            1002,
            "NoPermissionError",
            "only an admin may do this; alice is not one"
        )
    );
    assert_eq!(
        ask(admin.clone(), "nobody", 5).await,
        error(
            1004,
            "RecordNotFoundError",
            "user \"nobody\" is not registered"
        )
    );
    assert_eq!(
        ask(admin.clone(), "alice", 12).await,
        error(1001, "ArgsError", "platformID 12 is not a platform (1-11)")
    );
    assert_eq!(ask(admin.clone(), "alice", 10).await["errCode"], 1002);
    assert_eq!(ask(admin.clone(), ADMIN, 5).await["errCode"], 1002);

    let reply = ask(admin.clone(), "alice", 2).await;
    assert_eq!(reply["data"]["expireTimeSeconds"], 7_776_000);
}

#[tokio::test]
async fn notification_accounts_cannot_log_in() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.ok(
        "/user/user_register",
        &admin,
        &json!({"users": [{"userID": "news", "appMangerLevel": 3}]}),
    )
    .await;
    let reply = app
        .post(
            "/auth/get_user_token",
            Some(&admin),
            &json!({"platformID": 5, "userID": "news"}),
        )
        .await;
    assert_eq!(reply["errCode"], 1001, "{reply}");
}

#[tokio::test]
async fn a_second_login_on_the_same_platform_kicks_the_first_token() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["bob"]).await;
    let first = app.user_token(&admin, "bob", Platform::WEB).await;
    let on_phone = app.user_token(&admin, "bob", Platform::IOS).await;
    let second = app.user_token(&admin, "bob", Platform::WEB).await;
    let body = json!({"userIDs": ["bob"]});
    assert_eq!(
        app.post("/user/get_users_info", Some(&first), &body).await,
        error(1506, "TokenKickedError", "token has been kicked")
    );
    app.ok("/user/get_users_info", &second, &body).await;
    app.ok("/user/get_users_info", &on_phone, &body).await;
}

#[tokio::test]
async fn force_logout_kicks_every_token_of_that_platform_at_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["carol"]).await;
    let web = app.user_token(&admin, "carol", Platform::WEB).await;
    let ios = app.user_token(&admin, "carol", Platform::IOS).await;

    let reply = app
        .post(
            "/auth/force_logout",
            Some(&ios),
            &json!({"platformID": 5, "userID": "carol"}),
        )
        .await;
    assert_eq!(reply["errCode"], 1002, "only an admin: {reply}");

    // The gateways hear of it on the user's session subject.
    let client = app.nats.client().await;
    let mut session = client.subscribe("im.session.carol").await.unwrap();
    client.flush().await.unwrap();
    let reply = app
        .post(
            "/auth/force_logout",
            Some(&admin),
            &json!({"platformID": 5, "userID": "carol"}),
        )
        .await;
    assert_eq!(reply, json!({"errCode": 0, "errMsg": "", "errDlt": ""}));
    let announced = tokio::time::timeout(std::time::Duration::from_secs(5), session.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&announced.payload).unwrap(),
        json!({"kind": "force_logout", "platform_id": 5})
    );
    let body = json!({"userIDs": ["carol"]});
    assert_eq!(
        app.post("/user/get_users_info", Some(&web), &body).await["errCode"],
        1506
    );
    app.ok("/user/get_users_info", &ios, &body).await;
    let parsed = app
        .post("/auth/parse_token", None, &json!({"token": web}))
        .await;
    assert_eq!(parsed["errCode"], 1506);
}
