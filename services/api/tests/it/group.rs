//! `/group/*`: groups, members, roles, mutes, applications, their notifications, group sends
//! and incremental sync.

use std::time::Duration;

use jetim_common::auth::Platform;
use jetim_common::config::MessagingConfig;
use jetim_messaging::service::{Caller, send};
use jetim_readmodel::send_facts::FactsReader;
use jetim_schemas::openim::sdkws::MsgData;
use serde_json::{Value, json};

use crate::support::{TestApp, error, next_push};

/// Pushes until one of `content_type` arrives (other notifications may come first).
async fn push_of(subscriber: &mut async_nats::Subscriber, content_type: i32) -> (String, Value) {
    loop {
        let (conversation, found, tips) = next_push(subscriber).await;
        if found == content_type {
            return (conversation, tips);
        }
    }
}

fn page() -> Value {
    json!({"pageNumber": 1, "showNumber": 100})
}

impl TestApp {
    /// Creates group `g` owned by `owner` with `members`; the caller is the owner.
    async fn create_group(&self, owner_token: &str, owner: &str, group: &str, members: &[&str]) {
        self.ok(
            "/group/create_group",
            owner_token,
            &json!({"ownerUserID": owner, "memberUserIDs": members,
                    "groupInfo": {"groupID": group, "groupName": format!("group {group}"),
                                  "groupType": 2}}),
        )
        .await;
    }

