use jetim_common::auth::Platform;
use serde_json::{Value, json};

use crate::support::{TestApp, error};

const DONE: fn() -> Value = || json!({"errCode": 0, "errMsg": "", "errDlt": ""});

#[tokio::test]
async fn registering_users_then_reading_them_back() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let reply = app
        .post(
            "/user/user_register",
            Some(&admin),
            &json!({"users": [
                {"userID": "u1", "nickname": "Ann", "faceURL": "https://a/1.png", "ex": "{}"},
                {"userID": "u2", "nickname": "Ben", "globalRecvMsgOpt": 2}
            ]}),
        )
        .await;
    assert_eq!(reply, DONE());

    let data = app
        .ok(
            "/user/get_users_info",
            &admin,
            &json!({"userIDs": ["u2", "ghost", "u1"]}),
        )
        .await;
    let users = data["usersInfo"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    let created = users[0]["createTime"].as_i64().unwrap();
    assert!(created > 1_700_000_000_000, "milliseconds: {created}");
    assert_eq!(
        users[0],
        json!({"userID": "u2", "nickname": "Ben", "faceURL": "", "ex": "", "createTime": created,
               "appMangerLevel": 1, "globalRecvMsgOpt": 2})
    );
    assert_eq!(users[1]["userID"], "u1");
    assert_eq!(users[1]["faceURL"], "https://a/1.png");

    let data = app
        .ok(
            "/user/get_users_info",
            &admin,
            &json!({"userIDs": ["ghost"]}),
        )
        .await;
    assert_eq!(
        data,
        json!({"usersInfo": null}),
        "an empty list is null, as Go writes it"
    );
}

#[tokio::test]
async fn registering_a_taken_id_gets_1102_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["taken"]).await;
    let before = app.user_events().await;
    let reply = app
        .post(
            "/user/user_register",
            Some(&admin),
            &json!({"users": [{"userID": "fresh"}, {"userID": "taken"}]}),
        )
        .await;
    assert_eq!(
        reply,
        error(
            1102,
            "RegisteredAlreadyError",
            "userID \"taken\" is already registered"
        )
    );
    assert_eq!(
        app.user_events().await,
        before,
        "nothing written for the batch"
    );
}

#[tokio::test]
async fn two_concurrent_registrations_of_one_id_make_one_user_and_one_1102() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let body = json!({"users": [{"userID": "racer", "nickname": "first or second"}]});
    let (left, right) = tokio::join!(
        app.post("/user/user_register", Some(&admin), &body),
        app.post("/user/user_register", Some(&admin), &body)
    );
    let mut codes = [
        left["errCode"].as_i64().unwrap(),
        right["errCode"].as_i64().unwrap(),
    ];
    codes.sort_unstable();
    assert_eq!(codes, [0, 1102], "{left} {right}");
    assert_eq!(
        app.user_events().await,
        2,
        "the admin's registration and one for the racer"
    );
}

#[tokio::test]
async fn racing_batches_sharing_an_id_register_one_batch_whole_and_nothing_of_the_other() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    for round in 0..5 {
        let batch = |side: &str| {
            let mut users: Vec<Value> = (0..20)
                .map(|n| json!({"userID": format!("{side}{round}_{n}")}))
                .collect();
            users.insert(7, json!({"userID": format!("both{round}")}));
            json!({ "users": users })
        };
        let (left_batch, right_batch) = (batch("left"), batch("right"));
        let (left, right) = tokio::join!(
            app.post("/user/user_register", Some(&admin), &left_batch),
            app.post("/user/user_register", Some(&admin), &right_batch),
        );
        let (winner, loser) = match (left["errCode"].as_i64(), right["errCode"].as_i64()) {
            (Some(0), Some(1102)) => ("left", &right),
            (Some(1102), Some(0)) => ("right", &left),
            _ => panic!("round {round}: {left} {right}"),
        };
        assert_eq!(
            *loser,
            error(
                1102,
                "RegisteredAlreadyError",
                &format!("userID \"both{round}\" is already registered")
            ),
            "the shared ID is named"
        );
        let loser_side = if winner == "left" { "right" } else { "left" };
        let ids: Vec<String> = (0..20)
            .flat_map(|n| {
                [
                    format!("{winner}{round}_{n}"),
                    format!("{loser_side}{round}_{n}"),
                ]
            })
            .chain([format!("both{round}")])
            .collect();
        let reply = app
            .post(
                "/user/account_check",
                Some(&admin),
                &json!({ "checkUserIDs": ids }),
            )
            .await;
        let registered: Vec<&str> = reply["data"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|result| result["accountStatus"] == 1)
            .map(|result| result["userID"].as_str().unwrap())
            .collect();
        assert_eq!(registered.len(), 21, "round {round}: {reply}");
        assert!(
            registered.iter().all(|id| !id.starts_with(loser_side)),
            "round {round}: nothing of the losing batch: {registered:?}"
        );
    }
    assert_eq!(app.user_events().await, 1 + 5 * 21);
}

