//! Conversation rows and settings.

use jetim_common::auth::Platform;
use serde_json::{Value, json};

use crate::support::{TestApp, error};

#[tokio::test]
async fn the_first_message_makes_rows_and_owners_change_their_settings() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["ana", "ben", "eve"]).await;
    app.ok(
        "/msg/send_msg",
        &admin,
        &json!({"sendID": "ana", "recvID": "ben", "sessionType": 1, "contentType": 101,
                "content": {"content": "hi"}}),
    )
    .await;
    let ben = app.user_token(&admin, "ben", Platform::WEB).await;
    let eve = app.user_token(&admin, "eve", Platform::WEB).await;

    let mut all = Value::Null;
    for _ in 0..100 {
        all = app
            .ok(
                "/conversation/get_all_conversations",
                &ben,
                &json!({"ownerUserID": "ben"}),
            )
            .await;
        if all["conversations"]
            .as_array()
            .is_some_and(|rows| rows.len() == 2)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        all["conversations"][1],
        json!({"ownerUserID": "ben", "conversationID": "si_ana_ben", "recvMsgOpt": 0,
               "conversationType": 1, "userID": "ana", "groupID": "", "isPinned": false,
               "attachedInfo": "", "isPrivateChat": false, "groupAtType": 0, "ex": "",
               "burnDuration": 0, "minSeq": 0, "maxSeq": 0, "msgDestructTime": 0,
               "latestMsgDestructTime": 0, "isMsgDestruct": false})
    );
    assert_eq!(all["conversations"][0]["conversationID"], "n_ana_ben");

    let set = |token: &str, body: Value| {
        let (app, token) = (&app, token.to_owned());
        async move {
            app.post("/conversation/set_conversations", Some(&token), &body)
                .await
        }
    };
    let pin = json!({"userIDs": ["ben"], "conversation": {"conversationID": "si_ana_ben",
        "conversationType": 1, "userID": "ana", "isPinned": true, "recvMsgOpt": 2}});
    assert_eq!(set(&ben, pin).await["errCode"], 0);
    let only_ex = json!({"userIDs": ["ben"], "conversation": {"conversationID": "si_ana_ben",
        "conversationType": 1, "userID": "ana", "ex": "e"}});
    assert_eq!(set(&ben, only_ex).await["errCode"], 0);
    let ids = |path: &'static str| {
        let (app, ben) = (&app, ben.clone());
        async move { app.ok(path, &ben, &json!({"userID": "ben"})).await }
    };
    assert_eq!(
        ids("/conversation/get_pinned_conversation_ids").await,
        json!({"conversationIDs": ["si_ana_ben"]}),
        "a later change leaves unnamed settings alone"
    );
    assert_eq!(
        ids("/conversation/get_not_notify_conversation_ids").await,
        json!({"conversationIDs": ["si_ana_ben"]})
    );
    let one = app
        .ok(
            "/conversation/get_conversation",
            &ben,
            &json!({"ownerUserID": "ben", "conversationID": "si_ana_ben"}),
        )
        .await;
    assert_eq!(one["conversation"]["ex"], "e");
    assert_eq!(one["conversation"]["isPinned"], true);

    // A row for a conversation that has no messages yet.
    let new_row = json!({"userIDs": ["ben"], "conversation": {"conversationID": "si_ben_eve",
        "conversationType": 1, "userID": "eve"}});
    assert_eq!(set(&ben, new_row).await["errCode"], 0);
    let page = app
        .ok(
            "/conversation/get_owner_conversation",
            &ben,
            &json!({"userID": "ben", "pagination": {"pageNumber": 1, "showNumber": 2}}),
        )
        .await;
    assert_eq!(page["total"], 3);
    assert_eq!(page["conversations"].as_array().unwrap().len(), 2);

    app.ok(
        "/conversation/update_conversations_by_user",
        &ben,
        &json!({"userID": "ben", "ex": "all"}),
    )
    .await;
    let all = app
        .ok(
            "/conversation/get_all_conversations",
            &ben,
            &json!({"ownerUserID": "ben"}),
        )
        .await;
    assert!(
        all["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|row| row["ex"] == "all"),
        "{all}"
    );

    // Nobody claims someone else's conversation, or acts for someone else.
    let steal = json!({"userIDs": ["eve"], "conversation": {"conversationID": "si_ana_ben",
        "conversationType": 1, "userID": "ana"}});
    assert_eq!(
        set(&eve, steal).await,
        error(
            1001,
            "ArgsError",
            "conversationID \"si_ana_ben\" is not eve's conversation with \"ana\" (that is si_ana_eve)"
        )
    );
    let for_ben = json!({"userIDs": ["ben"], "conversation": {"conversationID": "si_ana_ben",
        "conversationType": 1, "userID": "ana", "isPinned": false}});
    assert_eq!(set(&eve, for_ben).await["errCode"], 1002);
    let bad_option = json!({"userIDs": ["ben"], "conversation": {"conversationID": "si_ana_ben",
        "conversationType": 1, "userID": "ana", "recvMsgOpt": 5}});
    assert_eq!(
        set(&ben, bad_option).await,
        error(1001, "ArgsError", "recvMsgOpt 5 is not 0, 1 or 2")
    );
    let reply = app
        .post(
            "/conversation/get_conversation",
            Some(&ben),
            &json!({"ownerUserID": "ben", "conversationID": "si_x_y"}),
        )
        .await;
    assert_eq!(
        reply,
        error(
            1004,
            "RecordNotFoundError",
            "ben has no conversation si_x_y"
        )
    );
    let reply = app
        .post(
            "/conversation/get_all_conversations",
            Some(&eve),
            &json!({"ownerUserID": "ben"}),
        )
        .await;
    assert_eq!(reply["errCode"], 1002);
    let pulled = app
        .ok(
            "/msg/pull_msg_by_seq",
            &eve,
            &json!({"userID": "eve", "seqRanges": [{"conversationID": "si_ana_ben", "begin": 1, "end": 1, "num": 1}]}),
        )
        .await;
    assert_eq!(pulled, json!({}), "eve still cannot read it");
}