    /// The group's members as (userID, roleLevel), owner first.
    async fn roles(&self, token: &str, group: &str) -> Vec<(String, i64)> {
        let listed = self
            .ok(
                "/group/get_group_member_list",
                token,
                &json!({"groupID": group, "pagination": page()}),
            )
            .await;
        listed["members"]
            .as_array()
            .map(|members| {
                members
                    .iter()
                    .map(|m| {
                        (
                            m["userID"].as_str().unwrap().to_owned(),
                            m["roleLevel"].as_i64().unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sends a text to the group as `from` (an ordinary caller), through the send path the
    /// gateway and REST share: the seq, or the refusal's code.
    async fn say(&self, from: &str, group: &str, text: &str) -> Result<u64, i32> {
        let log = jetim_streams::EventLog::open(self.jetstream.clone())
            .await
            .unwrap();
        let message = MsgData {
            send_id: from.into(),
            group_id: group.into(),
            client_msg_id: jetim_messaging::service::new_message_id(),
            session_type: 3,
            content_type: 101,
            content: serde_json::to_vec(&json!({"content": text})).unwrap(),
            ..MsgData::default()
        };
        match send(
            &log,
            &self.database.pool(),
            &FactsReader::new(self.database.pool()),
            &message,
            Caller::user(from),
            "op",
        )
        .await
        .unwrap()
        {
            Ok(sent) => Ok(sent.seq),
            Err(refused) => Err(refused.code().number()),
        }
    }

    /// The user's max seq of a conversation once the projection shows at least `at_least`.
    async fn max_seq(&self, token: &str, user: &str, conversation: &str, at_least: i64) -> i64 {
        let mut seen = 0;
        for _ in 0..100 {
            let seqs = self
                .ok("/msg/newest_seq", token, &json!({"userID": user}))
                .await;
            seen = seqs["maxSeqs"][conversation].as_i64().unwrap_or(0);
            if seen >= at_least {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        seen
    }

    /// The seqs a user pulls from a conversation in [begin, end] (placeholders left out).
    async fn pulled_seqs(&self, token: &str, user: &str, conversation: &str, end: i64) -> Vec<i64> {
        let pulled = self
            .ok(
                "/msg/pull_msg_by_seq",
                token,
                &json!({"userID": user, "seqRanges": [{"conversationID": conversation,
                        "begin": 1, "end": end, "num": 100}]}),
            )
            .await;
        pulled["msgs"][conversation]["Msgs"]
            .as_array()
            .map(|msgs| {
                msgs.iter()
                    .filter(|m| m["contentType"].as_i64() != Some(0))
                    .map(|m| m["seq"].as_i64().unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[tokio::test]
async fn creating_a_group_makes_members_tells_them_and_opens_the_timeline() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["ann", "ben", "cid", "dan"]).await;
    let ann = app.user_token(&admin, "ann", Platform::WEB).await;
    let ben = app.user_token(&admin, "ben", Platform::WEB).await;
    let dan = app.user_token(&admin, "dan", Platform::WEB).await;
    let client = app.nats.client().await;
    let mut ben_pushes = client.subscribe("im.deliver.ben").await.unwrap();
    client.flush().await.unwrap();

    let created = app
        .ok(
            "/group/create_group",
            &ann,
            &json!({"ownerUserID": "ann", "memberUserIDs": ["ben"], "adminUserIDs": ["cid"],
                    "groupInfo": {"groupName": "team", "groupType": 2,
                                  "notification": "be nice"}}),
        )
        .await;
    let info = &created["groupInfo"];
    let group_id = info["groupID"].as_str().unwrap().to_owned();
    assert!(group_id.bytes().all(|b| b.is_ascii_digit()), "{group_id}");
    assert_eq!(info["ownerUserID"], "ann");
    assert_eq!(info["creatorUserID"], "ann");
    assert_eq!(info["memberCount"], 3);
    assert_eq!(info["groupType"], 2);
    assert_eq!(info["status"], 0);
    assert_eq!(info["notificationUserID"], "ann");
    assert_eq!(info.as_object().unwrap().len(), 17, "every GroupInfo field");

    let (conversation, tips) = push_of(&mut ben_pushes, 1501).await;
    assert_eq!(conversation, format!("n_{group_id}"));
    assert_eq!(tips["group"]["groupName"], "team");
    assert_eq!(tips["opUser"]["userID"], "ann");
    assert_eq!(tips["groupOwnerUser"]["userID"], "ann");
    assert_eq!(tips["memberList"].as_array().unwrap().len(), 3);
    assert!(tips["groupMemberVersion"].as_i64().unwrap() >= 1);
    // The stored copies (1501, then the announcement's 1519) reach the timeline too.
    let chat = format!("sg_{group_id}");
    assert_eq!(app.max_seq(&ben, "ben", &chat, 2).await, 2);
    assert_eq!(app.pulled_seqs(&ben, "ben", &chat, 2).await, [1, 2]);
    // The JS SDK's conversation list carries the group with the conversation.
    let listed = app
        .ok(
            "/jssdk/get_conversations",
            &ben,
            &json!({"ownerUserID": "ben", "conversationIDs": [chat]}),
        )
        .await;
    let entry = &listed["conversations"][0];
    assert_eq!(entry["conversation"]["groupID"], group_id.as_str());
    assert_eq!(entry["group"]["groupName"], "team");
    assert_eq!(entry["group"]["memberCount"], 3);
    assert_eq!(entry["friend"], Value::Null);

    assert_eq!(
        app.roles(&ben, &group_id).await,
        [
            ("ann".to_owned(), 100),
            ("cid".to_owned(), 60),
            ("ben".to_owned(), 20)
        ]
    );
    for (filter, expected) in [
        (1, vec!["ann"]),
        (4, vec!["cid", "ben"]),
        (5, vec!["ann", "cid"]),
    ] {
        let listed = app
            .ok(
                "/group/get_group_member_list",
                &ben,
                &json!({"groupID": group_id, "pagination": page(), "filter": filter}),
            )
            .await;
        let users: Vec<&str> = listed["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["userID"].as_str().unwrap())
            .collect();
        assert_eq!(users, expected, "filter {filter}");
        assert_eq!(listed["total"], expected.len(), "filter {filter}");
    }
    let joined = app
        .ok(
            "/group/get_joined_group_list",
            &ben,
            &json!({"fromUserID": "ben", "pagination": page()}),
        )
        .await;
    assert_eq!(joined["total"], 1);
    assert_eq!(joined["groups"][0]["groupID"], group_id.as_str());
    let infos = app
        .ok(
            "/group/get_groups_info",
            &dan,
            &json!({"groupIDs": [group_id, "nope"]}),
        )
        .await;
    assert_eq!(infos["groupInfos"].as_array().unwrap().len(), 1);
    // A non-member reads no members.
    let reply = app
        .post(
            "/group/get_group_member_list",
            Some(&dan),
            &json!({"groupID": group_id, "pagination": page()}),
        )
        .await;
    assert_eq!(reply["errCode"], 1203, "{reply}");

    // Bad creations write nothing.
    let bad = [
        (
            json!({"ownerUserID": "ann", "groupInfo": {"groupType": 0}}),
            1001,
        ),
        (json!({"ownerUserID": "ann"}), 1001),
        (
            json!({"ownerUserID": "ann", "memberUserIDs": ["ben", "ben"],
                   "groupInfo": {"groupType": 2}}),
            1001,
        ),
        (
            json!({"ownerUserID": "ann", "memberUserIDs": ["ghost"],
                   "groupInfo": {"groupType": 2}}),
            1101,
        ),
        (
            json!({"ownerUserID": "ben", "groupInfo": {"groupType": 2}}),
            1002,
        ),
        (
            json!({"ownerUserID": "ann", "groupInfo": {"groupType": 2, "groupID": group_id}}),
            1202,
        ),
        (
            json!({"ownerUserID": "ann", "groupInfo": {"groupType": 2, "needVerification": 3}}),
            1001,
        ),
        (
            json!({"ownerUserID": "ann", "groupInfo": {"groupType": 2, "groupID": "a:b"}}),
            1001,
        ),
    ];
    for (body, code) in bad {
        let reply = app.post("/group/create_group", Some(&ann), &body).await;
        assert_eq!(reply["errCode"], code, "{body} → {reply}");
    }
    let joined = app
        .ok(
            "/group/get_joined_group_list",
            &ann,
            &json!({"fromUserID": "ann", "pagination": page()}),
        )
        .await;
    assert_eq!(joined["total"], 1, "nothing half-made");
}

#[tokio::test]
async fn invites_kicks_and_quits_follow_the_roles_and_cap_what_leavers_read() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["own", "adm", "mem", "new", "out"])
        .await;
    let own = app.user_token(&admin, "own", Platform::WEB).await;
    let adm = app.user_token(&admin, "adm", Platform::WEB).await;
    let mem = app.user_token(&admin, "mem", Platform::WEB).await;
    let out = app.user_token(&admin, "out", Platform::WEB).await;
    app.create_group(&own, "own", "g1", &["adm", "mem"]).await;
    app.ok(
        "/group/set_group_member_info",
        &own,
        &json!({"members": [{"groupID": "g1", "userID": "adm", "roleLevel": 60}]}),
    )
    .await;

    // A non-member cannot invite; a member can (policy 0 lets invitations in at once).
    let invite = |who: &str| json!({"groupID": "g1", "invitedUserIDs": [who]});
    let reply = app
        .post("/group/invite_user_to_group", Some(&out), &invite("new"))
        .await;
    assert_eq!(reply["errCode"], 1203, "{reply}");
    app.ok("/group/invite_user_to_group", &mem, &invite("out"))
        .await;
    app.ok("/group/invite_user_to_group", &mem, &invite("new"))
        .await;
    let reply = app
        .post("/group/invite_user_to_group", Some(&mem), &invite("new"))
        .await;
    assert_eq!(reply["errCode"], 1001, "already a member: {reply}");
    let reply = app
        .post("/group/invite_user_to_group", Some(&mem), &invite("ghost"))
        .await;
    assert_eq!(reply["errCode"], 1101, "{reply}");

    // Kicks: members cannot, admins kick members only, nobody kicks the owner.
    let kick = |who: &str| json!({"groupID": "g1", "kickedUserIDs": [who]});
    for (token, target, code) in [
        (&mem, "new", 1002),
        (&adm, "own", 1002),
        (&own, "own", 1001),
        (&own, "ghost", 1203),
    ] {
        let reply = app
            .post("/group/kick_group", Some(token), &kick(target))
            .await;
        assert_eq!(reply["errCode"], code, "kick {target}: {reply}");
    }
    assert_eq!(app.say("out", "g1", "before").await, Ok(4));
    let client = app.nats.client().await;
    let mut out_pushes = client.subscribe("im.deliver.out").await.unwrap();
    client.flush().await.unwrap();
    app.ok("/group/kick_group", &adm, &kick("out")).await;
    let (conversation, tips) = push_of(&mut out_pushes, 1508).await;
    assert_eq!(conversation, "n_g1");
    assert_eq!(tips["kickedUserList"][0]["userID"], "out");

    // The kicked member sends nothing more and reads up to the kick (its copy, seq 5).
    assert_eq!(app.say("out", "g1", "after").await, Err(1203));
    assert_eq!(app.say("mem", "g1", "later").await, Ok(6));
    assert_eq!(app.max_seq(&mem, "mem", "sg_g1", 6).await, 6);
    assert_eq!(app.max_seq(&out, "out", "sg_g1", 5).await, 5);
    assert_eq!(
        app.pulled_seqs(&out, "out", "sg_g1", 6).await,
        [1, 2, 3, 4, 5]
    );

    // Quits: the owner cannot; a member can, and is capped the same way.
    let reply = app
        .post("/group/quit_group", Some(&own), &json!({"groupID": "g1"}))
        .await;
    assert_eq!(reply["errCode"], 1002, "{reply}");
    let reply = app
        .post(
            "/group/quit_group",
            Some(&mem),
            &json!({"groupID": "g1", "userID": "adm"}),
        )
        .await;
    assert_eq!(reply["errCode"], 1002, "for someone else: {reply}");
    app.ok("/group/quit_group", &mem, &json!({"groupID": "g1"}))
        .await;
    assert_eq!(app.say("mem", "g1", "gone").await, Err(1203));
    assert_eq!(
        app.roles(&own, "g1").await,
        [
            ("own".to_owned(), 100),
            ("adm".to_owned(), 60),
            ("new".to_owned(), 20)
        ]
    );
}

#[tokio::test]
async fn applications_follow_the_join_policy_and_are_answered_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["own", "ali", "bob", "cat"]).await;
    let own = app.user_token(&admin, "own", Platform::WEB).await;
    let ali = app.user_token(&admin, "ali", Platform::WEB).await;
    let bob = app.user_token(&admin, "bob", Platform::WEB).await;
    let cat = app.user_token(&admin, "cat", Platform::WEB).await;
    app.create_group(&own, "own", "club", &[]).await;
    let client = app.nats.client().await;
    let mut own_pushes = client.subscribe("im.deliver.own").await.unwrap();
    let mut ali_pushes = client.subscribe("im.deliver.ali").await.unwrap();
    client.flush().await.unwrap();

    // Policy 0: joining is an application, told to the owner (and the applicant).
    let join = json!({"groupID": "club", "reqMessage": "let me in", "joinSource": 3,
                      "inviterUserID": "bob"});
    app.ok("/group/join_group", &ali, &join).await;
    let (conversation, tips) = push_of(&mut own_pushes, 1503).await;
    assert_eq!(conversation, "n_ali_own");
    assert_eq!(
        tips["applicant"]["userID"], "ali",
        "the caller, not inviterUserID"
    );
    assert_eq!(tips["request"]["reqMsg"], "let me in");
    push_of(&mut ali_pushes, 1503).await;
    let unhandled = app
        .ok(
            "/group/get_group_application_unhandled_count",
            &own,
            &json!({"userID": "own", "time": 0}),
        )
        .await;
    assert_eq!(unhandled, json!({"count": 1}));
    let received = app
        .ok(
            "/group/get_recv_group_applicationList",
            &own,
            &json!({"fromUserID": "own", "pagination": page()}),
        )
        .await;
    assert_eq!(received["total"], 1);
    assert_eq!(received["groupRequests"][0]["userInfo"]["userID"], "ali");
    assert_eq!(received["groupRequests"][0]["groupInfo"]["groupID"], "club");
    let own_list = app
        .ok(
            "/group/get_user_req_group_applicationList",
            &ali,
            &json!({"userID": "ali", "pagination": page()}),
        )
        .await;
    assert_eq!(own_list["total"], 1);

    // Only a manager answers, with 1 or -1, once.
    let answer = |result: i32| {
        json!({"groupID": "club", "fromUserID": "ali", "handleResult": result,
               "handledMsg": "ok"})
    };
    let reply = app
        .post("/group/group_application_response", Some(&ali), &answer(1))
        .await;
    assert_eq!(reply["errCode"], 1002, "{reply}");
    let reply = app
        .post("/group/group_application_response", Some(&own), &answer(2))
        .await;
    assert_eq!(reply["errCode"], 1001, "{reply}");
    app.ok("/group/group_application_response", &own, &answer(1))
        .await;
    let (_, tips) = push_of(&mut ali_pushes, 1505).await;
    assert_eq!(tips["request"]["handleResult"], 1);
    let (conversation, tips) = push_of(&mut ali_pushes, 1510).await;
    assert_eq!(conversation, "n_club");
    assert_eq!(tips["entrantUser"]["userID"], "ali");
    let reply = app
        .post("/group/group_application_response", Some(&own), &answer(-1))
        .await;
    assert_eq!(
        reply,
        error(
            1206,
            "GroupRequestHandled",
            "the application of ali to group \"club\" is already handled"
        )
    );
    let reply = app.post("/group/join_group", Some(&ali), &join).await;
    assert_eq!(reply["errCode"], 1001, "already a member: {reply}");

    // A refusal.
    app.ok("/group/join_group", &bob, &join).await;
    app.ok(
        "/group/group_application_response",
        &own,
        &json!({"groupID": "club", "fromUserID": "bob", "handleResult": -1}),
    )
    .await;
    assert_eq!(app.say("bob", "club", "hi").await, Err(1203));

    // Policy 2: anyone joins at once.
    app.ok(
        "/group/set_group_info_ex",
        &own,
        &json!({"groupID": "club", "needVerification": 2}),
    )
    .await;
    app.ok("/group/join_group", &cat, &join).await;
    assert!(app.say("cat", "club", "hi all").await.is_ok());
    let reply = app
        .post(
            "/group/join_group",
            Some(&cat),
            &json!({"groupID": "club", "joinSource": 9}),
        )
        .await;
    assert_eq!(reply["errCode"], 1001, "{reply}");
    let reply = app
        .post(
            "/group/join_group",
            Some(&cat),
            &json!({"groupID": "nope", "joinSource": 3}),
        )
        .await;
    assert_eq!(reply["errCode"], 1201, "{reply}");
}

#[tokio::test]
async fn mutes_roles_transfer_and_dismissal_bind_senders() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["own", "adm", "mem", "two"]).await;
    let own = app.user_token(&admin, "own", Platform::WEB).await;
    let adm = app.user_token(&admin, "adm", Platform::WEB).await;
    let mem = app.user_token(&admin, "mem", Platform::WEB).await;
    app.create_group(&own, "own", "g", &["adm", "mem", "two"])
        .await;

    // Roles: only 60 or 20; members cannot promote; nobody sets 100.
    let set_role = |user: &str, role: i32| json!({"members": [{"groupID": "g", "userID": user, "roleLevel": role}]});
    for (token, body, code) in [
        (&own, set_role("adm", 100), 1002),
        (&own, set_role("adm", 50), 1001),
        (&mem, set_role("mem", 60), 1002),
        (&own, set_role("own", 60), 1002),
    ] {
        let reply = app
            .post("/group/set_group_member_info", Some(token), &body)
            .await;
        assert_eq!(reply["errCode"], code, "{body}: {reply}");
    }
    app.ok("/group/set_group_member_info", &own, &set_role("adm", 60))
        .await;
    // A member changes their own group nickname.
    app.ok(
        "/group/set_group_member_info",
        &mem,
        &json!({"members": [{"groupID": "g", "userID": "mem", "nickname": "m"}]}),
    )
    .await;
    let info = app
        .ok(
            "/group/get_group_members_info",
            &mem,
            &json!({"groupID": "g", "userIDs": ["mem", "two"]}),
        )
        .await;
    assert_eq!(info["members"][0]["nickname"], "m");
    assert_eq!(info["members"][1]["nickname"], "nick two", "the profile's");

    // A muted member cannot send until the mute is lifted; nobody mutes the owner.
    let mute = |user: &str| json!({"groupID": "g", "userID": user, "mutedSeconds": 600});
    let reply = app
        .post("/group/mute_group_member", Some(&adm), &mute("own"))
        .await;
    assert_eq!(reply["errCode"], 1002, "{reply}");
    let reply = app
        .post(
            "/group/mute_group_member",
            Some(&adm),
            &json!({"groupID": "g", "userID": "mem", "mutedSeconds": 0}),
        )
        .await;
    assert_eq!(reply["errCode"], 1001, "{reply}");
    // An admin neither demotes nor mutes another admin; a member lifts no mute.
    app.ok("/group/set_group_member_info", &own, &set_role("two", 60))
        .await;
    for (path, body) in [
        ("/group/set_group_member_info", set_role("two", 20)),
        ("/group/mute_group_member", mute("two")),
    ] {
        let reply = app.post(path, Some(&adm), &body).await;
        assert_eq!(reply["errCode"], 1002, "{path}: {reply}");
    }
    app.ok("/group/set_group_member_info", &own, &set_role("two", 20))
        .await;
    let reply = app
        .post(
            "/group/cancel_mute_group_member",
            Some(&mem),
            &json!({"groupID": "g", "userID": "two"}),
        )
        .await;
    assert_eq!(reply["errCode"], 1002, "{reply}");
    app.ok("/group/mute_group_member", &adm, &mute("mem")).await;
    assert_eq!(app.say("mem", "g", "hello").await, Err(1402));
    app.ok(
        "/group/cancel_mute_group_member",
        &adm,
        &json!({"groupID": "g", "userID": "mem"}),
    )
    .await;
    assert!(app.say("mem", "g", "hello").await.is_ok());

    // A muted group: members are silent, admins and the owner are not.
    let reply = app
        .post("/group/mute_group", Some(&mem), &json!({"groupID": "g"}))
        .await;
    assert_eq!(reply["errCode"], 1002, "{reply}");
    app.ok("/group/mute_group", &adm, &json!({"groupID": "g"}))
        .await;
    assert_eq!(app.say("mem", "g", "x").await, Err(1403));
    assert!(app.say("adm", "g", "x").await.is_ok());
    app.ok("/group/cancel_mute_group", &own, &json!({"groupID": "g"}))
        .await;
    assert!(app.say("mem", "g", "x").await.is_ok());

    // Transfer: only the owner; roles swap.
    let transfer = json!({"groupID": "g", "oldOwnerUserID": "own", "newOwnerUserID": "adm"});
    let reply = app
        .post("/group/transfer_group", Some(&adm), &transfer)
        .await;
    assert_eq!(reply["errCode"], 1002, "{reply}");
    app.ok("/group/transfer_group", &own, &transfer).await;
    assert_eq!(
        app.roles(&mem, "g").await,
        [
            ("adm".to_owned(), 100),
            ("own".to_owned(), 60),
            ("mem".to_owned(), 20),
            ("two".to_owned(), 20)
        ]
    );

    // Dismissal: only the owner; afterwards nothing is sent or changed.
    let reply = app
        .post("/group/dismiss_group", Some(&own), &json!({"groupID": "g"}))
        .await;
    assert_eq!(reply["errCode"], 1002, "{reply}");
    app.ok("/group/dismiss_group", &adm, &json!({"groupID": "g"}))
        .await;
    assert_eq!(app.say("adm", "g", "x").await, Err(1204));
    let reply = app
        .post(
            "/group/set_group_info_ex",
            Some(&adm),
            &json!({"groupID": "g", "groupName": "again"}),
        )
        .await;
    assert_eq!(reply["errCode"], 1204, "{reply}");
    let info = app
        .ok("/group/get_groups_info", &mem, &json!({"groupIDs": ["g"]}))
        .await;
    assert_eq!(info["groupInfos"][0]["status"], 2);
    assert_eq!(info["groupInfos"][0]["memberCount"], 0);
    for (path, token, body) in [
        (
            "/group/invite_user_to_group",
            &adm,
            json!({"groupID": "g", "invitedUserIDs": ["mem"]}),
        ),
        (
            "/group/kick_group",
            &adm,
            json!({"groupID": "g", "kickedUserIDs": ["mem"]}),
        ),
        (
            "/group/join_group",
            &mem,
            json!({"groupID": "g", "joinSource": 3}),
        ),
        ("/group/quit_group", &mem, json!({"groupID": "g"})),
        ("/group/mute_group", &adm, json!({"groupID": "g"})),
        ("/group/dismiss_group", &adm, json!({"groupID": "g"})),
    ] {
        let reply = app.post(path, Some(token), &body).await;
        assert_eq!(reply["errCode"], 1204, "{path}: {reply}");
    }
}

#[tokio::test]
async fn incremental_sync_gives_exactly_the_changes_after_a_version() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["own", "a", "b", "c"]).await;
    let own = app.user_token(&admin, "own", Platform::WEB).await;
    let a = app.user_token(&admin, "a", Platform::WEB).await;
    app.create_group(&own, "own", "g1", &["a"]).await;

    // Joined groups: full at first, then only what changed.
    let first = app
        .ok(
            "/group/get_incremental_join_groups",
            &a,
            &json!({"userID": "a", "versionID": "", "version": 0}),
        )
        .await;
    assert_eq!(first["full"], true);
    assert_eq!(first["insert"], Value::Null);
    let ids = app
        .ok(
            "/group/get_full_join_group_ids",
            &a,
            &json!({"userID": "a", "idHash": 0}),
        )
        .await;
    assert_eq!(ids["groupIDs"], json!(["g1"]));
    assert_eq!(ids["versionID"], first["versionID"]);
    app.create_group(&own, "own", "g2", &["a"]).await;
    let next = app
        .ok(
            "/group/get_incremental_join_groups",
            &a,
            &json!({"userID": "a", "versionID": first["versionID"],
                    "version": first["version"]}),
        )
        .await;
    assert_eq!(next["full"], false, "{next}");
    assert_eq!(next["insert"][0]["groupID"], "g2");
    assert_eq!(next["delete"], Value::Null);

    // Members: a client at version N gets the inserts, deletes and the group after N.
    let members = app
        .ok(
            "/group/get_incremental_group_members",
            &a,
            &json!({"groupID": "g1", "versionID": "", "version": 0}),
        )
        .await;
    assert_eq!(members["full"], true);
    assert_eq!(members["group"]["groupID"], "g1");
    let (version_id, version) = (members["versionID"].clone(), members["version"].clone());
    let full_ids = app
        .ok(
            "/group/get_full_group_member_user_ids",
            &a,
            &json!({"groupID": "g1", "idHash": 0}),
        )
        .await;
    assert_eq!(full_ids["userIDs"], json!(["a", "own"]));
    let hash = full_ids_hash(&["a", "own"]);
    let equal = app
        .ok(
            "/group/get_full_group_member_user_ids",
            &a,
            &json!({"groupID": "g1", "idHash": hash}),
        )
        .await;
    assert_eq!(equal["equal"], true, "{equal}");
    assert_eq!(equal["userIDs"], Value::Null);

    app.ok(
        "/group/invite_user_to_group",
        &own,
        &json!({"groupID": "g1", "invitedUserIDs": ["b", "c"]}),
    )
    .await;
    app.ok(
        "/group/kick_group",
        &own,
        &json!({"groupID": "g1", "kickedUserIDs": ["c"]}),
    )
    .await;
    app.ok(
        "/group/set_group_info_ex",
        &own,
        &json!({"groupID": "g1", "introduction": "hello"}),
    )
    .await;
    let delta = app
        .ok(
            "/group/get_incremental_group_members",
            &a,
            &json!({"groupID": "g1", "versionID": version_id, "version": version}),
        )
        .await;
    assert_eq!(delta["full"], false, "{delta}");
    let inserted: Vec<&str> = delta["insert"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["userID"].as_str().unwrap())
        .collect();
    assert_eq!(inserted, ["b"]);
    assert_eq!(delta["delete"], json!(["c"]));
    assert_eq!(delta["group"]["introduction"], "hello");
    let batch = app
        .ok(
            "/group/get_incremental_group_members_batch",
            &a,
            &json!({"userID": "a", "reqList": [
                {"groupID": "g1", "versionID": version_id, "version": version},
                {"groupID": "g2", "versionID": "", "version": 0},
                {"groupID": "g9", "versionID": "", "version": 0}]}),
        )
        .await;
    let resp = batch["respList"].as_object().unwrap();
    assert_eq!(resp.len(), 2, "only the user's groups: {batch}");
    assert_eq!(resp["g1"]["delete"], json!(["c"]));
    assert_eq!(resp["g2"]["full"], true);
    // A kicked user's joined-group log shows the delete.
    let c = app.user_token(&admin, "c", Platform::WEB).await;
    let c_groups = app
        .ok(
            "/group/get_full_join_group_ids",
            &c,
            &json!({"userID": "c", "idHash": 0}),
        )
        .await;
    assert_eq!(c_groups["groupIDs"], Value::Null);
    // Someone else's log is not readable.
    let reply = app
        .post(
            "/group/get_incremental_join_groups",
            Some(&a),
            &json!({"userID": "own", "versionID": "", "version": 0}),
        )
        .await;
    assert_eq!(reply["errCode"], 1002, "{reply}");
}

fn full_ids_hash(ids: &[&str]) -> u64 {
    use md5::Digest as _;
    let digest = md5::Md5::digest(serde_json::to_string(ids).unwrap().as_bytes());
    u64::from_be_bytes(digest[..8].try_into().unwrap())
}

#[tokio::test]
async fn without_history_for_new_members_a_joiner_reads_only_what_follows() {
    let app = TestApp::spawn_with_messaging(MessagingConfig {
        enable_history_for_new_members: false,
        ..MessagingConfig::default()
    })
    .await;
    let admin = app.admin_token().await;
    app.register(&admin, &["own", "late"]).await;
    let own = app.user_token(&admin, "own", Platform::WEB).await;
    let late = app.user_token(&admin, "late", Platform::WEB).await;
    app.create_group(&own, "own", "g", &[]).await;
    for index in 0..3 {
        app.say("own", "g", &format!("early {index}"))
            .await
            .unwrap();
    }
    // seq 1 is the creation's copy; 2..=4 the early messages.
    app.ok(
        "/group/invite_user_to_group",
        &own,
        &json!({"groupID": "g", "invitedUserIDs": ["late"]}),
    )
    .await;
    // The invitation's copy is seq 5, the first the newcomer reads.
    assert_eq!(app.say("own", "g", "welcome").await, Ok(6));
    assert_eq!(app.max_seq(&late, "late", "sg_g", 6).await, 6);
    assert_eq!(app.pulled_seqs(&late, "late", "sg_g", 6).await, [5, 6]);
    assert_eq!(
        app.pulled_seqs(&own, "own", "sg_g", 6).await,
        [1, 2, 3, 4, 5, 6]
    );
}

#[tokio::test]
async fn bad_group_requests_get_openim_codes() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["own", "mem"]).await;
    let own = app.user_token(&admin, "own", Platform::WEB).await;
    app.create_group(&own, "own", "g", &["mem"]).await;
    let cases = [
        ("/group/get_groups_info", json!({"groupIDs": []}), 1001),
        (
            "/group/get_groups_info",
            json!({"groupIDs": ["g", "g"]}),
            1001,
        ),
        ("/group/get_groups_info", json!({"groupIDs": "g"}), 1001),
        ("/group/kick_group", json!({"groupID": "g"}), 1001),
        (
            "/group/kick_group",
            json!({"groupID": "", "kickedUserIDs": ["mem"]}),
            1001,
        ),
        (
            "/group/invite_user_to_group",
            json!({"groupID": "nope", "invitedUserIDs": ["mem"]}),
            1201,
        ),
        (
            "/group/set_group_info_ex",
            json!({"groupID": "g", "lookMemberInfo": 7}),
            1001,
        ),
        ("/group/set_group_info", json!({}), 1001),
        ("/group/set_group_member_info", json!({"members": []}), 1001),
        (
            "/group/set_group_member_info",
            json!({"members": [{"groupID": "g", "userID": "mem"}, {"groupID": "h", "userID": "own"}]}),
            1001,
        ),
        (
            "/group/mute_group_member",
            json!({"groupID": "g", "userID": "mem", "mutedSeconds": -1}),
            1001,
        ),
        (
            "/group/transfer_group",
            json!({"groupID": "g", "oldOwnerUserID": "own", "newOwnerUserID": "own"}),
            1001,
        ),
        (
            "/group/transfer_group",
            json!({"groupID": "g", "oldOwnerUserID": "own", "newOwnerUserID": "ghost"}),
            1203,
        ),
        (
            "/group/get_group_member_list",
            json!({"groupID": "g"}),
            1001,
        ),
        (
            "/group/get_group_member_list",
            json!({"groupID": "g", "pagination": page(), "filter": 9}),
            1001,
        ),
        (
            "/group/get_recv_group_applicationList",
            json!({"fromUserID": "own", "pagination": page(), "handleResults": [5]}),
            1001,
        ),
        (
            "/group/group_application_response",
            json!({"groupID": "g", "fromUserID": "mem", "handleResult": 1}),
            1004,
        ),
        ("/group/get_groups", json!({"pagination": page()}), 1002),
        (
            "/group/get_incremental_group_members_batch",
            json!({"userID": "mem", "reqList": []}),
            1002,
        ),
    ];
    for (path, body, code) in cases {
        let reply = app.post(path, Some(&own), &body).await;
        assert_eq!(reply["errCode"], code, "{path} {body} → {reply}");
    }
    // Nothing changed.
    assert_eq!(
        app.roles(&own, "g").await,
        [("own".to_owned(), 100), ("mem".to_owned(), 20)]
    );
    let found = app
        .ok(
            "/group/get_groups",
            &admin,
            &json!({"pagination": page(), "groupName": "group"}),
        )
        .await;
    assert_eq!(found["total"], 1);
    assert_eq!(found["groups"][0]["groupOwnerUserName"], "nick own");
}

#[tokio::test]
async fn group_statistics_count_creations_and_messages() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["own", "mem"]).await;
    let own = app.user_token(&admin, "own", Platform::WEB).await;
    app.create_group(&own, "own", "busy", &["mem"]).await;
    app.create_group(&own, "own", "quiet", &["mem"]).await;
    app.say("own", "busy", "one").await.unwrap();
    app.say("mem", "busy", "two").await.unwrap();
    let now = crate::support::now_millis();
    let range = json!({"start": now - 60_000, "end": now + 60_000});
    let created = app.ok("/statistics/group/create", &admin, &range).await;
    assert_eq!(created["total"], 2);
    assert_eq!(created["before"], 0);
    assert_eq!(
        created["count"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(Value::as_i64)
            .sum::<i64>(),
        2,
        "{created}"
    );
    let mut active = json!({"pagination": page()});
    active["start"] = range["start"].clone();
    active["end"] = range["end"].clone();
    // The messages reach the read model a moment after the send.
    let mut found = Value::Null;
    for _ in 0..100 {
        found = app.ok("/statistics/group/active", &admin, &active).await;
        if found["msgCount"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        found["msgCount"], 2,
        "notifications are not counted: {found}"
    );
    assert_eq!(found["groupCount"], 1);
    assert_eq!(found["groups"][0]["group"]["groupID"], "busy");
    assert_eq!(found["groups"][0]["count"], 2);
    let reply = app
        .post("/statistics/group/active", Some(&own), &active)
        .await;
    assert_eq!(reply["errCode"], 1002, "{reply}");
    let reply = app
        .post(
            "/statistics/group/create",
            Some(&admin),
            &json!({"start": 10, "end": 5}),
        )
        .await;
    assert_eq!(reply["errCode"], 1001, "{reply}");
}

#[tokio::test]
async fn the_remaining_reads_answer_members_and_managers_only() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["own", "mem", "ask", "out"]).await;
    let own = app.user_token(&admin, "own", Platform::WEB).await;
    let mem = app.user_token(&admin, "mem", Platform::WEB).await;
    let ask = app.user_token(&admin, "ask", Platform::WEB).await;
    let out = app.user_token(&admin, "out", Platform::WEB).await;
    app.create_group(&own, "own", "g", &["mem"]).await;

