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

    let request = jssdk::GetConversationsReq {
        owner_user_id: String::new(),
        conversation_i_ds: vec!["si_ana_ben".into(), "si_ana_cat".into()],
    };
    let reply = app
        .jssdk(
            "/jssdk/get_conversations",
            &ben,
            "application/x-protobuf",
            request.encode_to_vec(),
        )
        .await;
    let some: jssdk::GetConversationsResp = decoded(&reply);
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
