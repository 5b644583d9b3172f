//! Sending, max seqs and pulls.

use base64::Engine as _;
use jetim_common::auth::Platform;
use serde_json::{Value, json};

use crate::support::{TestApp, error};

impl TestApp {
    async fn send_text(&self, admin: &str, from: &str, to: &str, text: &str) -> Value {
        self.ok(
            "/msg/send_msg",
            admin,
            &json!({"sendID": from, "recvID": to, "sessionType": 1, "contentType": 101,
                    "content": {"content": text}, "senderPlatformID": 5}),
        )
        .await
    }

    /// The user's max seqs once the messages projection has applied everything appended so
    /// far and shows at least `expected` entries.
    async fn newest_seqs(&self, token: &str, user: &str, expected: usize) -> Value {
        self.messages_caught_up().await;
        let mut data = Value::Null;
        for _ in 0..100 {
            data = self
                .ok("/msg/newest_seq", token, &json!({"userID": user}))
                .await;
            let seen = data["maxSeqs"].as_object().map_or(0, serde_json::Map::len);
            if seen >= expected {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        data
    }
}

#[tokio::test]
async fn a_sent_message_gets_seq_1_and_both_sides_can_pull_it() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["alice", "bob"]).await;
    let sent = app.send_text(&admin, "alice", "bob", "hi bob").await;
    let server_msg_id = sent["serverMsgID"].as_str().unwrap();
    assert_eq!(server_msg_id.len(), 32);
    assert!(server_msg_id.bytes().all(|byte| byte.is_ascii_hexdigit()));
    assert_eq!(sent["clientMsgID"].as_str().unwrap().len(), 32);
    assert!(sent["sendTime"].as_i64().unwrap() > 1_700_000_000_000);

    let bob = app.user_token(&admin, "bob", Platform::WEB).await;
    // Bob has the chat and its n_ twin; the twin has no messages, so only the chat is listed.
    let seqs = app.newest_seqs(&bob, "bob", 1).await;
    assert_eq!(seqs, json!({"maxSeqs": {"si_alice_bob": 1}}));

    let pulled = app
        .ok(
            "/msg/pull_msg_by_seq",
            &bob,
            &json!({"userID": "bob", "seqRanges": [{"conversationID": "si_alice_bob", "begin": 1, "end": 1, "num": 10}]}),
        )
        .await;
    let conversation = &pulled["msgs"]["si_alice_bob"];
    assert_eq!(conversation["isEnd"], true);
    assert_eq!(conversation["endSeq"], 0);
    let message = &conversation["Msgs"][0];
    assert_eq!(message["seq"], 1);
    assert_eq!(message["status"], 2);
    assert_eq!(message["sendID"], "alice");
    assert_eq!(message["recvID"], "bob");
    assert_eq!(message["sessionType"], 1);
    assert_eq!(message["msgFrom"], 200);
    assert_eq!(message["serverMsgID"], server_msg_id);
    assert_eq!(message["atUserIDList"], Value::Null);
    let content = base64::engine::general_purpose::STANDARD
        .decode(message["content"].as_str().unwrap())
        .unwrap();
    assert_eq!(content, br#"{"content":"hi bob"}"#);
    assert_eq!(
        message.as_object().unwrap().len(),
        21,
        "every MsgData field: {message}"
    );
}

#[tokio::test]
async fn seqs_run_gapless_and_a_pull_returns_the_newest_num() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["ann", "ben"]).await;
    for index in 0..5 {
        let from = if index % 2 == 0 { "ann" } else { "ben" };
        let to = if from == "ann" { "ben" } else { "ann" };
        app.send_text(&admin, from, to, &format!("message {index}"))
            .await;
    }
    let ann = app.user_token(&admin, "ann", Platform::WEB).await;
    let seqs = app.newest_seqs(&ann, "ann", 1).await;
    assert_eq!(seqs["maxSeqs"]["si_ann_ben"], 5);

    let pulled = app
        .ok(
            "/msg/pull_msg_by_seq",
            &ann,
            &json!({"userID": "ann", "seqRanges": [{"conversationID": "si_ann_ben", "begin": 1, "end": 100, "num": 2}]}),
        )
        .await;
    let seqs: Vec<i64> = pulled["msgs"]["si_ann_ben"]["Msgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [4, 5], "the newest num of the clamped range");
    assert_eq!(pulled["msgs"]["si_ann_ben"]["isEnd"], true);

    let pulled = app
        .ok(
            "/msg/pull_msg_by_seq",
            &ann,
            &json!({"userID": "ann", "order": 1, "seqRanges": [{"conversationID": "si_ann_ben", "begin": 2, "end": 3, "num": 10}]}),
        )
        .await;
    let seqs: Vec<i64> = pulled["msgs"]["si_ann_ben"]["Msgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 2], "descending order");
    assert_eq!(pulled["msgs"]["si_ann_ben"]["isEnd"], false);
}

#[tokio::test]
async fn nobody_reads_a_conversation_they_are_not_in() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["amy", "bill", "eve"]).await;
    app.send_text(&admin, "amy", "bill", "secret").await;
    let eve = app.user_token(&admin, "eve", Platform::WEB).await;
    let _ = app.newest_seqs(&admin, "amy", 1).await;
    let pulled = app
        .ok(
            "/msg/pull_msg_by_seq",
            &eve,
            &json!({"userID": "eve", "seqRanges": [{"conversationID": "si_amy_bill", "begin": 1, "end": 10, "num": 10}]}),
        )
        .await;
    assert_eq!(pulled, json!({}));
    let reply = app
        .post(
            "/msg/pull_msg_by_seq",
            Some(&eve),
            &json!({"userID": "amy", "seqRanges": []}),
        )
        .await;
    assert_eq!(
        reply,
        error(1002, "NoPermissionError", "eve may not act for amy")
    );
    let reply = app
        .post("/msg/newest_seq", Some(&eve), &json!({"userID": "amy"}))
        .await;
    assert_eq!(reply["errCode"], 1002);
}

