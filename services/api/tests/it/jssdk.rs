//! The JS SDK's conversation list, in protobuf as the SDK sends it, and in JSON.

use base64::Engine as _;
use jetim_common::auth::Platform;
use jetim_schemas::openim::jssdk;
use prost::Message as _;
use serde_json::{Value, json};

use crate::support::{TestApp, error};

impl TestApp {
    async fn jssdk(&self, path: &str, token: &str, content_type: &str, body: Vec<u8>) -> Value {
        self.http
            .post(format!("{}{path}", self.address))
            .header("operationID", "op")
            .header("token", token)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl TestApp {
    /// `/jssdk/get_conversations` in protobuf, as the JS SDK asks for conversations it has
    /// not seen.
    async fn designated_conversations(
        &self,
        token: &str,
        ids: &[&str],
    ) -> jssdk::GetConversationsResp {
        let request = jssdk::GetConversationsReq {
            owner_user_id: String::new(),
            conversation_i_ds: ids.iter().map(|id| (*id).to_owned()).collect(),
        };
        let reply = self
            .jssdk(
                "/jssdk/get_conversations",
                token,
                "application/x-protobuf",
                request.encode_to_vec(),
            )
            .await;
        decoded(&reply)
    }
}

fn decoded<M: prost::Message + Default>(reply: &Value) -> M {
    assert_eq!(reply["errCode"], 0, "{reply}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(reply["data"].as_str().unwrap())
        .unwrap();
    M::decode(bytes.as_slice()).unwrap()
}

#[tokio::test]
async fn the_conversation_list_comes_pinned_first_then_newest_with_unread_counts() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["ana", "ben", "cat"]).await;
    for (from, text) in [("ana", "first"), ("ana", "second"), ("cat", "meow")] {
        app.ok(
            "/msg/send_msg",
            &admin,
            &json!({"sendID": from, "recvID": "ben", "sessionType": 1, "contentType": 101,
                    "content": {"content": text}}),
        )
        .await;
    }
    app.ok(
        "/msg/send_msg",
        &admin,
        &json!({"sendID": "ana", "recvID": "ben", "sessionType": 1, "contentType": 101,
                "content": {"content": "third"}}),
    )
    .await;
    let ben = app.user_token(&admin, "ben", Platform::WEB).await;
    app.ok(
        "/conversation/set_conversations",
        &ben,
        &json!({"userIDs": ["ben"], "conversation": {"conversationID": "si_ben_cat",
                "conversationType": 1, "userID": "cat", "isPinned": true}}),
    )
    .await;

    let request = jssdk::GetActiveConversationsReq {
        owner_user_id: "someone-else".into(),
        count: 0,
    };
    let mut active = jssdk::GetActiveConversationsResp::default();
    for _ in 0..100 {
        let reply = app
            .jssdk(
                "/jssdk/get_active_conversations",
                &ben,
                "application/x-protobuf",
                request.encode_to_vec(),
            )
            .await;
        active = decoded(&reply);
        if active.conversations.len() == 2 && active.unread_count == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(active.unread_count, 4, "ben has read nothing");
    let ids: Vec<&str> = active
        .conversations
        .iter()
        .map(|item| item.conversation.as_ref().unwrap().conversation_id.as_str())
        .collect();
    assert_eq!(
        ids,
        ["si_ben_cat", "si_ana_ben"],
        "pinned first, for the caller"
    );
    let ana = &active.conversations[1];
    assert_eq!((ana.max_seq, ana.read_seq), (3, 0));
    let last = ana.last_msg.as_ref().unwrap();
    assert_eq!(last.seq, 3);
    assert_eq!(last.content, br#"{"content":"third"}"#);
    assert_eq!(ana.user.as_ref().unwrap().nickname, "nick ana");
    assert!(ana.friend.is_none());

    let some = app
        .designated_conversations(&ben, &["si_ana_ben", "si_ana_cat"])
        .await;
    assert_eq!(
        some.conversations.len(),
        1,
        "only ben's existing conversations"
    );
    assert_eq!(some.unread_count, 3);

    let reply = app
        .jssdk(
            "/jssdk/get_conversations",
            &ben,
            "application/json",
            br#"{"conversationIDs":["si_ana_ben"]}"#.to_vec(),
        )
        .await;
    let item = &reply["data"]["conversations"][0];
    assert_eq!(reply["data"]["unreadCount"], 3);
    assert_eq!(item["conversation"]["conversationID"], "si_ana_ben");
    assert_eq!(item["lastMsg"]["seq"], 3);
    assert_eq!(item["user"]["userID"], "ana");
    assert_eq!(item["friend"], Value::Null);

    let reply = app
        .jssdk(
            "/jssdk/get_conversations",
            &ben,
            "text/plain",
            b"x".to_vec(),
        )
        .await;
    assert_eq!(reply, error(1001, "ArgsError", "unsupported content type"));
    let reply = app
        .jssdk(
            "/jssdk/get_active_conversations",
            &ben,
            "application/x-protobuf",
            vec![0x0a, 0xff],
        )
        .await;
    assert_eq!(reply["errCode"], 1001, "{reply}");
}

/// A message of `conversation_id` stored straight into the log, as the send path stores it:
/// to `recv_id` in a single chat, or to the group `group_id` when that is not empty.
async fn append_message(
    app: &TestApp,
    send_id: &str,
    recv_id: &str,
    group_id: &str,
    conversation_id: &str,
) {
    use jetim_schemas::events::msg::MsgSent;
    let log = jetim_streams::EventLog::open(app.jetstream.clone())
        .await
        .unwrap();
    let now = crate::support::now_millis();
    static APPENDED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let count = APPENDED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let client_msg_id = format!("c-{conversation_id}-{count}");
    let message = MsgSent {
        conversation_id: conversation_id.into(),
        seq: 0,
        server_msg_id: format!("s-{conversation_id}"),
        client_msg_id: client_msg_id.clone(),
        send_id: send_id.into(),
        recv_id: recv_id.into(),
        group_id: group_id.into(),
        sender_platform_id: 5,
        sender_nickname: send_id.into(),
        sender_face_url: String::new(),
        session_type: if group_id.is_empty() { 1 } else { 3 },
        msg_from: 100,
        content_type: 101,
        content: r#"{"content":"ahead of the read model"}"#.into(),
        send_time: now,
        create_time: now,
        options: Default::default(),
        offline_push: None,
        at_user_ids: Vec::new(),
        attached_info: String::new(),
        ex: String::new(),
    };
    log.append_to_timeline(
        conversation_id,
        &client_msg_id,
        jetim_streams::Actor::with_operation(send_id, "op-race"),
        &message,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn reads_that_race_a_push_wait_for_the_projection_and_others_do_not() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["ana", "ben"]).await;
    let ben = app.user_token(&admin, "ben", Platform::WEB).await;
    app.messages_caught_up().await;

    // The messages projection's next batch waits on its registry row, uncommitted, as if
    // it lagged: what it applies is not readable until the row is let go.
    let holder = hold_projection(&app, "messages").await;
    // A message a push may already have brought ben, in a conversation new to both; and
    // one of a conversation ben is not in.
    append_message(&app, "ana", "ben", "", "si_ana_ben").await;
    append_message(&app, "ana", "cat", "", "si_ana_cat").await;
    append_message(&app, "ana", "cat", "", "n_ana_cat").await;

    // Ben asks for it, by conversation and by pull, before the read model has it: both wait.
    let mut asked = std::pin::pin!(app.designated_conversations(&ben, &["si_ana_ben"]));
    let pull = json!({"userID": "ben", "seqRanges": [
        {"conversationID": "si_ana_ben", "begin": 1, "end": 1, "num": 10}]});
    let mut pulled = std::pin::pin!(app.post("/msg/pull_msg_by_seq", Some(&ben), &pull));
    let waiting = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        futures::future::join(&mut asked, &mut pulled),
    )
    .await;
    assert!(
        waiting.is_err(),
        "the lookup and the pull wait for the projection"
    );

    // A conversation the log has nothing of is answered at once, lag or not; so is one
    // whose ID shows ben is not in it, whatever the log holds of it.
    let started = std::time::Instant::now();
    let none = app
        .designated_conversations(
            &ben,
            &["si_ben_nobody", "not even an ID", "si_ana_cat", "n_ana_cat"],
        )
        .await;
    assert!(none.conversations.is_empty());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "no wait for what the log does not hold, or for others' conversations: {:?}",
        started.elapsed()
    );

    holder.batch_execute("ROLLBACK").await.unwrap();
    let (found, pulled) = futures::future::join(asked, pulled).await;
    assert_eq!(found.conversations.len(), 1, "{found:?}");
    let conversation = &found.conversations[0];
    assert_eq!(conversation.max_seq, 1);
    assert_eq!(
        conversation.last_msg.as_ref().unwrap().content,
        br#"{"content":"ahead of the read model"}"#
    );
    assert_eq!(pulled["errCode"], 0, "{pulled}");
    let messages = pulled["data"]["msgs"]["si_ana_ben"]["Msgs"]
        .as_array()
        .unwrap();
    assert_eq!(messages.len(), 1, "{pulled}");
    assert_eq!(messages[0]["seq"], 1);
    assert_eq!(messages[0]["sendID"], "ana");
}

/// Holds a projection's registry row in a transaction of its own, so the projection's next
/// batch waits uncommitted until the returned client rolls back.
async fn hold_projection(app: &TestApp, name: &str) -> tokio_postgres::Client {
    let (holder, connection) =
        tokio_postgres::connect(&app.database.config.url, tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM projections WHERE name = '{name}' FOR UPDATE"
        ))
        .await
        .unwrap();
    holder
}

