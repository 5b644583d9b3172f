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

/// Polls `path` until `done` holds for its data (the projections run behind the routes).
async fn eventually(
    app: &TestApp,
    token: &str,
    path: &str,
    body: &Value,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut data = Value::Null;
    for _ in 0..100 {
        data = app.ok(path, token, body).await;
        if done(&data) {
            return data;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{path} never got there: {data}");
}

fn conversation_ids(all: &Value) -> Vec<String> {
    all["conversations"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|row| row["conversationID"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_deleted_conversation_leaves_the_list_until_a_newer_message_brings_it_back() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["ana", "ben", "eve"]).await;
    let send = json!({"sendID": "ana", "recvID": "ben", "sessionType": 1, "contentType": 101,
                      "content": {"content": "hi"}});
    app.ok("/msg/send_msg", &admin, &send).await;
    let ben = app.user_token(&admin, "ben", Platform::WEB).await;
    let eve = app.user_token(&admin, "eve", Platform::WEB).await;
    let all_of_ben = json!({"ownerUserID": "ben"});
    eventually(
        &app,
        &ben,
        "/conversation/get_all_conversations",
        &all_of_ben,
        |all| conversation_ids(all).len() == 2,
    )
    .await;
    let pin = json!({"userIDs": ["ben"], "conversation": {"conversationID": "si_ana_ben",
        "conversationType": 1, "userID": "ana", "isPinned": true}});
    let client = app.nats.client().await;
    let mut ben_pushes = client.subscribe("im.deliver.ben").await.unwrap();
    client.flush().await.unwrap();
    app.ok("/conversation/set_conversations", &ben, &pin).await;
    // Ben's other devices hear which conversation changed (1300, in his own n_).
    let pushed = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        futures::StreamExt::next(&mut ben_pushes),
    )
    .await
    .expect("a push")
    .unwrap();
    let pushed =
        <jetim_schemas::openim::sdkws::PushMessages as prost::Message>::decode(pushed.payload)
            .unwrap();
    let message = &pushed.notification_msgs["n_ben_ben"].msgs[0];
    assert_eq!(message.content_type, 1300);
    let content: Value = serde_json::from_slice(&message.content).unwrap();
    let tips: Value = serde_json::from_str(content["detail"].as_str().unwrap()).unwrap();
    assert_eq!(
        tips,
        json!({"userID": "ben", "conversationIDList": ["si_ana_ben"]})
    );
    let before = app
        .ok(
            "/conversation/get_incremental_conversations",
            &ben,
            &json!({"userID": "ben", "versionID": "", "version": 0}),
        )
        .await;

    let delete = |token: &str, body: Value| {
        let (app, token) = (&app, token.to_owned());
        async move {
            app.post("/conversation/delete_conversations", Some(&token), &body)
                .await
        }
    };
    for (body, expected) in [
        (
            json!({"ownerUserID": "ben"}),
            error(
                1001,
                "ArgsError",
                "set either needDeleteTime (days) or conversationIDs",
            ),
        ),
        (
            json!({"ownerUserID": "ben", "needDeleteTime": 1, "conversationIDs": ["si_ana_ben"]}),
            error(
                1001,
                "ArgsError",
                "needDeleteTime and conversationIDs cannot both be set",
            ),
        ),
        (
            json!({"ownerUserID": "ben", "needDeleteTime": -2}),
            error(
                1001,
                "ArgsError",
                "needDeleteTime -2 is negative; it is a number of days",
            ),
        ),
        (
            json!({"ownerUserID": "ben", "conversationIDs": ["si_ana_ben", "si_ana_ben"]}),
            error(
                1001,
                "ArgsError",
                "conversationIDs names \"si_ana_ben\" twice",
            ),
        ),
        (
            json!({"ownerUserID": "ben", "conversationIDs": ["si_ana_ben", "si_x_y"]}),
            error(
                1004,
                "RecordNotFoundError",
                "ben has no conversation si_x_y",
            ),
        ),
        (
            json!({"ownerUserID": "ben", "conversationIDs": "si_ana_ben"}),
            json!(1001),
        ),
    ] {
        let reply = delete(&ben, body.clone()).await;
        if expected.is_number() {
            assert_eq!(reply["errCode"], expected, "{body}: {reply}");
        } else {
            assert_eq!(reply, expected, "{body}");
        }
    }
    let reply = delete(
        &eve,
        json!({"ownerUserID": "ben", "conversationIDs": ["si_ana_ben"]}),
    )
    .await;
    assert_eq!(
        reply["errCode"], 1002,
        "eve cannot delete ben's rows: {reply}"
    );
    // Nothing is older than a day, so the age form deletes nothing.
    let reply = delete(&ben, json!({"ownerUserID": "ben", "needDeleteTime": 1})).await;
    assert_eq!(reply["errCode"], 0, "{reply}");
    let all = app
        .ok("/conversation/get_all_conversations", &ben, &all_of_ben)
        .await;
    assert_eq!(conversation_ids(&all), ["n_ana_ben", "si_ana_ben"]);

    let reply = delete(
        &ben,
        json!({"ownerUserID": "ben", "conversationIDs": ["si_ana_ben"]}),
    )
    .await;
    assert_eq!(reply["errCode"], 0, "{reply}");
    let all = app
        .ok("/conversation/get_all_conversations", &ben, &all_of_ben)
        .await;
    assert_eq!(conversation_ids(&all), ["n_ana_ben"]);
    let newest = app
        .ok("/msg/newest_seq", &ben, &json!({"userID": "ben"}))
        .await;
    assert_eq!(newest["maxSeqs"].get("si_ana_ben"), None, "{newest}");
    let pulled = app
        .ok(
            "/msg/pull_msg_by_seq",
            &ben,
            &json!({"userID": "ben", "seqRanges": [{"conversationID": "si_ana_ben", "begin": 1, "end": 1, "num": 1}]}),
        )
        .await;
    assert_eq!(
        pulled["msgs"]["si_ana_ben"]["Msgs"][0]["seq"], 1,
        "the messages stay pullable: {pulled}"
    );
    let changes = app
        .ok(
            "/conversation/get_incremental_conversations",
            &ben,
            &json!({"userID": "ben", "versionID": before["versionID"], "version": before["version"]}),
        )
        .await;
    assert_eq!(changes["full"], false, "{changes}");
    assert_eq!(changes["delete"], json!(["si_ana_ben"]), "{changes}");
    let reply = delete(
        &ben,
        json!({"ownerUserID": "ben", "conversationIDs": ["si_ana_ben"]}),
    )
    .await;
    assert_eq!(
        reply,
        error(
            1004,
            "RecordNotFoundError",
            "ben has no conversation si_ana_ben"
        ),
        "a deleted row is gone for the owner"
    );
    let peer = app
        .ok(
            "/conversation/get_all_conversations",
            &app.user_token(&admin, "ana", Platform::WEB).await,
            &json!({"ownerUserID": "ana"}),
        )
        .await;
    assert_eq!(
        conversation_ids(&peer),
        ["n_ana_ben", "si_ana_ben"],
        "the peer keeps theirs"
    );

    app.ok("/msg/send_msg", &admin, &send).await;
    let back = eventually(
        &app,
        &ben,
        "/conversation/get_all_conversations",
        &all_of_ben,
        |all| conversation_ids(all).len() == 2,
    )
    .await;
    let row = back["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["conversationID"] == "si_ana_ben")
        .unwrap();
    assert_eq!(row["isPinned"], false, "it comes back as a new row: {row}");
    let changes = app
        .ok(
            "/conversation/get_incremental_conversations",
            &ben,
            &json!({"userID": "ben", "versionID": before["versionID"], "version": before["version"]}),
        )
        .await;
    assert_eq!(changes["delete"], Value::Null, "{changes}");
    assert_eq!(
        changes["insert"][0]["conversationID"], "si_ana_ben",
        "{changes}"
    );
}

#[tokio::test]
async fn the_sorted_list_puts_pinned_first_then_the_newest_with_unread_counts() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["ana", "ben", "cy", "dee"]).await;
    let ben = app.user_token(&admin, "ben", Platform::WEB).await;
    let list = json!({"userID": "ben"});
    let reply = app
        .post(
            "/conversation/get_sorted_conversation_list",
            Some(&ben),
            &list,
        )
        .await;
    assert_eq!(
        reply,
        error(1004, "RecordNotFoundError", "ben has no conversations")
    );
    for (from, text) in [("ana", "one"), ("cy", "two"), ("ana", "three")] {
        app.ok(
            "/msg/send_msg",
            &admin,
            &json!({"sendID": from, "recvID": "ben", "sessionType": 1, "contentType": 101,
                    "content": {"content": text}}),
        )
        .await;
    }
    let quiet = json!({"userIDs": ["ben"], "conversation": {"conversationID": "si_ben_dee",
        "conversationType": 1, "userID": "dee"}});
    app.ok("/conversation/set_conversations", &ben, &quiet)
        .await;
    let sorted = eventually(
        &app,
        &ben,
        "/conversation/get_sorted_conversation_list",
        &list,
        |data| data["unreadTotal"] == 3,
    )
    .await;
    let order: Vec<&str> = sorted["conversationElems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|element| element["conversationID"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "si_ana_ben",
            "si_ben_cy",
            "n_ana_ben",
            "n_ben_cy",
            "si_ben_dee"
        ],
        "{sorted}"
    );
    assert_eq!(sorted["conversationTotal"], 5);
    let first = &sorted["conversationElems"][0];
    assert_eq!(first["unreadCount"], 2);
    assert_eq!(first["IsPinned"], false);
    assert_eq!(first["recvMsgOpt"], 0);
    let info = &first["msgInfo"];
    assert_eq!(
        (
            &info["sendID"],
            &info["recvID"],
            &info["senderName"],
            &info["sessionType"],
            &info["contentType"],
            &info["msgFrom"],
        ),
        (
            &json!("ana"),
            &json!("ben"),
            &json!("nick ana"),
            &json!(1),
            &json!(101),
            &json!(200)
        )
    );
    assert_eq!(info["content"], "{\"content\":\"three\"}");
    assert!(info["LatestMsgRecvTime"].as_i64().unwrap() > 0);
    assert_eq!(sorted["conversationElems"][4]["msgInfo"], Value::Null);

    let pin = json!({"userIDs": ["ben"], "conversation": {"conversationID": "si_ben_dee",
        "conversationType": 1, "userID": "dee", "isPinned": true}});
    app.ok("/conversation/set_conversations", &ben, &pin).await;
    let seqs = app
        .ok(
            "/msg/get_conversations_has_read_and_max_seq",
            &ben,
            &json!({"userID": "ben", "returnPinned": true}),
        )
        .await;
    assert_eq!(
        seqs["pinnedConversationIDs"],
        json!(["si_ben_dee"]),
        "{seqs}"
    );
    assert_eq!(seqs["seqs"]["si_ana_ben"]["maxSeq"], 2, "{seqs}");
    let page = app
        .ok(
            "/conversation/get_sorted_conversation_list",
            &ben,
            &json!({"userID": "ben", "conversationIDs": ["si_ben_dee", "si_ben_cy"],
                    "pagination": {"pageNumber": 1, "showNumber": 1}}),
        )
        .await;
    assert_eq!(page["conversationTotal"], 2);
    assert_eq!(page["unreadTotal"], 1);
    assert_eq!(
        page["conversationElems"][0]["conversationID"], "si_ben_dee",
        "pinned first, messages or not: {page}"
    );
    assert_eq!(page["conversationElems"].as_array().unwrap().len(), 1);

    let reply = app
        .post(
            "/conversation/get_sorted_conversation_list",
            Some(&ben),
            &json!({"userID": "ben", "pagination": {"pageNumber": 0, "showNumber": 1}}),
        )
        .await;
    assert_eq!(
        reply,
        error(1001, "ArgsError", "pagination.pageNumber 0 is below 1")
    );
    let reply = app
        .post(
            "/conversation/get_sorted_conversation_list",
            Some(&ben),
            &json!({"userID": "ana"}),
        )
        .await;
    assert_eq!(reply["errCode"], 1002);
}