#[tokio::test]
async fn incremental_sync_sends_exactly_the_changes_after_the_clients_version() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["ida", "jon", "kai"]).await;
    let ida = app.user_token(&admin, "ida", Platform::WEB).await;
    let sync = |version_id: &str, version: i64| {
        let (app, ida, version_id) = (&app, ida.clone(), version_id.to_owned());
        async move {
            app.ok(
                "/conversation/get_incremental_conversations",
                &ida,
                &json!({"userID": "ida", "versionID": version_id, "version": version}),
            )
            .await
        }
    };
    let first = sync("", 0).await;
    assert_eq!(
        first["full"], true,
        "a client with nothing gets full: {first}"
    );

    app.ok(
        "/msg/send_msg",
        &admin,
        &json!({"sendID": "jon", "recvID": "ida", "sessionType": 1, "contentType": 101,
                "content": {"content": "hi"}}),
    )
    .await;
    let mut log = Value::Null;
    for _ in 0..100 {
        log = sync("", 0).await;
        if log["version"].as_i64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let version_id = log["versionID"].as_str().unwrap().to_owned();
    let version = log["version"].as_i64().unwrap();
    assert_eq!(log["full"], true);
    assert_eq!(log["insert"], Value::Null, "full answers carry no lists");

    let unchanged = sync(&version_id, version).await;
    assert_eq!(
        unchanged,
        json!({"version": version, "versionID": version_id, "full": false,
               "delete": null, "insert": null, "update": null})
    );

    app.ok(
        "/conversation/set_conversations",
        &ida,
        &json!({"userIDs": ["ida"], "conversation": {"conversationID": "si_ida_jon",
                "conversationType": 1, "userID": "jon", "isPinned": true}}),
    )
    .await;
    app.ok(
        "/conversation/set_conversations",
        &ida,
        &json!({"userIDs": ["ida"], "conversation": {"conversationID": "si_ida_kai",
                "conversationType": 1, "userID": "kai"}}),
    )
    .await;
    let delta = sync(&version_id, version).await;
    assert_eq!(delta["full"], false, "{delta}");
    assert_eq!(delta["version"], version + 2);
    assert_eq!(delta["update"].as_array().unwrap().len(), 1);
    assert_eq!(delta["update"][0]["conversationID"], "si_ida_jon");
    assert_eq!(delta["update"][0]["isPinned"], true);
    assert_eq!(delta["insert"][0]["conversationID"], "si_ida_kai");
    assert_eq!(delta["delete"], Value::Null);

    assert_eq!(sync("another-log", version).await["full"], true);
    assert_eq!(sync(&version_id, version + 100).await["full"], true);

    let ids = app
        .ok(
            "/conversation/get_full_conversation_ids",
            &ida,
            &json!({"userID": "ida", "idHash": 0}),
        )
        .await;
    assert_eq!(ids["equal"], false);
    assert_eq!(
        ids["conversationIDs"],
        json!(["n_ida_jon", "si_ida_jon", "si_ida_kai"])
    );
    assert_eq!(ids["version"], version + 2);
}