#[tokio::test]
async fn bad_registrations_get_1001_or_1002_and_write_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["member"]).await;
    let member = app.user_token(&admin, "member", Platform::WEB).await;
    let before = app.user_events().await;
    let cases = [
        (json!({"users": []}), "users.userID is empty"),
        (json!({}), "users.userID is empty"),
        (json!({"users": [{"userID": ""}]}), "users.userID is empty"),
        (
            json!({"users": [{"userID": "a:b"}]}),
            "users.userID \"a:b\" contains ':'",
        ),
        (
            json!({"users": [{"userID": "x".repeat(65)}]}),
            "users.userID is longer than 64 bytes",
        ),
        (
            json!({"users": [{"userID": "d"}, {"userID": "d"}]}),
            "users.userID names \"d\" twice",
        ),
        (
            json!({"users": [{"userID": "n", "nickname": "x".repeat(256)}]}),
            "nickname is longer than 255 bytes",
        ),
        (
            json!({"users": [{"userID": "o", "globalRecvMsgOpt": 7}]}),
            "globalRecvMsgOpt 7 is not 0 (receive), 1 (refuse) or 2 (receive silently)",
        ),
    ];
    for (body, detail) in cases {
        let reply = app.post("/user/user_register", Some(&admin), &body).await;
        assert_eq!(reply, error(1001, "ArgsError", detail), "{body}");
    }
    let reply = app
        .post(
            "/user/user_register",
            Some(&member),
            &json!({"users": [{"userID": "z"}]}),
        )
        .await;
    assert_eq!(reply["errCode"], 1002);
    let reply = app
        .post(
            "/user/user_register",
            Some(&admin),
            &json!({"users": [{"userID": 5}]}),
        )
        .await;
    assert_eq!(reply["errCode"], 1001);
    assert_eq!(app.user_events().await, before);
}

#[tokio::test]
async fn users_change_their_own_profile_and_nobody_elses() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["dora", "eve"]).await;
    let dora = app.user_token(&admin, "dora", Platform::WEB).await;

    let reply = app
        .post(
            "/user/update_user_info_ex",
            Some(&dora),
            &json!({"userInfo": {"userID": "dora", "nickname": "Dora", "ex": ""}}),
        )
        .await;
    assert_eq!(reply, DONE());
    let reply = app
        .post(
            "/user/update_user_info_ex",
            Some(&dora),
            &json!({"userInfo": {"userID": "eve", "nickname": "pwned"}}),
        )
        .await;
    assert_eq!(
        reply,
        error(1002, "NoPermissionError", "dora may not act for eve")
    );
    let reply = app
        .post(
            "/user/set_global_msg_recv_opt",
            Some(&dora),
            &json!({"userID": "eve", "globalRecvMsgOpt": 1}),
        )
        .await;
    assert_eq!(
        reply["errCode"], 1002,
        "upstream lets anyone do this; jetim does not"
    );
    app.ok(
        "/user/set_global_msg_recv_opt",
        &dora,
        &json!({"userID": "dora", "globalRecvMsgOpt": 1}),
    )
    .await;
    let reply = app
        .post(
            "/user/set_global_msg_recv_opt",
            Some(&dora),
            &json!({"userID": "dora", "globalRecvMsgOpt": 3}),
        )
        .await;
    assert_eq!(reply["errCode"], 1001);
    // The deprecated route leaves empty fields alone.
    app.ok(
        "/user/update_user_info",
        &admin,
        &json!({"userInfo": {"userID": "dora", "faceURL": "https://f"}}),
    )
    .await;
    let reply = app
        .post(
            "/user/update_user_info",
            Some(&admin),
            &json!({"userInfo": {"userID": "ghost", "nickname": "x"}}),
        )
        .await;
    assert_eq!(
        reply,
        error(
            1004,
            "RecordNotFoundError",
            "user \"ghost\" is not registered"
        )
    );

    let data = app
        .ok(
            "/user/get_users_info",
            &dora,
            &json!({"userIDs": ["dora", "eve"]}),
        )
        .await;
    assert_eq!(data["usersInfo"][0]["nickname"], "Dora");
    assert_eq!(data["usersInfo"][0]["faceURL"], "https://f");
    assert_eq!(data["usersInfo"][0]["globalRecvMsgOpt"], 1);
    assert_eq!(data["usersInfo"][1]["nickname"], "nick eve");
}

