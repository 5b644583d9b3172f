//! `/friend/*`: requests, friendships, blocks, their notifications and incremental sync.

use std::time::Duration;

use futures::StreamExt as _;
use jetim_common::auth::Platform;
use jetim_messaging::service::{Caller, send};
use jetim_readmodel::send_facts::FactsReader;
use jetim_schemas::openim::sdkws::MsgData;
use serde_json::{Value, json};

use crate::support::{TestApp, error, next_push};

async fn nothing_pushed(subscriber: &mut async_nats::Subscriber) {
    let got = tokio::time::timeout(Duration::from_millis(300), subscriber.next()).await;
    assert!(got.is_err(), "no push expected");
}

/// A request as replies show it, with its times taken from `actual`.
fn request_json(
    actual: &Value,
    from: &str,
    to: &str,
    result: i32,
    messages: (&str, &str),
) -> Value {
    json!({
        "fromUserID": from, "fromNickname": format!("nick {from}"), "fromFaceURL": "",
        "toUserID": to, "toNickname": format!("nick {to}"), "toFaceURL": "",
        "handleResult": result, "reqMsg": messages.0, "createTime": actual["createTime"],
        "handlerUserID": if result == 0 { "" } else { to }, "handleMsg": messages.1,
        "handleTime": actual["handleTime"], "ex": ""
    })
}