#[tokio::test]
async fn bad_sends_and_pulls_get_openim_errors_and_write_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["kim", "lee"]).await;
    let kim = app.user_token(&admin, "kim", Platform::WEB).await;
    let text = |to: &str| {
        json!({"sendID": "kim", "recvID": to, "sessionType": 1, "contentType": 101,
               "content": {"content": "x"}})
    };
    let cases = [
        (text("ghost"), 1101, "receiver \"ghost\" is not registered"),
        (
            json!({"sendID": "kim", "groupID": "g1", "sessionType": 3, "contentType": 101, "content": {"content": "x"}}),
            1201,
            "group \"g1\" does not exist",
        ),
        (
            json!({"sendID": "kim", "recvID": "lee", "sessionType": 2, "contentType": 101, "content": {"content": "x"}}),
            1001,
            "unknown sessionType 2",
        ),
        (
            json!({"sendID": "kim", "recvID": "lee", "sessionType": 1, "contentType": 101, "content": {"text": "x"}}),
            1001,
            "text content has no content",
        ),
        (
            json!({"sendID": "kim", "recvID": "lee", "sessionType": 1, "contentType": 999, "content": {}}),
            1001,
            "contentType 999 cannot be sent through /msg/send_msg",
        ),
        (
            json!({"sendID": "nobody", "recvID": "lee", "sessionType": 1, "contentType": 101, "content": {"content": "x"}}),
            1101,
            "sender \"nobody\" is not registered",
        ),
    ];
    for (body, code, detail) in cases {
        let reply = app.post("/msg/send_msg", Some(&admin), &body).await;
        assert_eq!(reply["errCode"], code, "{body}: {reply}");
        assert_eq!(reply["errDlt"], detail, "{body}");
    }
    let reply = app.post("/msg/send_msg", Some(&kim), &text("lee")).await;
    assert_eq!(reply["errCode"], 1002, "REST send is for admins: {reply}");

    for (range, detail) in [
        (
            json!({"conversationID": "si_kim_lee", "begin": 1, "end": 5, "num": 0}),
            "seqRanges.num 0 for si_kim_lee is not between 1 and 1000",
        ),
        (
            json!({"conversationID": "si_kim_lee", "begin": 9, "end": 5, "num": 5}),
            "seqRanges for si_kim_lee runs backwards or below 0 (9 .. 5)",
        ),
        (
            json!({"begin": 1, "end": 5, "num": 5}),
            "seqRanges.conversationID is empty",
        ),
    ] {
        let reply = app
            .post(
                "/msg/pull_msg_by_seq",
                Some(&kim),
                &json!({"userID": "kim", "seqRanges": [range]}),
            )
            .await;
        assert_eq!(reply, error(1001, "ArgsError", detail));
    }
    let mut stream = app.jetstream.get_stream("IM_CONV").await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        0,
        "nothing written"
    );
}

#[tokio::test]
async fn a_resend_with_the_same_client_msg_id_returns_the_original_even_after_the_dedup_window() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["rex", "sue"]).await;
    let log = jetim_streams::EventLog::open(app.jetstream.clone())
        .await
        .unwrap();
    let message = jetim_schemas::openim::sdkws::MsgData {
        send_id: "rex".into(),
        recv_id: "sue".into(),
        client_msg_id: "client-1".into(),
        session_type: 1,
        content_type: 101,
        content: br#"{"content":"once"}"#.to_vec(),
        ..Default::default()
    };
    let pool = app.database.pool();
    let facts = jetim_readmodel::send_facts::FactsReader::new(pool.clone());
    let send = || {
        jetim_messaging::service::send(
            &log,
            &pool,
            &facts,
            &message,
            jetim_messaging::service::Caller::user("rex"),
            "op",
        )
    };
    let first = send().await.unwrap().unwrap();
    assert_eq!((first.seq, first.duplicate), (1, false));
    // Inside JetStream's duplicate window.
    let again = send().await.unwrap().unwrap();
    assert_eq!((again.seq, again.duplicate), (1, true));
    assert_eq!(again.server_msg_id, first.server_msg_id);
    assert_eq!(again.send_time, first.send_time);

    // Beyond it: shrink the window, let it pass, and resend once the read model has the
    // original; only the read model's clientMsgID table can catch this one.
    let text =
        include_str!("../../../../streams/IM_CONV.json").replace("120000000000", "1000000000");
    let short_window =
        jetim_streams::definitions::StreamDefinition::parse("IM_CONV.json", &text).unwrap();
    jetim_streams::definitions::apply(&app.jetstream, &short_window)
        .await
        .unwrap();
    let _ = app.newest_seqs(&admin, "rex", 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let late = send().await.unwrap().unwrap();
    assert_eq!((late.seq, late.duplicate), (1, true));
    assert_eq!(late.server_msg_id, first.server_msg_id);
    let mut stream = app.jetstream.get_stream("IM_CONV").await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        1,
        "one message, ever"
    );
}