#[tokio::test]
async fn admins_list_and_check_accounts_with_pagination() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["p1", "p2", "p3"]).await;
    app.ok(
        "/user/user_register",
        &admin,
        &json!({"users": [{"userID": "bot", "appMangerLevel": 4, "nickname": "P-bot"}]}),
    )
    .await;
    let p1 = app.user_token(&admin, "p1", Platform::WEB).await;

    let data = app
        .ok(
            "/user/account_check",
            &admin,
            &json!({"checkUserIDs": ["p2", "nobody"]}),
        )
        .await;
    assert_eq!(
        data,
        json!({"results": [{"userID": "p2", "accountStatus": 1}, {"userID": "nobody", "accountStatus": 0}]})
    );

    let data = app
        .ok(
            "/user/get_all_users_uid",
            &admin,
            &json!({"pagination": {"pageNumber": 2, "showNumber": 2}}),
        )
        .await;
    assert_eq!(data["total"], 5, "three users, a robot and the admin");
    assert_eq!(data["userIDs"].as_array().unwrap().len(), 2);

    let data = app
        .ok(
            "/user/get_users",
            &admin,
            &json!({"pagination": {"pageNumber": 1, "showNumber": 10}, "nickName": "P"}),
        )
        .await;
    assert_eq!(data["total"], 3, "robots are not listed: {data}");

    for path in [
        "/user/account_check",
        "/user/get_all_users_uid",
        "/user/get_users",
    ] {
        let reply = app
            .post(
                path,
                Some(&p1),
                &json!({"checkUserIDs": ["p1"], "pagination": {"pageNumber": 1, "showNumber": 1}}),
            )
            .await;
        assert_eq!(reply["errCode"], 1002, "{path}: {reply}");
    }
    let reply = app
        .post(
            "/user/get_users",
            Some(&admin),
            &json!({"pagination": {"pageNumber": 0, "showNumber": 10}}),
        )
        .await;
    assert_eq!(
        reply,
        error(1001, "ArgsError", "pagination.pageNumber 0 is below 1")
    );
    let reply = app.post("/user/get_users", Some(&admin), &json!({})).await;
    assert_eq!(reply, error(1001, "ArgsError", "pagination is missing"));
}