    // set_group_info: empty fields stay as they are.
    app.ok(
        "/group/set_group_info",
        &own,
        &json!({"groupInfoForSet": {"groupID": "g", "introduction": "about us"}}),
    )
    .await;
    let info = app
        .ok("/group/get_groups_info", &mem, &json!({"groupIDs": ["g"]}))
        .await;
    assert_eq!(info["groupInfos"][0]["groupName"], "group g");
    assert_eq!(info["groupInfos"][0]["introduction"], "about us");
    let reply = app
        .post(
            "/group/set_group_info",
            Some(&mem),
            &json!({"groupInfoForSet": {"groupID": "g", "groupName": "mine"}}),
        )
        .await;
    assert_eq!(reply["errCode"], 1002, "{reply}");

    // Member IDs and the abstract: members only.
    let ids = app
        .ok(
            "/group/get_group_member_user_id",
            &mem,
            &json!({"groupID": "g"}),
        )
        .await;
    assert_eq!(ids["userIDs"], json!(["mem", "own"]));
    let summary = app
        .ok(
            "/group/get_group_abstract_info",
            &mem,
            &json!({"groupIDs": ["g"]}),
        )
        .await;
    let entry = &summary["groupAbstractInfos"][0];
    assert_eq!(entry["groupMemberNumber"], 2);
    assert_eq!(entry["groupMemberListHash"], full_ids_hash(&["mem", "own"]));
    for path in [
        "/group/get_group_member_user_id",
        "/group/get_group_abstract_info",
    ] {
        let body = json!({"groupID": "g", "groupIDs": ["g"]});
        let reply = app.post(path, Some(&out), &body).await;
        assert_eq!(reply["errCode"], 1203, "{path}: {reply}");
    }