#[tokio::test]
async fn read_marks_move_the_read_position_and_flag_the_peers_messages() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["ada", "bo", "cy"]).await;
    for text in ["one", "two", "three"] {
        app.send_text(&admin, "ada", "bo", text).await;
    }
    let ada = app.user_token(&admin, "ada", Platform::WEB).await;
    let bo = app.user_token(&admin, "bo", Platform::WEB).await;
    let _ = app.newest_seqs(&bo, "bo", 1).await;

    let seqs_of = |token: String, user: &'static str| {
        let app = &app;
        async move {
            app.ok(
                "/msg/get_conversations_has_read_and_max_seq",
                &token,
                &json!({"userID": user}),
            )
            .await
        }
    };
    let data = seqs_of(ada.clone(), "ada").await;
    let time = data["seqs"]["si_ada_bo"]["maxSeqTime"].as_i64().unwrap();
    assert!(time > 0);
    assert_eq!(
        data["seqs"]["si_ada_bo"],
        json!({"maxSeq": 3, "hasReadSeq": 3, "maxSeqTime": time}),
        "a sender has read what they sent"
    );
    assert_eq!(data["pinnedConversationIDs"], Value::Null);
    assert_eq!(
        seqs_of(bo.clone(), "bo").await["seqs"]["si_ada_bo"]["hasReadSeq"],
        0
    );

    let mark = |path: &'static str, body: Value| {
        let (app, bo) = (&app, bo.clone());
        async move { app.post(path, Some(&bo), &body).await }
    };
    let done = json!({"errCode": 0, "errMsg": "", "errDlt": ""});
    assert_eq!(
        mark(
            "/msg/mark_conversation_as_read",
            json!({"conversationID": "si_ada_bo", "userID": "bo", "hasReadSeq": 2})
        )
        .await,
        done
    );
    let read_flags = || async {
        let pulled = app
            .ok(
                "/msg/pull_msg_by_seq",
                &ada,
                &json!({"userID": "ada", "seqRanges": [{"conversationID": "si_ada_bo", "begin": 1, "end": 3, "num": 3}]}),
            )
            .await;
        pulled["msgs"]["si_ada_bo"]["Msgs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|message| message["isRead"].as_bool().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(read_flags().await, [true, true, false]);
    assert_eq!(
        seqs_of(bo.clone(), "bo").await["seqs"]["si_ada_bo"]["hasReadSeq"],
        2
    );

    assert_eq!(
        mark(
            "/msg/mark_msgs_as_read",
            json!({"conversationID": "si_ada_bo", "userID": "bo", "seqs": [3]})
        )
        .await,
        done
    );
    assert_eq!(read_flags().await, [true, true, true]);
    assert_eq!(
        seqs_of(bo.clone(), "bo").await["seqs"]["si_ada_bo"]["hasReadSeq"],
        3
    );

    // Each mark told ada, in their n_ conversation, which of her messages bo read (2200).
    let receipts = app
        .ok(
            "/msg/pull_msg_by_seq",
            &ada,
            &json!({"userID": "ada", "seqRanges": [{"conversationID": "n_ada_bo", "begin": 1, "end": 10, "num": 10}]}),
        )
        .await;
    let receipts: Vec<Value> = receipts["notificationMsgs"]["n_ada_bo"]["Msgs"]
        .as_array()
        .unwrap_or_else(|| panic!("the receipts are stored: {receipts}"))
        .iter()
        .map(|message| {
            assert_eq!(message["contentType"], 2200);
            assert_eq!(message["sendID"], "bo");
            assert_eq!(message["recvID"], "ada");
            let content = base64::engine::general_purpose::STANDARD
                .decode(message["content"].as_str().unwrap())
                .unwrap();
            let content: Value = serde_json::from_slice(&content).unwrap();
            serde_json::from_str(content["detail"].as_str().unwrap()).unwrap()
        })
        .collect();
    assert_eq!(
        receipts,
        [
            json!({"markAsReadUserID": "bo", "conversationID": "si_ada_bo", "seqs": [1, 2],
                   "hasReadSeq": 2}),
            json!({"markAsReadUserID": "bo", "conversationID": "si_ada_bo", "seqs": [3],
                   "hasReadSeq": 3}),
        ]
    );
    // The receipts are notifications: they count nothing unread for ada.
    let active = app
        .ok(
            "/jssdk/get_active_conversations",
            &ada,
            &json!({"count": 10}),
        )
        .await;
    assert_eq!(active["unreadCount"], 0, "{active}");

    mark(
        "/msg/set_conversation_has_read_seq",
        json!({"conversationID": "si_ada_bo", "userID": "bo", "hasReadSeq": 1}),
    )
    .await;
    assert_eq!(
        seqs_of(bo.clone(), "bo").await["seqs"]["si_ada_bo"]["hasReadSeq"],
        1,
        "set may lower it"
    );
    mark(
        "/msg/mark_conversation_as_read",
        json!({"conversationID": "si_ada_bo", "userID": "bo", "hasReadSeq": 0}),
    )
    .await;
    assert_eq!(
        seqs_of(bo.clone(), "bo").await["seqs"]["si_ada_bo"]["hasReadSeq"],
        1,
        "marking never lowers it"
    );

    for (path, body, code, detail) in [
        (
            "/msg/mark_conversation_as_read",
            json!({"conversationID": "si_ada_bo", "userID": "bo", "hasReadSeq": 9}),
            1001,
            "seq 9 is beyond the conversation's max seq 3",
        ),
        (
            "/msg/mark_msgs_as_read",
            json!({"conversationID": "si_ada_bo", "userID": "bo", "seqs": []}),
            1001,
            "seqs is empty",
        ),
        (
            "/msg/set_conversation_has_read_seq",
            json!({"conversationID": "si_bo_cy", "userID": "bo", "hasReadSeq": 1}),
            1004,
            "bo has no conversation si_bo_cy",
        ),
        (
            "/msg/mark_msgs_as_read",
            json!({"conversationID": "si_ada_bo", "userID": "ada", "seqs": [1]}),
            1002,
            "bo may not act for ada",
        ),
    ] {
        let reply = mark(path, body).await;
        assert_eq!(reply["errCode"], code, "{path}: {reply}");
        assert_eq!(reply["errDlt"], detail, "{path}");
    }
}

#[tokio::test]
async fn the_sender_revokes_a_message_and_the_peer_sees_it_revoked_and_is_notified() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["ava", "ben", "eve"]).await;
    app.send_text(&admin, "ava", "ben", "oops").await;
    app.send_text(&admin, "ava", "ben", "fine").await;
    let ava = app.user_token(&admin, "ava", Platform::WEB).await;
    let ben = app.user_token(&admin, "ben", Platform::WEB).await;
    let eve = app.user_token(&admin, "eve", Platform::WEB).await;
    let _ = app.newest_seqs(&ben, "ben", 1).await;
    let revoke = |token: &str, user: &str, seq: i64| {
        let (app, token, user) = (&app, token.to_owned(), user.to_owned());
        async move {
            app.post(
                "/msg/revoke_msg",
                Some(&token),
                &json!({"conversationID": "si_ava_ben", "seq": seq, "userID": user}),
            )
            .await
        }
    };
    assert_eq!(
        revoke(&ben, "ben", 1).await,
        error(
            1002,
            "NoPermissionError",
            "only ava (the sender) may revoke message 1"
        )
    );
    assert_eq!(revoke(&ava, "ava", 1).await["errCode"], 0);
    assert_eq!(
        revoke(&ava, "ava", 1).await,
        error(
            1404,
            "MsgAlreadyRevoke",
            "message 1 of si_ava_ben is already revoked"
        )
    );
    assert_eq!(
        revoke(&ava, "ava", 9).await,
        error(1004, "RecordNotFoundError", "si_ava_ben has no message 9")
    );
    assert_eq!(
        revoke(&eve, "eve", 2).await["errCode"],
        1004,
        "not her conversation"
    );

    let pulled = app
        .ok(
            "/msg/pull_msg_by_seq",
            &ben,
            &json!({"userID": "ben", "seqRanges": [
                {"conversationID": "si_ava_ben", "begin": 1, "end": 2, "num": 10},
                {"conversationID": "n_ava_ben", "begin": 1, "end": 1, "num": 10}
            ]}),
        )
        .await;
    let messages = pulled["msgs"]["si_ava_ben"]["Msgs"].as_array().unwrap();
    assert_eq!(
        messages[0]["contentType"], 2101,
        "the revoked message reads as revoked"
    );
    assert_eq!(
        messages[1]["contentType"], 101,
        "the other message is untouched"
    );
    let decode = |message: &Value| -> Value {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(message["content"].as_str().unwrap())
            .unwrap();
        let content: Value = serde_json::from_slice(&bytes).unwrap();
        serde_json::from_str(content["detail"].as_str().unwrap()).unwrap()
    };
    let revoked = decode(&messages[0]);
    assert_eq!(revoked["revokerID"], "ava");
    assert_eq!(revoked["revokerNickname"], "nick ava");
    assert_eq!(revoked["seq"], 1);

    let tips = &pulled["notificationMsgs"]["n_ava_ben"]["Msgs"][0];
    assert_eq!(tips["contentType"], 2101);
    assert_eq!(tips["sendID"], "ava");
    assert_eq!(tips["recvID"], "ben");
    let tips = decode(tips);
    assert_eq!(tips["conversationID"], "si_ava_ben");
    assert_eq!(tips["sesstionType"], 1);
    assert_eq!(tips["isAdminRevoke"], false);

    let seqs = app.newest_seqs(&ben, "ben", 2).await;
    assert_eq!(seqs["maxSeqs"], json!({"si_ava_ben": 2, "n_ava_ben": 1}));
}