#[tokio::test]
async fn an_accepted_request_makes_friends_both_ways_and_notifies_both() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["ann", "ben", "cid"]).await;
    let ann = app.user_token(&admin, "ann", Platform::WEB).await;
    let ben = app.user_token(&admin, "ben", Platform::WEB).await;
    let cid = app.user_token(&admin, "cid", Platform::WEB).await;
    let client = app.nats.client().await;
    let mut ann_pushes = client.subscribe("im.deliver.ann").await.unwrap();
    let mut ben_pushes = client.subscribe("im.deliver.ben").await.unwrap();
    client.flush().await.unwrap();

    app.ok(
        "/friend/add_friend",
        &ann,
        &json!({"fromUserID": "ann", "toUserID": "ben", "reqMsg": "hi ben"}),
    )
    .await;
    let (conversation, content_type, tips) = next_push(&mut ben_pushes).await;
    assert_eq!((conversation.as_str(), content_type), ("n_ann_ben", 1203));
    assert_eq!(
        tips["fromToUserID"],
        json!({"fromUserID": "ann", "toUserID": "ben"})
    );
    assert_eq!(tips["request"]["reqMsg"], "hi ben");
    assert_eq!(next_push(&mut ann_pushes).await.1, 1203, "sender sync");

    let received = app
        .ok(
            "/friend/get_friend_apply_list",
            &ben,
            &json!({"userID": "ben", "pagination": {"pageNumber": 1, "showNumber": 10}}),
        )
        .await;
    let first = &received["FriendRequests"][0];
    assert_eq!(
        received,
        json!({"FriendRequests": [request_json(first, "ann", "ben", 0, ("hi ben", ""))],
               "total": 1})
    );
    let sent = app
        .ok(
            "/friend/get_self_friend_apply_list",
            &ann,
            &json!({"userID": "ann", "pagination": {"pageNumber": 1, "showNumber": 10},
                    "handleResults": [0]}),
        )
        .await;
    assert_eq!(sent["total"], 1);
    assert_eq!(sent["friendRequests"][0]["toUserID"], "ben");
    let count = app
        .ok(
            "/friend/get_self_unhandled_apply_count",
            &ben,
            &json!({"userID": "ben", "time": 0}),
        )
        .await;
    assert_eq!(count, json!({"count": 1}));

    // Only the addressee answers, with 1 or -1.
    let answer = |result: i32| {
        json!({"fromUserID": "ann", "toUserID": "ben", "handleResult": result,
               "handleMsg": "welcome"})
    };
    let reply = app
        .post("/friend/add_friend_response", Some(&ann), &answer(1))
        .await;
    assert_eq!(reply["errCode"], 1002, "{reply}");
    let reply = app
        .post("/friend/add_friend_response", Some(&ben), &answer(2))
        .await;
    assert_eq!(
        reply,
        error(
            1001,
            "ArgsError",
            "handleResult 2 is not 1 (accept) or -1 (refuse)"
        )
    );
    app.ok("/friend/add_friend_response", &ben, &answer(1))
        .await;
    let (conversation, content_type, tips) = next_push(&mut ann_pushes).await;
    assert_eq!((conversation.as_str(), content_type), ("n_ann_ben", 1201));
    assert_eq!(tips["handleMsg"], "welcome");
    assert_eq!(tips["request"]["handleResult"], 1);
    // The chat the friendship opened lists the friendship with it (FriendInfoOnly).
    let listed = app
        .ok(
            "/jssdk/get_conversations",
            &ann,
            &json!({"ownerUserID": "ann", "conversationIDs": ["si_ann_ben"]}),
        )
        .await;
    let friend = &listed["conversations"][0]["friend"];
    assert_eq!(friend["ownerUserID"], "ann");
    assert_eq!(friend["friendUserID"], "ben");
    assert_eq!(listed["conversations"][0]["group"], Value::Null);
    let reply = app
        .post("/friend/add_friend_response", Some(&ben), &answer(1))
        .await;
    assert_eq!(
        reply,
        error(
            1001,
            "ArgsError",
            "the friend request from ann to ben is already handled"
        )
    );

    // The stored copy of 1201 opened the chat for both.
    for (token, user) in [(&ann, "ann"), (&ben, "ben")] {
        let mut seqs = Value::Null;
        for _ in 0..100 {
            seqs = app
                .ok("/msg/newest_seq", token, &json!({"userID": user}))
                .await;
            if seqs["maxSeqs"]["si_ann_ben"] == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(seqs["maxSeqs"]["si_ann_ben"], 1, "{user}: {seqs}");
    }
    let pulled = app
        .ok(
            "/msg/pull_msg_by_seq",
            &ann,
            &json!({"userID": "ann", "seqRanges": [
                {"conversationID": "si_ann_ben", "begin": 1, "end": 1, "num": 10}]}),
        )
        .await;
    let copy = &pulled["msgs"]["si_ann_ben"]["Msgs"][0];
    assert_eq!(
        (copy["contentType"].clone(), copy["sendID"].clone()),
        (json!(1201), json!("ben"))
    );

    let friends = app
        .ok(
            "/friend/get_friend_list",
            &ann,
            &json!({"userID": "ann", "pagination": {"pageNumber": 1, "showNumber": 10}}),
        )
        .await;
    let info = &friends["friendsInfo"][0];
    assert_eq!(
        friends,
        json!({"friendsInfo": [{
            "ownerUserID": "ann", "remark": "", "createTime": info["createTime"],
            "friendUser": {"userID": "ben", "nickname": "nick ben", "faceURL": "", "ex": "",
                           "createTime": info["friendUser"]["createTime"],
                           "appMangerLevel": 1, "globalRecvMsgOpt": 0},
            "addSource": 2, "operatorUserID": "ben", "ex": "", "isPinned": false}],
            "total": 1})
    );
    let both = app
        .ok(
            "/friend/is_friend",
            &ben,
            &json!({"userID1": "ann", "userID2": "ben"}),
        )
        .await;
    assert_eq!(
        both,
        json!({"inUser1Friends": true, "inUser2Friends": true})
    );
    let designated = app
        .ok(
            "/friend/get_designated_friend_apply",
            &ann,
            &json!({"fromUserID": "ann", "toUserID": "ben"}),
        )
        .await;
    let stored = &designated["friendRequests"][0];
    assert_eq!(
        designated,
        json!({"friendRequests": [request_json(stored, "ann", "ben", 1, ("hi ben", "welcome"))]})
    );

    // Refusals.
    let before = app.user_events().await;
    let cases = [
        (
            &ann,
            json!({"fromUserID": "ann", "toUserID": "ben"}),
            error(
                1304,
                "RelationshipAlreadyError",
                "ann and ben are already friends",
            ),
        ),
        (
            &ann,
            json!({"fromUserID": "ann", "toUserID": "ann"}),
            error(
                1301,
                "CanNotAddYourselfError",
                "a user cannot befriend themself",
            ),
        ),
        (
            &ann,
            json!({"fromUserID": "ann", "toUserID": "ghost"}),
            error(
                1101,
                "UserIDNotFoundError",
                "user \"ghost\" is not registered",
            ),
        ),
        (
            &ann,
            json!({"fromUserID": "cid", "toUserID": "ben"}),
            error(1002, "NoPermissionError", "ann may not act for cid"),
        ),
        (
            &ann,
            json!({"fromUserID": "ann", "toUserID": ""}),
            error(1001, "ArgsError", "toUserID is empty"),
        ),
        (
            &ann,
            json!({"fromUserID": "ann", "toUserID": "cid", "reqMsg": "x".repeat(256)}),
            error(1001, "ArgsError", "reqMsg is longer than 255 bytes"),
        ),
        (
            &ann,
            json!({"fromUserID": 7, "toUserID": "cid"}),
            json!(null),
        ),
    ];
    for (token, body, expected) in cases {
        let reply = app.post("/friend/add_friend", Some(token), &body).await;
        if expected.is_null() {
            assert_eq!(reply["errCode"], 1001, "wrong type: {reply}");
        } else {
            assert_eq!(reply, expected, "{body}");
        }
    }
    let reply = app
        .post(
            "/friend/add_friend_response",
            Some(&cid),
            &json!({"fromUserID": "ann", "toUserID": "cid", "handleResult": 1}),
        )
        .await;
    assert_eq!(
        reply,
        error(
            1004,
            "RecordNotFoundError",
            "cid has no friend request from ann"
        )
    );
    let reply = app
        .post(
            "/friend/is_friend",
            Some(&cid),
            &json!({"userID1": "ann", "userID2": "ben"}),
        )
        .await;
    assert_eq!(
        reply,
        error(1002, "NoPermissionError", "cid is neither ann nor ben")
    );
    let reply = app
        .post(
            "/friend/get_designated_friend_apply",
            Some(&cid),
            &json!({"fromUserID": "ann", "toUserID": "ben"}),
        )
        .await;
    assert_eq!(reply["errCode"], 1002);
    let reply = app
        .post(
            "/friend/get_friend_list",
            Some(&ann),
            &json!({"userID": "ann", "pagination": {"pageNumber": 0, "showNumber": 10}}),
        )
        .await;
    assert_eq!(
        reply,
        error(1001, "ArgsError", "pagination.pageNumber 0 is below 1")
    );
    let reply = app
        .post(
            "/friend/get_friend_apply_list",
            Some(&ann),
            &json!({"userID": "ann", "pagination": {"pageNumber": 1, "showNumber": 10},
                    "handleResults": [3]}),
        )
        .await;
    assert_eq!(
        reply,
        error(
            1001,
            "ArgsError",
            "handleResults holds 3; results are -1, 0 and 1"
        )
    );
    assert_eq!(app.user_events().await, before, "refusals write nothing");

    // A refusal: 1202, and no friendship.
    app.ok(
        "/friend/add_friend",
        &cid,
        &json!({"fromUserID": "cid", "toUserID": "ann"}),
    )
    .await;
    let _ = next_push(&mut ann_pushes).await;
    app.ok(
        "/friend/add_friend_response",
        &ann,
        &json!({"fromUserID": "cid", "toUserID": "ann", "handleResult": -1, "handleMsg": "no"}),
    )
    .await;
    let (_, content_type, tips) = next_push(&mut ann_pushes).await;
    assert_eq!(
        (content_type, tips["handleMsg"].clone()),
        (1202, json!("no"))
    );
    let both = app
        .ok(
            "/friend/is_friend",
            &ann,
            &json!({"userID1": "ann", "userID2": "cid"}),
        )
        .await;
    assert_eq!(
        both,
        json!({"inUser1Friends": false, "inUser2Friends": false})
    );
}