#[tokio::test]
async fn rebuilding_the_users_projection_from_the_log_gives_the_same_rows() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["r1", "r2", "r3"]).await;
    for (user, nickname) in [("r1", "one"), ("r2", "two"), ("r1", "uno")] {
        app.ok(
            "/user/update_user_info_ex",
            &admin,
            &json!({"userInfo": {"userID": user, "nickname": nickname}}),
        )
        .await;
    }
    app.ok(
        "/user/set_global_msg_recv_opt",
        &admin,
        &json!({"userID": "r3", "globalRecvMsgOpt": 2}),
    )
    .await;

    // Replay the whole log into a fresh database, in small batches.
    let rebuilt = jetim_common::testing::TestDatabase::migrated().await;
    let mut projection = jetim_readmodel::users::UsersProjection::new(rebuilt.pool());
    let mut replay = jetim_streams::consume::Replay::start(
        &app.jetstream,
        "IM_USER",
        1,
        vec!["im.user.*.account".to_owned()],
    )
    .await
    .unwrap();
    let mut batch = Vec::new();
    while let Some(event) = replay.next().await {
        batch.push(event.unwrap());
        if batch.len() == 2 {
            jetim_streams::consume::BatchHandler::apply(&mut projection, &batch)
                .await
                .unwrap();
            batch.clear();
        }
    }
    jetim_streams::consume::BatchHandler::apply(&mut projection, &batch)
        .await
        .unwrap();
    // Applying everything a second time changes nothing.
    let rows = |pool: deadpool_postgres::Pool| async move {
        let client = pool.get().await.unwrap();
        client
            .query(
                "SELECT to_jsonb(u)::text FROM users_v1 u ORDER BY user_id",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    let live = rows(app.database.pool()).await;
    assert_eq!(live.len(), 4, "three users and the admin");
    assert_eq!(rows(rebuilt.pool()).await, live);
}

#[tokio::test]
async fn the_admin_is_a_registered_user_with_level_2() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    // Registered at start; the projector shows it within moments.
    let mut data = Value::Null;
    for _ in 0..100 {
        data = app
            .ok(
                "/user/get_users_info",
                &admin,
                &json!({"userIDs": ["imAdmin"]}),
            )
            .await;
        if !data["usersInfo"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(data["usersInfo"][0]["nickname"], "superAdmin");
    assert_eq!(data["usersInfo"][0]["appMangerLevel"], 2);
    let reply = app
        .post(
            "/user/user_register",
            Some(&admin),
            &json!({"users": [{"userID": "imAdmin"}]}),
        )
        .await;
    assert_eq!(reply["errCode"], 1102);
}

#[tokio::test]
async fn admins_add_update_and_search_notification_accounts() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let data = app
        .ok(
            "/user/add_notification_account",
            &admin,
            &json!({"userID": "news", "nickName": "Daily News", "faceURL": "https://n", "appMangerLevel": 3}),
        )
        .await;
    assert_eq!(
        data,
        json!({"userID": "news", "faceURL": "https://n", "nickName": "Daily News", "appMangerLevel": 3})
    );
    let data = app
        .ok(
            "/user/add_notification_account",
            &admin,
            &json!({"nickName": "Helper", "appMangerLevel": 4}),
        )
        .await;
    let generated = data["userID"].as_str().unwrap().to_owned();
    assert_eq!(generated.len(), 10);

    let reply = app
        .post(
            "/user/add_notification_account",
            Some(&admin),
            &json!({"userID": "news", "appMangerLevel": 3}),
        )
        .await;
    assert_eq!(reply["errCode"], 1102);
    let reply = app
        .post(
            "/user/add_notification_account",
            Some(&admin),
            &json!({"userID": "x", "appMangerLevel": 1}),
        )
        .await;
    assert_eq!(
        reply,
        error(
            1001,
            "ArgsError",
            "appMangerLevel 1 is not 3 (notification account) or 4 (robot)"
        )
    );

    app.ok(
        "/user/update_notification_account",
        &admin,
        &json!({"userID": "news", "nickName": "Evening News"}),
    )
    .await;
    app.register(&admin, &["plain"]).await;
    let reply = app
        .post(
            "/user/update_notification_account",
            Some(&admin),
            &json!({"userID": "plain", "nickName": "x"}),
        )
        .await;
    assert_eq!(
        reply,
        error(
            1004,
            "RecordNotFoundError",
            "\"plain\" is not a notification account"
        )
    );

    let page = json!({"pageNumber": 1, "showNumber": 10});
    let data = app
        .ok(
            "/user/search_notification_account",
            &admin,
            &json!({"keyword": "evening", "pagination": page}),
        )
        .await;
    assert_eq!(
        data,
        json!({"total": 1, "notificationAccounts": [
            {"userID": "news", "faceURL": "https://n", "nickName": "Evening News", "appMangerLevel": 3}
        ]})
    );
    let data = app
        .ok(
            "/user/search_notification_account",
            &admin,
            &json!({"appManagerLevel": 4, "pagination": page}),
        )
        .await;
    assert_eq!(
        data["notificationAccounts"][0]["userID"],
        generated.as_str()
    );
    let data = app
        .ok(
            "/user/search_notification_account",
            &admin,
            &json!({"keyword": "nobody", "pagination": page}),
        )
        .await;
    assert_eq!(data, json!({"total": 0, "notificationAccounts": null}));

    let plain = app.user_token(&admin, "plain", Platform::WEB).await;
    for path in [
        "/user/add_notification_account",
        "/user/update_notification_account",
        "/user/search_notification_account",
    ] {
        let reply = app
            .post(
                path,
                Some(&plain),
                &json!({"userID": "news", "appMangerLevel": 3, "pagination": page}),
            )
            .await;
        assert_eq!(reply["errCode"], 1002, "{path}");
    }
}

#[tokio::test]
async fn registration_statistics_count_per_day() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let start = super::support::now_millis() - 1000;
    app.register(&admin, &["s1", "s2"]).await;
    let end = super::support::now_millis() + 1000;
    let data = app
        .ok(
            "/statistics/user/register",
            &admin,
            &json!({"start": start, "end": end}),
        )
        .await;
    assert_eq!(data["total"], 3, "two users and the admin: {data}");
    let counted: i64 = data["count"]
        .as_object()
        .unwrap()
        .values()
        .map(|count| count.as_i64().unwrap())
        .sum();
    assert_eq!(counted + data["before"].as_i64().unwrap(), 3);
    assert!(counted >= 2);
    let day = data["count"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    assert_eq!(day.len(), 10, "YYYY-MM-DD: {day}");

    let data = app
        .ok(
            "/statistics/user/register",
            &admin,
            &json!({"start": 1, "end": 2}),
        )
        .await;
    assert_eq!(
        data,
        json!({"total": 3, "before": 0}),
        "no days in range: count left out"
    );
    let reply = app
        .post(
            "/statistics/user/register",
            Some(&admin),
            &json!({"start": 5, "end": 5}),
        )
        .await;
    assert_eq!(reply["errCode"], 1001);
    let s1 = app.user_token(&admin, "s1", Platform::WEB).await;
    let reply = app
        .post(
            "/statistics/user/register",
            Some(&s1),
            &json!({"start": 1, "end": 2}),
        )
        .await;
    assert_eq!(reply["errCode"], 1002);
}