#[tokio::test]
async fn deletes_hide_for_oneself_or_everyone_and_clears_move_the_window() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["amy", "bob"]).await;
    for text in ["one", "two", "three"] {
        app.send_text(&admin, "amy", "bob", text).await;
    }
    let amy = app.user_token(&admin, "amy", Platform::WEB).await;
    let bob = app.user_token(&admin, "bob", Platform::WEB).await;
    let _ = app.newest_seqs(&bob, "bob", 1).await;
    let pull = |token: &str, user: &str| {
        let (app, token, user) = (&app, token.to_owned(), user.to_owned());
        async move {
            let pulled = app
                .ok(
                    "/msg/pull_msg_by_seq",
                    &token,
                    &json!({"userID": user, "seqRanges": [{"conversationID": "si_amy_bob", "begin": 1, "end": 10, "num": 10}]}),
                )
                .await;
            pulled["msgs"]["si_amy_bob"]["Msgs"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|message| {
                    (
                        message["seq"].as_i64().unwrap(),
                        message["status"].as_i64().unwrap(),
                        message["content"].as_str().unwrap().is_empty(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let call = |token: &str, path: &'static str, body: Value| {
        let (app, token) = (&app, token.to_owned());
        async move { app.post(path, Some(&token), &body).await }
    };

    // Bob hides message 1 for himself.
    let reply = call(
        &bob,
        "/msg/delete_msgs",
        json!({"conversationID": "si_amy_bob", "userID": "bob", "seqs": [1]}),
    )
    .await;
    assert_eq!(reply["errCode"], 0, "{reply}");
    assert_eq!(
        pull(&bob, "bob").await,
        [(1, 4, true), (2, 2, false), (3, 2, false)]
    );
    assert_eq!(
        pull(&amy, "amy").await,
        [(1, 2, false), (2, 2, false), (3, 2, false)]
    );

    // Only Amy may delete her message for everyone.
    let for_all = json!({"conversationID": "si_amy_bob", "seqs": [2], "deleteSyncOpt": {"IsSyncOther": true}});
    let mut by_bob = for_all.clone();
    by_bob["userID"] = json!("bob");
    assert_eq!(
        call(&bob, "/msg/delete_msgs", by_bob).await,
        error(
            1002,
            "NoPermissionError",
            "message 2 is not bob's to delete for everyone"
        )
    );
    let mut by_amy = for_all;
    by_amy["userID"] = json!("amy");
    assert_eq!(call(&amy, "/msg/delete_msgs", by_amy).await["errCode"], 0);
    assert_eq!(
        pull(&amy, "amy").await,
        [(1, 2, false), (2, 4, true), (3, 2, false)]
    );
    // Bob is told, in their n_ conversation (2102, stored).
    let told = app
        .ok(
            "/msg/pull_msg_by_seq",
            &bob,
            &json!({"userID": "bob", "seqRanges": [{"conversationID": "n_amy_bob", "begin": 1, "end": 10, "num": 10}]}),
        )
        .await;
    let told = &told["notificationMsgs"]["n_amy_bob"]["Msgs"][0];
    assert_eq!(told["contentType"], 2102, "{told}");
    assert_eq!(told["sendID"], "amy");
    let content = base64::engine::general_purpose::STANDARD
        .decode(told["content"].as_str().unwrap())
        .unwrap();
    let content: Value = serde_json::from_slice(&content).unwrap();
    let tips: Value = serde_json::from_str(content["detail"].as_str().unwrap()).unwrap();
    assert_eq!(
        tips,
        json!({"userID": "amy", "conversationID": "si_amy_bob", "seqs": [2]})
    );

    // Bob clears the conversation for himself: his window starts after seq 3. His devices
    // hear of it: 1300 (rows changed) and, with IsSyncSelf, 1703.
    let client = app.nats.client().await;
    let mut bob_pushes = client.subscribe("im.deliver.bob").await.unwrap();
    client.flush().await.unwrap();
    let reply = call(
        &bob,
        "/msg/clear_conversation_msg",
        json!({"conversationIDs": ["si_amy_bob"], "userID": "bob",
               "deleteSyncOpt": {"IsSyncSelf": true}}),
    )
    .await;
    assert_eq!(reply["errCode"], 0, "{reply}");
    let mut pushed = Vec::new();
    for _ in 0..2 {
        let message = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            futures::StreamExt::next(&mut bob_pushes),
        )
        .await
        .expect("a push")
        .unwrap();
        let push =
            <jetim_schemas::openim::sdkws::PushMessages as prost::Message>::decode(message.payload)
                .unwrap();
        let (conversation, msgs) = push.notification_msgs.into_iter().next().unwrap();
        pushed.push((conversation, msgs.msgs[0].content_type));
    }
    assert_eq!(
        pushed,
        [
            ("n_bob_bob".to_owned(), 1300),
            ("n_bob_bob".to_owned(), 1703)
        ]
    );
    assert!(pull(&bob, "bob").await.is_empty());
    assert_eq!(pull(&amy, "amy").await.len(), 3, "amy keeps her history");
    app.send_text(&admin, "amy", "bob", "four").await;
    let _ = app.newest_seqs(&bob, "bob", 1).await;
    let mut after = Vec::new();
    for _ in 0..50 {
        after = pull(&bob, "bob").await;
        if !after.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(after, [(4, 2, false)]);
    let seqs = app
        .ok(
            "/msg/get_conversations_has_read_and_max_seq",
            &bob,
            &json!({"userID": "bob"}),
        )
        .await;
    assert_eq!(
        seqs["seqs"]["si_amy_bob"]["hasReadSeq"], 3,
        "clearing reads what was there"
    );

    // Amy clears for everyone.
    let reply = call(
        &amy,
        "/msg/user_clear_all_msg",
        json!({"userID": "amy", "deleteSyncOpt": {"IsSyncOther": true}}),
    )
    .await;
    assert_eq!(reply["errCode"], 0, "{reply}");
    assert!(pull(&amy, "amy").await.is_empty());
    assert!(pull(&bob, "bob").await.is_empty());

    let reply = call(
        &bob,
        "/msg/delete_msgs",
        json!({"conversationID": "si_amy_bob", "userID": "bob", "seqs": [9]}),
    )
    .await;
    assert_eq!(reply["errCode"], 1004, "{reply}");
    let reply = call(
        &bob,
        "/msg/clear_conversation_msg",
        json!({"conversationIDs": ["si_x_y"], "userID": "bob"}),
    )
    .await;
    assert_eq!(
        reply,
        error(
            1004,
            "RecordNotFoundError",
            "bob has no conversation si_x_y"
        )
    );
    let reply = call(
        &bob,
        "/msg/delete_msgs",
        json!({"conversationID": "si_amy_bob", "userID": "amy", "seqs": [4]}),
    )
    .await;
    assert_eq!(reply["errCode"], 1002);
}

#[tokio::test]
async fn admins_batch_send_and_delete_for_everyone() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["boss", "w1", "w2"]).await;
    let data = app
        .ok(
            "/msg/batch_send_msg",
            &admin,
            &json!({"sendID": "boss", "recvIDs": ["w1", "ghost", "w2"], "sessionType": 1,
                    "contentType": 101, "content": {"content": "meeting at 3"}}),
        )
        .await;
    let receivers: Vec<&str> = data["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|result| result["recvID"].as_str().unwrap())
        .collect();
    assert_eq!(receivers, ["w1", "w2"]);
    assert_eq!(data["failedUserIDs"], json!(["ghost"]));
    assert_eq!(data["results"][0]["modify"], Value::Null);

    let everyone = app
        .ok(
            "/msg/batch_send_msg",
            &admin,
            &json!({"sendID": "boss", "isSendAll": true, "sessionType": 1,
                    "contentType": 101, "content": {"content": "all hands"}}),
        )
        .await;
    assert_eq!(
        everyone["results"].as_array().unwrap().len(),
        3,
        "w1, w2 and the admin, not the sender: {everyone}"
    );

    let w1 = app.user_token(&admin, "w1", Platform::WEB).await;
    let reply = app
        .post(
            "/msg/batch_send_msg",
            Some(&w1),
            &json!({"sendID": "w1", "recvIDs": ["w2"], "sessionType": 1, "contentType": 101,
                    "content": {"content": "x"}}),
        )
        .await;
    assert_eq!(reply["errCode"], 1002);

    let _ = app.newest_seqs(&w1, "w1", 1).await;
    let reply = app
        .post(
            "/msg/delete_msg_phsical_by_seq",
            Some(&admin),
            &json!({"conversationID": "si_boss_w1", "seqs": [1]}),
        )
        .await;
    assert_eq!(reply["errCode"], 0, "{reply}");
    let pulled = app
        .ok(
            "/msg/pull_msg_by_seq",
            &w1,
            &json!({"userID": "w1", "seqRanges": [{"conversationID": "si_boss_w1", "begin": 1, "end": 2, "num": 2}]}),
        )
        .await;
    let messages = pulled["msgs"]["si_boss_w1"]["Msgs"].as_array().unwrap();
    assert_eq!(
        (messages[0]["seq"].as_i64(), messages[0]["status"].as_i64()),
        (Some(1), Some(4))
    );
    assert_eq!(messages[0]["sendID"], "", "a placeholder");
    assert_eq!(messages[1]["status"], 2);
    let reply = app
        .post(
            "/msg/delete_msg_phsical_by_seq",
            Some(&w1),
            &json!({"conversationID": "si_boss_w1", "seqs": [2]}),
        )
        .await;
    assert_eq!(reply["errCode"], 1002);
    let reply = app
        .post(
            "/msg/delete_msg_phsical_by_seq",
            Some(&admin),
            &json!({"conversationID": "si_boss_w1", "seqs": [99]}),
        )
        .await;
    assert_eq!(
        reply,
        error(1004, "RecordNotFoundError", "si_boss_w1 has no message 99")
    );
}

#[tokio::test]
async fn a_receiver_who_refuses_messages_gets_none_and_the_sender_is_not_told() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["fan", "star"]).await;
    let star = app.user_token(&admin, "star", Platform::WEB).await;
    app.ok(
        "/user/set_global_msg_recv_opt",
        &star,
        &json!({"userID": "star", "globalRecvMsgOpt": 1}),
    )
    .await;
    let stored = || async {
        let mut stream = app.jetstream.get_stream("IM_CONV").await.unwrap();
        stream.info().await.unwrap().state.messages
    };
    let sent = app.send_text(&admin, "fan", "star", "hello?").await;
    assert_eq!(
        sent["serverMsgID"].as_str().unwrap().len(),
        32,
        "an ordinary answer"
    );
    assert_eq!(stored().await, 0, "nothing stored, nothing delivered");

    app.ok(
        "/user/set_global_msg_recv_opt",
        &star,
        &json!({"userID": "star", "globalRecvMsgOpt": 0}),
    )
    .await;
    app.send_text(&admin, "fan", "star", "hello!").await;
    assert_eq!(stored().await, 1);

    // Refusing this one conversation works the same way.
    app.ok(
        "/conversation/set_conversations",
        &star,
        &json!({"userIDs": ["star"], "conversation": {"conversationID": "si_fan_star",
                "conversationType": 1, "userID": "fan", "recvMsgOpt": 1}}),
    )
    .await;
    app.send_text(&admin, "fan", "star", "again?").await;
    assert_eq!(stored().await, 1);
}

#[tokio::test]
async fn business_notifications_follow_openims_notification_storage_rules() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["shop", "cus"]).await;
    let stored = || async {
        let mut stream = app.jetstream.get_stream("IM_CONV").await.unwrap();
        stream.info().await.unwrap().state.messages
    };
    // Level 1 without sendMsg: pushed only, so nothing is stored.
    let sent = app
        .ok(
            "/msg/send_business_notification",
            &admin,
            &json!({"key": "order", "data": "{\"id\":1}", "sendUserID": "shop", "recvUserID": "cus"}),
        )
        .await;
    assert_eq!(sent["serverMsgID"].as_str().unwrap().len(), 32);
    assert_eq!(stored().await, 0);

    // Level 2 with sendMsg: stored in the n_ conversation, and a copy in the chat.
    app.ok(
        "/msg/send_business_notification",
        &admin,
        &json!({"key": "order", "data": "{\"id\":2}", "sendUserID": "shop", "recvUserID": "cus",
                "sendMsg": true, "reliabilityLevel": 2}),
    )
    .await;
    assert_eq!(stored().await, 2);
    let cus = app.user_token(&admin, "cus", Platform::WEB).await;
    let seqs = app.newest_seqs(&cus, "cus", 2).await;
    assert_eq!(seqs["maxSeqs"], json!({"n_cus_shop": 1, "si_cus_shop": 1}));
    let pulled = app
        .ok(
            "/msg/pull_msg_by_seq",
            &cus,
            &json!({"userID": "cus", "seqRanges": [{"conversationID": "n_cus_shop", "begin": 1, "end": 1, "num": 1}]}),
        )
        .await;
    let message = &pulled["notificationMsgs"]["n_cus_shop"]["Msgs"][0];
    assert_eq!(message["contentType"], 2001);
    let content: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(message["content"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let detail: Value = serde_json::from_str(content["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail, json!({"key": "order", "data": "{\"id\":2}"}));

    for (body, code) in [
        (
            json!({"key": "k", "sendUserID": "shop", "recvUserID": "cus", "recvGroupID": "g"}),
            1001,
        ),
        (json!({"key": "k", "sendUserID": "shop"}), 1001),
        (
            json!({"key": "k", "sendUserID": "shop", "recvGroupID": "g"}),
            1201,
        ),
        (
            json!({"key": "k", "sendUserID": "shop", "recvUserID": "cus", "reliabilityLevel": 3}),
            1001,
        ),
        (
            json!({"key": "k", "sendUserID": "shop", "recvUserID": "ghost"}),
            1101,
        ),
    ] {
        let reply = app
            .post("/msg/send_business_notification", Some(&admin), &body)
            .await;
        assert_eq!(reply["errCode"], code, "{body}: {reply}");
    }
    let reply = app
        .post(
            "/msg/send_business_notification",
            Some(&cus),
            &json!({"key": "k", "sendUserID": "cus", "recvUserID": "shop"}),
        )
        .await;
    assert_eq!(reply["errCode"], 1002);
}

#[tokio::test]
async fn a_simple_message_replies_from_the_keys_receiver_to_its_sender() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["bot", "usr"]).await;
    let key =
        base64::engine::general_purpose::STANDARD.encode(br#"{"sendID":"usr","recvID":"bot"}"#);
    let bot = app.user_token(&admin, "bot", Platform::WEB).await;
    let send = |token: &str, key: &str| {
        let (app, token, key) = (&app, token.to_owned(), key.to_owned());
        async move {
            app.post(
                &format!("/msg/send_simple_msg?key={key}"),
                Some(&token),
                &json!({"content": "**hi**"}),
            )
            .await
        }
    };
    let reply = send(&bot, &key).await;
    assert_eq!(reply["errCode"], 0, "{reply}");
    let usr = app.user_token(&admin, "usr", Platform::WEB).await;
    let _ = app.newest_seqs(&usr, "usr", 1).await;
    let pulled = app
        .ok(
            "/msg/pull_msg_by_seq",
            &usr,
            &json!({"userID": "usr", "seqRanges": [{"conversationID": "si_bot_usr", "begin": 1, "end": 1, "num": 1}]}),
        )
        .await;
    let message = &pulled["msgs"]["si_bot_usr"]["Msgs"][0];
    assert_eq!(message["sendID"], "bot");
    assert_eq!(message["contentType"], 118);

    // Only the key's receiver (or an admin) may reply as it.
    assert_eq!(send(&usr, &key).await["errCode"], 1002);
    assert_eq!(send(&bot, "not-base64!").await["errCode"], 1001);
    assert_eq!(send(&bot, "%ZZ").await["errCode"], 1001);
}