#[tokio::test]
async fn friend_changes_reach_the_version_log_and_deletes_are_one_sided() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["dan", "eve", "fay"]).await;
    let dan = app.user_token(&admin, "dan", Platform::WEB).await;
    let eve = app.user_token(&admin, "eve", Platform::WEB).await;

    let before = app.user_events().await;
    for (token, body, expected) in [
        (
            &dan,
            json!({"ownerUserID": "dan", "friendUserIDs": ["eve"]}),
            error(
                1002,
                "NoPermissionError",
                "only an admin may do this; dan is not one",
            ),
        ),
        (
            &admin,
            json!({"ownerUserID": "dan", "friendUserIDs": ["eve", "dan"]}),
            error(
                1301,
                "CanNotAddYourselfError",
                "a user cannot befriend themself",
            ),
        ),
        (
            &admin,
            json!({"ownerUserID": "dan", "friendUserIDs": ["eve", "eve"]}),
            error(1001, "ArgsError", "friendUserIDs names \"eve\" twice"),
        ),
        (
            &admin,
            json!({"ownerUserID": "dan", "friendUserIDs": ["ghost"]}),
            error(
                1101,
                "UserIDNotFoundError",
                "user \"ghost\" is not registered",
            ),
        ),
        (
            &admin,
            json!({"ownerUserID": "dan", "friendUserIDs": []}),
            error(1001, "ArgsError", "friendUserIDs is empty"),
        ),
    ] {
        let reply = app.post("/friend/import_friend", Some(token), &body).await;
        assert_eq!(reply, expected, "{body}");
    }
    assert_eq!(app.user_events().await, before);

    app.ok(
        "/friend/import_friend",
        &admin,
        &json!({"ownerUserID": "dan", "friendUserIDs": ["eve", "fay"]}),
    )
    .await;
    let incremental = |version_id: &Value, version: &Value| json!({"userID": "dan", "versionID": version_id, "version": version});
    let full = app
        .ok(
            "/friend/get_incremental_friends",
            &dan,
            &incremental(&json!(""), &json!(0)),
        )
        .await;
    assert_eq!(full["full"], true);
    assert_eq!(
        (
            full["insert"].clone(),
            full["update"].clone(),
            full["delete"].clone()
        ),
        (Value::Null, Value::Null, Value::Null)
    );
    let (version_id, version) = (full["versionID"].clone(), full["version"].clone());
    assert!(version.as_i64().unwrap() >= 1);
    let ids = app
        .ok(
            "/friend/get_full_friend_user_ids",
            &dan,
            &json!({"userID": "dan", "idHash": 0}),
        )
        .await;
    assert_eq!(ids["userIDs"], json!(["eve", "fay"]));
    assert_eq!(ids["equal"], false);
    let hash = jetim_api::routes::incremental::id_hash(&["eve".into(), "fay".into()]);
    let same = app
        .ok(
            "/friend/get_full_friend_user_ids",
            &dan,
            &json!({"userID": "dan", "idHash": hash}),
        )
        .await;
    assert_eq!(
        same,
        json!({"version": version, "versionID": version_id, "equal": true, "userIDs": null})
    );
    let unchanged = app
        .ok(
            "/friend/get_incremental_friends",
            &dan,
            &incremental(&version_id, &version),
        )
        .await;
    assert_eq!(
        unchanged,
        json!({"version": version, "versionID": version_id, "full": false, "delete": null,
               "insert": null, "update": null, "sortVersion": 0})
    );

    // A pin, a remark, a delete: each shows, and only the latest change of each friend.
    app.ok(
        "/friend/update_friends",
        &dan,
        &json!({"ownerUserID": "dan", "friendUserIDs": ["fay"], "isPinned": true}),
    )
    .await;
    app.ok(
        "/friend/set_friend_remark",
        &dan,
        &json!({"ownerUserID": "dan", "friendUserID": "eve", "remark": "Evie"}),
    )
    .await;
    let changed = app
        .ok(
            "/friend/get_incremental_friends",
            &dan,
            &incremental(&version_id, &version),
        )
        .await;
    assert_eq!(changed["full"], false);
    assert!(changed["sortVersion"].as_i64().unwrap() > version.as_i64().unwrap());
    let updated: Vec<(Value, Value, Value)> = changed["update"]
        .as_array()
        .unwrap()
        .iter()
        .map(|info| {
            (
                info["friendUser"]["userID"].clone(),
                info["remark"].clone(),
                info["isPinned"].clone(),
            )
        })
        .collect();
    assert_eq!(
        updated,
        vec![
            (json!("fay"), json!(""), json!(true)),
            (json!("eve"), json!("Evie"), json!(false)),
        ]
    );
    let page = app
        .ok(
            "/friend/get_friend_list",
            &dan,
            &json!({"userID": "dan", "pagination": {"pageNumber": 1, "showNumber": 1}}),
        )
        .await;
    assert_eq!(page["total"], 2);
    assert_eq!(
        page["friendsInfo"][0]["friendUser"]["userID"], "fay",
        "pinned first"
    );

    app.ok(
        "/friend/delete_friend",
        &dan,
        &json!({"ownerUserID": "dan", "friendUserID": "eve"}),
    )
    .await;
    let after_delete = app
        .ok(
            "/friend/get_incremental_friends",
            &dan,
            &incremental(&changed["versionID"], &changed["version"]),
        )
        .await;
    assert_eq!(after_delete["delete"], json!(["eve"]));
    assert_eq!(after_delete["update"], Value::Null);
    let eve_ids = app
        .ok("/friend/get_friend_id", &eve, &json!({"userID": "eve"}))
        .await;
    assert_eq!(
        eve_ids,
        json!({"friendIDs": ["dan"]}),
        "eve still lists dan"
    );
    let stale = app
        .ok(
            "/friend/get_incremental_friends",
            &dan,
            &incremental(&json!("another-log"), &version),
        )
        .await;
    assert_eq!(stale["full"], true, "another log ID means start over");

    let infos = app
        .ok(
            "/friend/get_specified_friends_info",
            &dan,
            &json!({"ownerUserID": "dan", "userIDList": ["eve", "fay", "ghost"]}),
        )
        .await;
    let infos = infos["infos"].as_array().unwrap();
    assert_eq!(infos.len(), 2, "unregistered users are left out");
    assert_eq!(infos[0]["userInfo"]["userID"], "eve");
    assert_eq!(infos[0]["friendInfo"], Value::Null);
    assert_eq!(infos[1]["friendInfo"]["isPinned"], true);
    assert_eq!(infos[1]["blackInfo"], Value::Null);
    let designated = app
        .ok(
            "/friend/get_designated_friends",
            &dan,
            &json!({"ownerUserID": "dan", "friendUserIDs": ["eve", "fay"]}),
        )
        .await;
    assert_eq!(designated["friendsInfo"].as_array().unwrap().len(), 1);

    let before = app.user_events().await;
    for (path, body, expected) in [
        (
            "/friend/delete_friend",
            json!({"ownerUserID": "dan", "friendUserID": "eve"}),
            error(1004, "RecordNotFoundError", "eve is not dan's friend"),
        ),
        (
            "/friend/update_friends",
            json!({"ownerUserID": "dan", "friendUserIDs": ["eve"], "ex": "x"}),
            error(1004, "RecordNotFoundError", "eve is not dan's friend"),
        ),
        (
            "/friend/update_friends",
            json!({"ownerUserID": "dan", "friendUserIDs": ["fay"]}),
            error(
                1001,
                "ArgsError",
                "nothing to update: isPinned, remark and ex are absent",
            ),
        ),
        (
            "/friend/set_friend_remark",
            json!({"ownerUserID": "dan", "friendUserID": "fay", "remark": "r".repeat(256)}),
            error(1001, "ArgsError", "remark is longer than 255 bytes"),
        ),
        (
            "/friend/set_friend_remark",
            json!({"ownerUserID": "eve", "friendUserID": "dan", "remark": "x"}),
            error(1002, "NoPermissionError", "dan may not act for eve"),
        ),
        (
            "/friend/get_designated_friends",
            json!({"ownerUserID": "dan", "friendUserIDs": ["fay", "fay"]}),
            error(1001, "ArgsError", "friendUserIDs names \"fay\" twice"),
        ),
        (
            "/friend/get_incremental_friends",
            json!({"userID": "eve", "versionID": "", "version": 0}),
            error(1002, "NoPermissionError", "dan may not act for eve"),
        ),
        (
            "/friend/get_full_friend_user_ids",
            json!({"userID": "dan", "idHash": -1}),
            json!(null),
        ),
    ] {
        let reply = app.post(path, Some(&dan), &body).await;
        if expected.is_null() {
            assert_eq!(reply["errCode"], 1001, "{path}: {reply}");
        } else {
            assert_eq!(reply, expected, "{path} {body}");
        }
    }
    assert_eq!(app.user_events().await, before, "refusals write nothing");
}