    // An application, seen by its applicant and the managers, not by ordinary members.
    app.ok(
        "/group/join_group",
        &ask,
        &json!({"groupID": "g", "joinSource": 4, "reqMessage": "hi"}),
    )
    .await;
    let by_manager = app
        .ok(
            "/group/get_group_users_req_application_list",
            &own,
            &json!({"groupID": "g", "userIDs": ["ask"]}),
        )
        .await;
    assert_eq!(by_manager["total"], 1);
    assert_eq!(by_manager["groupRequests"][0]["joinSource"], 4);
    assert_eq!(by_manager["groupRequests"][0]["handleResult"], 0);
    let reply = app
        .post(
            "/group/get_group_users_req_application_list",
            Some(&mem),
            &json!({"groupID": "g", "userIDs": ["ask"]}),
        )
        .await;
    assert_eq!(reply["errCode"], 1002, "{reply}");
    let own_view = app
        .ok(
            "/group/get_specified_user_group_request_info",
            &ask,
            &json!({"groupID": "g", "userID": "ask"}),
        )
        .await;
    assert_eq!(own_view["groupRequests"][0]["reqMsg"], "hi");
    let reply = app
        .post(
            "/group/get_specified_user_group_request_info",
            Some(&mem),
            &json!({"groupID": "g", "userID": "ask"}),
        )
        .await;
    assert_eq!(reply["errCode"], 1002, "{reply}");
    let none = app
        .ok(
            "/group/get_recv_group_applicationList",
            &mem,
            &json!({"fromUserID": "mem", "pagination": page()}),
        )
        .await;
    assert_eq!(none["total"], 0, "an ordinary member manages nothing");
    let since_later = app
        .ok(
            "/group/get_group_application_unhandled_count",
            &own,
            &json!({"userID": "own", "time": crate::support::now_millis() + 60_000}),
        )
        .await;
    assert_eq!(since_later, json!({"count": 0}));
}