#[tokio::test]
async fn admins_search_messages_by_sender_type_day_and_session() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["sam", "tia"]).await;
    app.send_text(&admin, "sam", "tia", "first").await;
    app.send_text(&admin, "sam", "tia", "second").await;
    app.ok(
        "/msg/send_msg",
        &admin,
        &json!({"sendID": "tia", "recvID": "sam", "sessionType": 1, "contentType": 102,
                "content": {"sourcePicture": {"url": "https://p"}}}),
    )
    .await;
    let sam = app.user_token(&admin, "sam", Platform::WEB).await;
    let _ = app.newest_seqs(&sam, "sam", 1).await;
    app.ok(
        "/msg/revoke_msg",
        &sam,
        &json!({"conversationID": "si_sam_tia", "seq": 1, "userID": "sam"}),
    )
    .await;
    let page = json!({"pageNumber": 1, "showNumber": 10});
    let search = |body: Value| {
        let (app, admin) = (&app, admin.clone());
        async move { app.ok("/msg/search_msg", &admin, &body).await }
    };
    // Sam's messages: two texts, and the 2101 notification his revoke stored in n_sam_tia.
    let mut everything = Value::Null;
    for _ in 0..50 {
        everything = search(json!({"sendID": "sam", "pagination": page})).await;
        if everything["chatLogsNum"] == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(everything["chatLogsNum"], 3);
    assert_eq!(everything["chatLogs"][0]["chatLog"]["contentType"], 2101);
    let found = search(json!({"sendID": "sam", "contentType": 101, "pagination": page})).await;
    assert_eq!(found["chatLogsNum"], 2);
    let logs = found["chatLogs"].as_array().unwrap();
    assert_eq!(
        logs[0]["chatLog"]["content"], r#"{"content":"second"}"#,
        "newest first"
    );
    assert_eq!(logs[0]["isRevoked"], false);
    assert_eq!(logs[1]["isRevoked"], true);
    assert_eq!(logs[1]["chatLog"]["recvNickname"], "nick tia");
    assert_eq!(logs[1]["chatLog"]["seq"], 1);
    assert_eq!(
        logs[0]["chatLog"].as_object().unwrap().len(),
        23,
        "every ChatLog field"
    );

    let pictures = search(json!({"contentType": 102, "pagination": page})).await;
    assert_eq!(pictures["chatLogsNum"], 1);
    assert_eq!(pictures["chatLogs"][0]["chatLog"]["sendID"], "tia");
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let today_found =
        search(json!({"sendTime": today, "sessionType": 1, "pagination": page})).await;
    assert_eq!(
        today_found["chatLogsNum"], 4,
        "three messages and the notification"
    );
    let long_ago = search(json!({"sendTime": "2000-01-01", "pagination": page})).await;
    assert_eq!(long_ago, json!({"chatLogs": null, "chatLogsNum": 0}));

    let reply = app
        .post(
            "/msg/search_msg",
            Some(&admin),
            &json!({"sendTime": "01/01/2000", "pagination": page}),
        )
        .await;
    assert_eq!(
        reply,
        error(
            1001,
            "ArgsError",
            "sendTime \"01/01/2000\" is not a day (YYYY-MM-DD)"
        )
    );
    let reply = app
        .post("/msg/search_msg", Some(&sam), &json!({"pagination": page}))
        .await;
    assert_eq!(
        reply["errCode"], 1002,
        "upstream lets anyone search; jetim does not"
    );
}