#[tokio::test]
async fn a_block_refuses_the_blocked_users_messages_and_is_told_to_the_owner_only() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["gus", "hal"]).await;
    let gus = app.user_token(&admin, "gus", Platform::WEB).await;
    let client = app.nats.client().await;
    let mut gus_pushes = client.subscribe("im.deliver.gus").await.unwrap();
    let mut hal_pushes = client.subscribe("im.deliver.hal").await.unwrap();
    client.flush().await.unwrap();
    let log = jetim_streams::EventLog::open(app.jetstream.clone())
        .await
        .unwrap();
    let pool = app.database.pool();
    let text = |from: &str, to: &str, id: &str| MsgData {
        send_id: from.into(),
        recv_id: to.into(),
        client_msg_id: id.into(),
        session_type: 1,
        content_type: 101,
        content: br#"{"content":"hey"}"#.to_vec(),
        ..MsgData::default()
    };

    app.ok(
        "/friend/add_black",
        &gus,
        &json!({"ownerUserID": "gus", "blackUserID": "hal", "ex": "spam"}),
    )
    .await;
    let (conversation, content_type, tips) = next_push(&mut gus_pushes).await;
    assert_eq!((conversation.as_str(), content_type), ("n_gus_hal", 1207));
    assert_eq!(
        tips,
        json!({"fromToUserID": {"fromUserID": "gus", "toUserID": "hal"}})
    );
    nothing_pushed(&mut hal_pushes).await;

    let refused = send(
        &log,
        &pool,
        &FactsReader::new(pool.clone()),
        &text("hal", "gus", "c1"),
        Caller::user("hal"),
        "op",
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(refused.code().number(), 1302);
    assert_eq!(refused.to_string(), "gus has blocked hal");
    let sent = send(
        &log,
        &pool,
        &FactsReader::new(pool.clone()),
        &text("gus", "hal", "c2"),
        Caller::user("gus"),
        "op",
    )
    .await
    .unwrap();
    assert!(sent.is_ok(), "the owner may still write");

    let blacks = app
        .ok(
            "/friend/get_black_list",
            &gus,
            &json!({"userID": "gus", "pagination": {"pageNumber": 1, "showNumber": 10}}),
        )
        .await;
    let created = blacks["blacks"][0]["createTime"].clone();
    let expected_black = json!({
        "ownerUserID": "gus", "createTime": created,
        "blackUserInfo": {"userID": "hal", "nickname": "nick hal", "faceURL": "", "ex": ""},
        "addSource": 0, "operatorUserID": "gus", "ex": "spam"});
    assert_eq!(blacks, json!({"blacks": [expected_black], "total": 1}));
    let specified = app
        .ok(
            "/friend/get_specified_blacks",
            &gus,
            &json!({"ownerUserID": "gus", "userIDList": ["hal", "gus"]}),
        )
        .await;
    assert_eq!(specified, json!({"blacks": [expected_black], "total": 1}));
    let full = app
        .ok(
            "/friend/get_incremental_blacks",
            &gus,
            &json!({"userID": "gus", "versionID": "", "version": 0}),
        )
        .await;
    assert_eq!(full["full"], true);
    assert!(
        full.get("sortVersion").is_none(),
        "blacks have no sort version"
    );

    let before = app.user_events().await;
    for (body, expected) in [
        (
            json!({"ownerUserID": "gus", "blackUserID": "gus"}),
            error(1001, "ArgsError", "a user cannot block themself"),
        ),
        (
            json!({"ownerUserID": "gus", "blackUserID": "ghost"}),
            error(
                1101,
                "UserIDNotFoundError",
                "user \"ghost\" is not registered",
            ),
        ),
        (
            json!({"ownerUserID": "hal", "blackUserID": "gus"}),
            error(1002, "NoPermissionError", "gus may not act for hal"),
        ),
        (
            json!({"ownerUserID": "gus", "blackUserID": "hal", "ex": "x".repeat(1025)}),
            error(1001, "ArgsError", "ex is longer than 1024 bytes"),
        ),
    ] {
        let reply = app.post("/friend/add_black", Some(&gus), &body).await;
        assert_eq!(reply, expected, "{body}");
    }
    assert_eq!(app.user_events().await, before);

    app.ok(
        "/friend/remove_black",
        &gus,
        &json!({"ownerUserID": "gus", "blackUserID": "hal"}),
    )
    .await;
    assert_eq!(next_push(&mut gus_pushes).await.1, 1208);
    let changed = app
        .ok(
            "/friend/get_incremental_blacks",
            &gus,
            &json!({"userID": "gus", "versionID": full["versionID"], "version": full["version"]}),
        )
        .await;
    assert_eq!(
        changed,
        json!({"version": full["version"].as_i64().unwrap() + 1,
               "versionID": full["versionID"], "full": false,
               "delete": ["hal"], "insert": null, "update": null})
    );
    let reply = app
        .post(
            "/friend/remove_black",
            Some(&gus),
            &json!({"ownerUserID": "gus", "blackUserID": "hal"}),
        )
        .await;
    assert_eq!(
        reply,
        error(1004, "RecordNotFoundError", "gus has not blocked hal")
    );
    let sent = send(
        &log,
        &pool,
        &FactsReader::new(pool.clone()),
        &text("hal", "gus", "c3"),
        Caller::user("hal"),
        "op",
    )
    .await
    .unwrap();
    assert!(sent.is_ok(), "unblocked: {sent:?}");
}