#[tokio::test]
async fn a_lookup_of_a_new_group_waits_for_the_members_rows_too() {
    use jetim_schemas::events::group::{GroupCreated, GroupProfile, NewMember};
    use jetim_streams::subject::ConversationKind;

    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["ana", "ben"]).await;
    let ben = app.user_token(&admin, "ben", Platform::WEB).await;
    app.messages_caught_up().await;
    let messages = hold_projection(&app, "messages").await;
    let groups = hold_projection(&app, "groups").await;

    // A group made with ben in it, and a message to it, neither projected yet.
    let log = jetim_streams::EventLog::open(app.jetstream.clone())
        .await
        .unwrap();
    let member = |user: &str, role_level| NewMember {
        user_id: user.into(),
        role_level,
        join_source: 1,
        inviter_user_id: String::new(),
    };
    let created = GroupCreated {
        group_id: "g".into(),
        creator_user_id: "ana".into(),
        group_type: 2,
        profile: GroupProfile::default(),
        members: vec![member("ana", 100), member("ben", 20)],
        create_time: 1,
    };
    let group_log = jetim_streams::Subject::conversation("sg_g", ConversationKind::Group).unwrap();
    log.append(
        &group_log,
        "ana",
        jetim_streams::Expect::Empty,
        None,
        &created,
    )
    .await
    .unwrap();
    append_message(&app, "ana", "", "g", "sg_g").await;

    let mut asked = std::pin::pin!(app.designated_conversations(&ben, &["sg_g"]));
    let short = std::time::Duration::from_millis(300);
    assert!(
        tokio::time::timeout(short, &mut asked).await.is_err(),
        "the lookup waits"
    );
    // The message is projected; ben's row in the group's conversation is not yet.
    messages.batch_execute("ROLLBACK").await.unwrap();
    assert!(
        tokio::time::timeout(short, &mut asked).await.is_err(),
        "the lookup waits for the groups projection too"
    );
    groups.batch_execute("ROLLBACK").await.unwrap();
    let found = asked.await;
    assert_eq!(found.conversations.len(), 1, "{found:?}");
    assert_eq!(found.conversations[0].max_seq, 1);
}

#[tokio::test]
async fn a_catch_up_tells_when_a_conversation_moved_on_after_it_waited() {
    use jetim_messaging::sync::CatchUp;

    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register(&admin, &["ana", "ben"]).await;
    append_message(&app, "ana", "ben", "", "si_ana_ben").await;
    app.messages_caught_up().await;
    let log = jetim_streams::EventLog::open(app.jetstream.clone())
        .await
        .unwrap();
    let pool = app.database.pool();

    let mut catch_up = CatchUp::new(&log, &pool, "ben");
    assert!(
        catch_up.wait("si_ana_ben").await,
        "the conversation has events"
    );
    assert!(!catch_up.moved().await, "nothing stored since");
    append_message(&app, "ana", "ben", "", "si_ana_ben").await;
    assert!(catch_up.moved().await, "a message stored since");
    let max = jetim_readmodel::messages::member_window(&pool, "ben", "si_ana_ben")
        .await
        .unwrap()
        .map(|(_, max)| max);
    assert_eq!(
        max,
        Some(2),
        "and the read model shows it once moved() returns"
    );
    assert!(!catch_up.moved().await, "nothing stored since");
}