#[tokio::test]
async fn a_nul_character_in_a_message_is_stored_pulled_and_searched() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["una", "vic"]).await;
    // JSON lets a string hold U+0000, and jsonb does not: the stored body is text.
    app.ok(
        "/msg/send_msg",
        &admin,
        &json!({"sendID": "una", "recvID": "vic", "sessionType": 1, "contentType": 101,
                "content": {"content": "nul \u{0} inside"}, "ex": "x\u{0}y",
                "senderNickname": "u\u{0}na"}),
    )
    .await;
    let vic = app.user_token(&admin, "vic", Platform::WEB).await;
    let seqs = app.newest_seqs(&vic, "vic", 1).await;
    assert_eq!(seqs, json!({"maxSeqs": {"si_una_vic": 1}}));
    let pulled = app
        .ok(
            "/msg/pull_msg_by_seq",
            &vic,
            &json!({"userID": "vic", "seqRanges": [{"conversationID": "si_una_vic", "begin": 1, "end": 1, "num": 10}]}),
        )
        .await;
    let message = &pulled["msgs"]["si_una_vic"]["Msgs"][0];
    assert_eq!(message["ex"], "x\u{0}y");
    assert_eq!(message["senderNickname"], "u\u{0}na");
    let content = base64::engine::general_purpose::STANDARD
        .decode(message["content"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&content).unwrap(),
        json!({"content": "nul \u{0} inside"})
    );
    let page = json!({"pageNumber": 1, "showNumber": 10});
    let found = app
        .ok(
            "/msg/search_msg",
            &admin,
            &json!({"recvID": "vic", "sessionType": 1, "pagination": page}),
        )
        .await;
    assert_eq!(found["chatLogsNum"], 1, "{found}");
    assert_eq!(found["chatLogs"][0]["chatLog"]["ex"], "x\u{0}y");
}