#[tokio::test]
async fn with_friend_verify_only_friends_may_write() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["ida", "jon"]).await;
    let log = jetim_streams::EventLog::open(app.jetstream.clone())
        .await
        .unwrap();
    let pool = app.database.pool();
    let message = MsgData {
        send_id: "ida".into(),
        recv_id: "jon".into(),
        client_msg_id: "c1".into(),
        session_type: 1,
        content_type: 101,
        content: br#"{"content":"hello"}"#.to_vec(),
        ..MsgData::default()
    };
    let facts = FactsReader::new(pool.clone());
    let strict = Caller {
        user_id: "ida",
        is_admin: false,
        friend_verify: true,
    };
    let refused = send(&log, &pool, &facts, &message, strict, "op")
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.code().number(), 1303);
    assert!(
        send(&log, &pool, &facts, &message, Caller::user("ida"), "op")
            .await
            .unwrap()
            .is_ok(),
        "without friend_verify anyone may write"
    );
    app.ok(
        "/friend/import_friend",
        &admin,
        &json!({"ownerUserID": "jon", "friendUserIDs": ["ida"]}),
    )
    .await;
    let mut second = message.clone();
    second.client_msg_id = "c2".into();
    assert!(
        send(&log, &pool, &facts, &second, strict, "op")
            .await
            .unwrap()
            .is_ok()
    );
}