#[tokio::test]
async fn a_deleted_group_conversation_comes_back_with_the_next_message() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["own", "mem"]).await;
    let own = app.user_token(&admin, "own", Platform::WEB).await;
    let mem = app.user_token(&admin, "mem", Platform::WEB).await;
    app.create_group(&own, "own", "g", &["mem"]).await;
    let listed = |token: String| {
        let app = &app;
        async move {
            let all = app
                .ok(
                    "/conversation/get_all_conversations",
                    &token,
                    &json!({"ownerUserID": "mem"}),
                )
                .await;
            all["conversations"]
                .as_array()
                .map(|rows| {
                    rows.iter()
                        .map(|row| row["conversationID"].as_str().unwrap().to_owned())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        }
    };
    assert!(listed(mem.clone()).await.contains(&"sg_g".to_owned()));
    app.ok(
        "/conversation/delete_conversations",
        &mem,
        &json!({"ownerUserID": "mem", "conversationIDs": ["sg_g"]}),
    )
    .await;
    assert!(!listed(mem.clone()).await.contains(&"sg_g".to_owned()));
    let log = app
        .ok(
            "/conversation/get_incremental_conversations",
            &mem,
            &json!({"userID": "mem", "versionID": "", "version": 0}),
        )
        .await;
    app.say("own", "g", "are you there?").await.unwrap();
    // Back in the list, and in the version log as an insert, so incremental sync sees it.
    let mut delta = Value::Null;
    for _ in 0..100 {
        delta = app
            .ok(
                "/conversation/get_incremental_conversations",
                &mem,
                &json!({"userID": "mem", "versionID": log["versionID"],
                        "version": log["version"]}),
            )
            .await;
        if delta["insert"].is_array() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(delta["full"], false, "{delta}");
    assert_eq!(delta["insert"][0]["conversationID"], "sg_g", "{delta}");
    assert!(listed(mem.clone()).await.contains(&"sg_g".to_owned()));
}

#[tokio::test]
async fn a_new_nickname_is_told_where_the_member_shows_it() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["own", "mem"]).await;
    let own = app.user_token(&admin, "own", Platform::WEB).await;
    let mem = app.user_token(&admin, "mem", Platform::WEB).await;
    app.create_group(&own, "own", "g1", &["mem"]).await;
    app.create_group(&own, "own", "g2", &["mem"]).await;
    // A member with a group nickname of their own shows it, not the profile's.
    app.ok(
        "/group/set_group_member_info",
        &mem,
        &json!({"members": [{"groupID": "g2", "userID": "mem", "nickname": "in g2"}]}),
    )
    .await;
    let versions = |group: &str| {
        let (app, own, group) = (&app, own.clone(), group.to_owned());
        async move {
            app.ok(
                "/group/get_incremental_group_members",
                &own,
                &json!({"groupID": group, "versionID": "", "version": 0}),
            )
            .await
        }
    };
    let (g1_before, g2_before) = (versions("g1").await, versions("g2").await);
    let client = app.nats.client().await;
    let mut own_pushes = client.subscribe("im.deliver.own").await.unwrap();
    client.flush().await.unwrap();
    app.ok(
        "/user/update_user_info_ex",
        &mem,
        &json!({"userInfo": {"userID": "mem", "nickname": "Emm"}}),
    )
    .await;
    // Told in g1, where mem shows the profile's nickname; not in g2, where mem has their own.
    let (conversation, tips) = push_of(&mut own_pushes, 1516).await;
    assert_eq!(conversation, "n_g1");
    assert_eq!(tips["changedUser"]["userID"], "mem");
    assert_eq!(tips["changedUser"]["nickname"], "Emm");
    // g1's member log has the update, so member sync brings it; g2's shows its own nickname.
    let since = |before: &Value, group: &str| {
        let (app, own, group, before) = (&app, own.clone(), group.to_owned(), before.clone());
        async move {
            app.ok(
                "/group/get_incremental_group_members",
                &own,
                &json!({"groupID": group, "versionID": before["versionID"],
                        "version": before["version"]}),
            )
            .await
        }
    };
    let g1 = since(&g1_before, "g1").await;
    assert_eq!(g1["full"], false, "{g1}");
    assert_eq!(g1["update"][0]["userID"], "mem");
    assert_eq!(g1["update"][0]["nickname"], "Emm");
    let g2 = since(&g2_before, "g2").await;
    assert_eq!(g2["update"], Value::Null, "{g2}");
    assert_eq!(g2["version"], g2_before["version"]);
}