#[tokio::test]
async fn a_rest_send_leaves_its_result_under_the_callers_operation_id() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["s1", "s2"]).await;
    let check = |operation_id: &'static str, token: String| {
        let app = &app;
        async move {
            app.post_as_operation(
                "/msg/check_msg_is_send_success",
                operation_id,
                Some(&token),
                &json!({}),
            )
            .await
        }
    };
    assert_eq!(
        check("op-sent", admin.clone()).await["data"],
        json!({"status": 0})
    );
    let reply = app
        .post_as_operation(
            "/msg/send_msg",
            "op-sent",
            Some(&admin),
            &json!({"sendID": "s1", "recvID": "s2", "sessionType": 1, "contentType": 101,
                    "content": {"content": "hi"}}),
        )
        .await;
    assert_eq!(reply["errCode"], 0, "{reply}");
    assert_eq!(
        check("op-sent", admin.clone()).await["data"],
        json!({"status": 2})
    );
    let reply = app
        .post_as_operation(
            "/msg/send_msg",
            "op-failed",
            Some(&admin),
            &json!({"sendID": "s1", "recvID": "nobody", "sessionType": 1, "contentType": 101,
                    "content": {"content": "hi"}}),
        )
        .await;
    assert_ne!(reply["errCode"], 0, "{reply}");
    assert_eq!(
        check("op-failed", admin.clone()).await["data"],
        json!({"status": 3})
    );
    let s1 = app.user_token(&admin, "s1", Platform::WEB).await;
    assert_eq!(
        check("op-sent", s1).await["data"],
        json!({"status": 0}),
        "another caller's operationID tells nothing"
    );
}