#[tokio::test]
async fn a_profile_change_tells_the_user_and_reaches_the_friends_logs() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["kay", "lou"]).await;
    let kay = app.user_token(&admin, "kay", Platform::WEB).await;
    let lou = app.user_token(&admin, "lou", Platform::WEB).await;
    app.ok(
        "/friend/import_friend",
        &admin,
        &json!({"ownerUserID": "kay", "friendUserIDs": ["lou"]}),
    )
    .await;
    let client = app.nats.client().await;
    let mut kay_pushes = client.subscribe("im.deliver.kay").await.unwrap();
    let mut lou_pushes = client.subscribe("im.deliver.lou").await.unwrap();
    client.flush().await.unwrap();
    let log_of_lou = app
        .ok(
            "/friend/get_incremental_friends",
            &lou,
            &json!({"userID": "lou", "versionID": "", "version": 0}),
        )
        .await;

    app.ok(
        "/user/update_user_info_ex",
        &kay,
        &json!({"userInfo": {"userID": "kay", "nickname": "Kay K"}}),
    )
    .await;
    let (conversation, content_type, tips) = next_push(&mut kay_pushes).await;
    assert_eq!(
        (conversation.as_str(), content_type, tips),
        ("n_kay_kay", 1303, json!({"userID": "kay"}))
    );
    let (conversation, content_type, tips) = next_push(&mut lou_pushes).await;
    assert_eq!((conversation.as_str(), content_type), ("n_kay_lou", 1209));
    assert_eq!(
        tips["fromToUserID"],
        json!({"fromUserID": "kay", "toUserID": "lou"})
    );
    nothing_pushed(&mut kay_pushes).await;
    let changed = app
        .ok(
            "/friend/get_incremental_friends",
            &lou,
            &json!({"userID": "lou", "versionID": log_of_lou["versionID"],
                    "version": log_of_lou["version"]}),
        )
        .await;
    assert_eq!(changed["full"], false);
    assert_eq!(changed["update"][0]["friendUser"]["nickname"], "Kay K");

    // Only ex: the user is told, the friends' logs stay as they were.
    app.ok(
        "/user/update_user_info_ex",
        &kay,
        &json!({"userInfo": {"userID": "kay", "ex": "x"}}),
    )
    .await;
    assert_eq!(next_push(&mut kay_pushes).await.1, 1303);
    nothing_pushed(&mut lou_pushes).await;
    let again = app
        .ok(
            "/friend/get_incremental_friends",
            &lou,
            &json!({"userID": "lou", "versionID": changed["versionID"],
                    "version": changed["version"]}),
        )
        .await;
    assert_eq!(again["update"], Value::Null);
}