#[tokio::test]
async fn an_admin_purges_messages_older_than_an_age_for_everyone() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["p1", "p2", "p3"]).await;
    app.send_text(&admin, "p1", "p2", "old one").await;
    app.send_text(&admin, "p1", "p2", "old two").await;
    app.send_text(&admin, "p3", "p2", "other").await;
    let p2 = app.user_token(&admin, "p2", Platform::WEB).await;
    let _ = app.newest_seqs(&p2, "p2", 2).await;
    let purge = |token: String, body: Value| {
        let app = &app;
        async move {
            app.post("/msg/delete_msg_physical", Some(&token), &body)
                .await
        }
    };
    let reply = purge(
        admin.clone(),
        json!({"conversationIDs": ["si_p1_p2"], "timestamp": 3600}),
    )
    .await;
    assert_eq!(reply["errCode"], 0, "{reply}");
    let pull = json!({"userID": "p2", "seqRanges": [
        {"conversationID": "si_p1_p2", "begin": 1, "end": 3, "num": 3},
        {"conversationID": "si_p2_p3", "begin": 1, "end": 1, "num": 1}]});
    let pulled = app.ok("/msg/pull_msg_by_seq", &p2, &pull).await;
    assert_eq!(
        pulled["msgs"]["si_p1_p2"]["Msgs"].as_array().unwrap().len(),
        2,
        "nothing is an hour old: {pulled}"
    );
    for (body, expected) in [
        (
            json!({"conversationIDs": ["si_p1_p2"], "timestamp": -1}),
            error(
                1001,
                "ArgsError",
                "timestamp -1 is negative; it is an age in seconds",
            ),
        ),
        (
            json!({"conversationIDs": ["si_p1_p2", "si_p1_p2"], "timestamp": 0}),
            error(
                1001,
                "ArgsError",
                "conversationIDs names \"si_p1_p2\" twice",
            ),
        ),
        (
            json!({"conversationIDs": [""], "timestamp": 0}),
            error(1001, "ArgsError", "conversationIDs holds an empty ID"),
        ),
    ] {
        assert_eq!(purge(admin.clone(), body.clone()).await, expected, "{body}");
    }
    let reply = purge(
        p2.clone(),
        json!({"conversationIDs": ["si_p1_p2"], "timestamp": 0}),
    )
    .await;
    assert_eq!(reply["errCode"], 1002, "{reply}");

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let reply = purge(
        admin.clone(),
        json!({"conversationIDs": ["si_p1_p2"], "timestamp": 0}),
    )
    .await;
    assert_eq!(reply["errCode"], 0, "{reply}");
    let pulled = app.ok("/msg/pull_msg_by_seq", &p2, &pull).await;
    assert_eq!(
        pulled["msgs"]["si_p1_p2"],
        Value::Null,
        "both are gone for everyone: {pulled}"
    );
    assert_eq!(
        pulled["msgs"]["si_p2_p3"]["Msgs"][0]["seq"], 1,
        "other conversations are untouched"
    );
    let p1 = app.user_token(&admin, "p1", Platform::WEB).await;
    let pulled = app
        .ok(
            "/msg/pull_msg_by_seq",
            &p1,
            &json!({"userID": "p1", "seqRanges": [{"conversationID": "si_p1_p2", "begin": 1, "end": 2, "num": 2}]}),
        )
        .await;
    assert_eq!(pulled["msgs"]["si_p1_p2"], Value::Null, "{pulled}");
    app.send_text(&admin, "p1", "p2", "new").await;
    let mut pulled = Value::Null;
    for _ in 0..100 {
        pulled = app.ok("/msg/pull_msg_by_seq", &p2, &pull).await;
        if !pulled["msgs"]["si_p1_p2"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let messages = pulled["msgs"]["si_p1_p2"]["Msgs"].as_array().unwrap();
    assert_eq!(
        (messages.len(), &messages[0]["seq"]),
        (1, &json!(3)),
        "{pulled}"
    );
    // With no conversation named, every conversation is purged.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let reply = purge(admin.clone(), json!({"timestamp": 0})).await;
    assert_eq!(reply["errCode"], 0, "{reply}");
    let pulled = app.ok("/msg/pull_msg_by_seq", &p2, &pull).await;
    assert_eq!(pulled, json!({}), "{pulled}");
}

#[tokio::test]
async fn active_user_statistics_count_what_users_sent() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["act1", "act2"]).await;
    let start = crate::support::now_millis() - 60_000;
    for text in ["a", "b", "c"] {
        app.send_text(&admin, "act1", "act2", text).await;
    }
    app.send_text(&admin, "act2", "act1", "d").await;
    // A friendship stores a 1201 copy in the chat: the server's, not counted.
    app.ok(
        "/friend/import_friend",
        &admin,
        &json!({"ownerUserID": "act1", "friendUserIDs": ["act2"]}),
    )
    .await;
    let seqs = app.newest_seqs(&admin, "act1", 1).await;
    assert_eq!(seqs["maxSeqs"]["si_act1_act2"], 5, "{seqs}");
    let end = crate::support::now_millis() + 60_000;
    let page = |number: i32, size: i32| json!({"pageNumber": number, "showNumber": size});
    let data = app
        .ok(
            "/statistics/user/active",
            &admin,
            &json!({"start": start, "end": end, "pagination": page(1, 10)}),
        )
        .await;
    assert_eq!(
        (
            data["msgCount"].clone(),
            data["userCount"].clone(),
            data["users"][0]["user"]["userID"].clone(),
            data["users"][0]["count"].clone(),
            data["users"][1]["count"].clone(),
        ),
        (json!(4), json!(2), json!("act1"), json!(3), json!(1)),
        "{data}"
    );
    assert_eq!(data["users"][0]["user"]["nickname"], "nick act1");
    let days: i64 = data["dateCount"]
        .as_object()
        .unwrap()
        .values()
        .map(|count| count.as_i64().unwrap())
        .sum();
    assert_eq!(days, 4);
    let second = app
        .ok(
            "/statistics/user/active",
            &admin,
            &json!({"start": start, "end": end, "ase": true, "pagination": page(2, 1)}),
        )
        .await;
    assert_eq!(second["users"].as_array().unwrap().len(), 1);
    assert_eq!(
        second["users"][0]["user"]["userID"], "act1",
        "fewest first: the second page of one is the busiest"
    );
    let empty = app
        .ok(
            "/statistics/user/active",
            &admin,
            &json!({"start": 1, "end": 2, "pagination": page(1, 10)}),
        )
        .await;
    assert_eq!(empty, json!({"msgCount": 0, "userCount": 0, "users": null}));
    for (token, body, code) in [
        (
            &admin,
            json!({"start": 5, "end": 5, "pagination": page(1, 10)}),
            1001,
        ),
        (&admin, json!({"start": 1, "end": 5}), 1001),
        (
            &admin,
            json!({"start": "x", "end": 5, "pagination": page(1, 10)}),
            1001,
        ),
    ] {
        let reply = app
            .post("/statistics/user/active", Some(token), &body)
            .await;
        assert_eq!(reply["errCode"], code, "{body}: {reply}");
    }
    let act1 = app.user_token(&admin, "act1", Platform::WEB).await;
    let reply = app
        .post(
            "/statistics/user/active",
            Some(&act1),
            &json!({"start": 1, "end": 5, "pagination": page(1, 10)}),
        )
        .await;
    assert_eq!(reply["errCode"], 1002);
}
