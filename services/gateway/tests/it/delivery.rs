//! Delivery: pushes through the push service, the sender's reply before its own push, kicks
//! and presence across two gateway instances, the Go SDK's gob envelope, slow clients,
//! logout, background and shutdown.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use jetim_common::auth::Platform;
use jetim_common::config::{DeliverySubscription, PushFanout};
use jetim_common::session::{SessionControl, announce};
use jetim_gateway::envelope::{Reply, Request};
use jetim_gateway::gob;
use jetim_schemas::openim::msg::SendMsgResp;
use jetim_schemas::openim::push::DelUserPushTokenReq;
use jetim_schemas::openim::sdkws::{
    GetMaxSeqReq, GetMaxSeqResp, MsgData, PushMessages, SetAppBackgroundStatusReq,
    SubUserOnlineStatus, SubUserOnlineStatusTips,
};
use prost::Message as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::{
    Socket, TestGateway, closed_with, connect_js, connect_to, next_frame, payload, request,
    send_request, text_message,
};

/// The next binary envelope, skipping pings and pongs.
async fn next_binary(socket: &mut Socket) -> Value {
    loop {
        match next_frame(socket).await {
            Message::Binary(bytes) => return serde_json::from_slice(&bytes).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }
}

/// The next 2001 push, decoded.
async fn next_push(socket: &mut Socket) -> (Value, PushMessages) {
    let envelope = next_binary(socket).await;
    assert_eq!(envelope["reqIdentifier"], 2001, "{envelope}");
    assert_eq!(envelope["msgIncr"], "");
    let pushed = payload(&envelope);
    (envelope, pushed)
}

fn only_message(pushed: &PushMessages) -> (&str, &MsgData) {
    let (conversation, pulled) = pushed
        .msgs
        .iter()
        .chain(&pushed.notification_msgs)
        .next()
        .expect("one conversation");
    assert_eq!(pulled.msgs.len(), 1, "one message per push");
    (conversation.as_str(), &pulled.msgs[0])
}

/// Asserts nothing but pings arrives within `wait`.
async fn assert_quiet(socket: &mut Socket, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(other) => panic!("expected nothing, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn pushes_reach_every_connection_and_the_sender_hears_the_reply_first() {
    let gateway = TestGateway::spawn(&["alice", "bob"]).await;
    let mut alice_web = gateway.connect("alice").await;
    let mut alice_pc = gateway
        .connect_at(&gateway.address, "alice", Platform::from_id(3).unwrap())
        .await;
    let mut bob = gateway.connect("bob").await;

    for round in 0..5 {
        let client_msg_id = format!("c-{round}");
        let incr = format!("s{round}");
        send_request(
            &mut alice_web,
            "alice",
            1003,
            &incr,
            &text_message("alice", "bob", &client_msg_id, "hi").encode_to_vec(),
        )
        .await;
        // On the sending connection: the reply, then the push of the same message.
        let reply = next_binary(&mut alice_web).await;
        assert_eq!(
            reply["reqIdentifier"], 1003,
            "the reply comes first: {reply}"
        );
        assert_eq!(reply["msgIncr"], incr.as_str());
        let sent: SendMsgResp = payload(&reply);
        let (envelope, pushed) = next_push(&mut alice_web).await;
        assert_eq!(
            envelope["operationID"],
            format!("op-{incr}"),
            "the sender's operationID"
        );
        let (conversation, message) = only_message(&pushed);
        assert_eq!(conversation, "si_alice_bob");
        assert_eq!(message.client_msg_id, client_msg_id);
        assert_eq!(message.server_msg_id, sent.server_msg_id);
        assert_eq!(message.seq, round + 1, "pushed in seq order with its seq");
        assert_eq!(message.status, 2);
        for other in [&mut alice_pc, &mut bob] {
            let (envelope, pushed) = next_push(other).await;
            assert_eq!(envelope["operationID"], format!("op-{incr}"));
            assert_eq!(only_message(&pushed).1.seq, round + 1);
        }
    }

    // Typing is online only: the receiver gets it with seq 0, the sender's devices do not.
    let mut typing = text_message("alice", "bob", "typing-1", "");
    typing.content_type = 113;
    typing.content = json!({"msgTips": "typing"}).to_string().into_bytes();
    let reply = request(&mut alice_web, "alice", 1003, "t1", &typing.encode_to_vec()).await;
    assert_eq!(reply["errCode"], 0, "{reply}");
    let (_, pushed) = next_push(&mut bob).await;
    let (_, message) = only_message(&pushed);
    assert_eq!((message.content_type, message.seq), (113, 0));
    assert_quiet(&mut alice_pc, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_fanout_push_reaches_each_connection_once_whichever_gateway_holds_it() {
    // The push service's default: one message per push on im.fanout.<conversationID>,
    // heard by both gateways, each writing to the connections it holds.
    let gateway = TestGateway::spawn(&["ivy", "jon"]).await;
    let other = gateway
        .another_with(|config| config.deliveries = DeliverySubscription::PerUser)
        .await;
    let mut ivy_web = gateway.connect("ivy").await;
    let mut ivy_pc = gateway
        .connect_at(&other.address, "ivy", Platform::from_id(3).unwrap())
        .await;
    let mut jon = gateway
        .connect_at(&other.address, "jon", Platform::WEB)
        .await;
    for round in 1..=3 {
        let client_msg_id = format!("j-{round}");
        let reply = request(
            &mut jon,
            "jon",
            1003,
            &format!("j{round}"),
            &text_message("jon", "ivy", &client_msg_id, "both of you").encode_to_vec(),
        )
        .await;
        assert_eq!(reply["errCode"], 0, "{reply}");
        for socket in [&mut jon, &mut ivy_web, &mut ivy_pc] {
            let (envelope, pushed) = next_push(socket).await;
            assert_eq!(envelope["operationID"], format!("op-j{round}"));
            let (conversation, message) = only_message(&pushed);
            assert_eq!(conversation, "si_ivy_jon");
            assert_eq!(
                (message.client_msg_id.as_str(), message.seq),
                (client_msg_id.as_str(), round)
            );
        }
    }
    for socket in [&mut jon, &mut ivy_web, &mut ivy_pc] {
        assert_quiet(socket, Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_push_of_several_messages_goes_whole_to_readers_and_one_by_one_to_its_senders() {
    use jetim_messaging::delivery::{Fanout, SinglePush};
    let gateway = TestGateway::spawn(&["kim", "lee", "max"]).await;
    let mut kim = gateway.connect("kim").await;
    let mut lee = gateway.connect("lee").await;
    let mut max = gateway.connect("max").await;
    // Three messages of one group conversation, from kim, lee and kim.
    let senders = ["kim", "lee", "kim"];
    let data: Vec<MsgData> = senders
        .iter()
        .enumerate()
        .map(|(index, sender)| MsgData {
            send_id: (*sender).into(),
            group_id: "g".into(),
            session_type: 3,
            client_msg_id: format!("c{index}"),
            seq: index as i64 + 1,
            ..MsgData::default()
        })
        .collect();
    let push_of = |messages: &[MsgData]| {
        let mut push = PushMessages::default();
        push.msgs.insert(
            "sg_g".into(),
            jetim_schemas::openim::sdkws::PullMsgs {
                msgs: messages.to_vec(),
                ..Default::default()
            },
        );
        bytes::Bytes::from(push.encode_to_vec())
    };
    let fanout = Fanout {
        users: vec!["kim".into(), "lee".into(), "max".into(), "nobody".into()],
        push: push_of(&data),
        singles: data
            .iter()
            .map(|message| SinglePush {
                sender: message.send_id.clone(),
                client_msg_id: message.client_msg_id.clone(),
                operation_id: format!("op-{}", message.client_msg_id),
                push: push_of(std::slice::from_ref(message)),
            })
            .collect(),
    };
    let client = gateway.nats.client().await;
    client
        .publish("im.fanout.sg_g", fanout.encode_to_vec().into())
        .await
        .unwrap();
    client.flush().await.unwrap();

    // max sent none of them: one frame with all three, in seq order.
    let (envelope, pushed) = next_push(&mut max).await;
    assert_eq!(envelope["operationID"], "");
    let seqs: Vec<i64> = pushed.msgs["sg_g"].msgs.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    // kim and lee each sent one: every message alone, with its sender's operationID.
    for socket in [&mut kim, &mut lee] {
        for (index, message) in data.iter().enumerate() {
            let (envelope, pushed) = next_push(socket).await;
            assert_eq!(envelope["operationID"], format!("op-c{index}"));
            let (conversation, alone) = only_message(&pushed);
            assert_eq!(conversation, "sg_g");
            assert_eq!(alone.client_msg_id, message.client_msg_id);
        }
    }
    for socket in [&mut kim, &mut lee, &mut max] {
        assert_quiet(socket, Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn two_gateways_deliver_both_ways_and_logins_kick_across_them() {
    // Pushes one per recipient (push.fanout: per_user). One gateway hears every user's
    // pushes, the other subscribes per user: each delivers to its own connections only,
    // once.
    let gateway = TestGateway::spawn_with_push_fanout(&["gina", "hugo"], PushFanout::PerUser).await;
    let other = gateway
        .another_with(|config| config.deliveries = DeliverySubscription::PerUser)
        .await;
    let gina_token = gateway.token("gina", Platform::WEB).await;
    let mut gina = connect_js(&gateway.address, "gina", &gina_token, 5).await;
    let mut hugo = gateway
        .connect_at(&other.address, "hugo", Platform::WEB)
        .await;

    let reply = request(
        &mut gina,
        "gina",
        1003,
        "g1",
        &text_message("gina", "hugo", "g-1", "over there").encode_to_vec(),
    )
    .await;
    assert_eq!(reply["errCode"], 0);
    let (_, pushed) = next_push(&mut hugo).await;
    assert_eq!(only_message(&pushed).1.client_msg_id, "g-1");
    let reply = request(
        &mut hugo,
        "hugo",
        1003,
        "h1",
        &text_message("hugo", "gina", "h-1", "and back").encode_to_vec(),
    )
    .await;
    assert_eq!(reply["errCode"], 0);
    // gina's socket also had her own push of g-1; find hugo's message.
    loop {
        let (_, pushed) = next_push(&mut gina).await;
        if only_message(&pushed).1.client_msg_id == "h-1" {
            break;
        }
    }

    // gina logs in again on the web, on the other gateway: the first connection is kicked.
    let mut gina_again = gateway
        .connect_at(&other.address, "gina", Platform::WEB)
        .await;
    let kick = loop {
        let envelope = next_binary(&mut gina).await;
        if envelope["reqIdentifier"] != 2001 {
            break envelope;
        }
    };
    assert_eq!(
        kick,
        json!({"reqIdentifier": 2002, "msgIncr": "", "operationID": "", "errCode": 0,
               "errMsg": "", "data": null})
    );
    assert!(closed_with(&mut gina).await.contains("kicked"));
    // The kicked token is refused from then on.
    let mut refused = connect_to(
        &gateway.address,
        &TestGateway::js_query("gina", &gina_token, 5),
    )
    .await;
    assert_eq!(super::next_text(&mut refused).await["errCode"], 1506);
    // The new connection works.
    let reply = request(
        &mut gina_again,
        "gina",
        1001,
        "m1",
        &GetMaxSeqReq {
            user_id: "gina".into(),
        }
        .encode_to_vec(),
    )
    .await;
    let mut max: GetMaxSeqResp = payload(&reply);
    for attempt in 0..100 {
        if max.max_seqs.get("si_gina_hugo") == Some(&2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let incr = format!("m{}", attempt + 2);
        let ask = GetMaxSeqReq {
            user_id: "gina".into(),
        };
        max = payload(&request(&mut gina_again, "gina", 1001, &incr, &ask.encode_to_vec()).await);
    }
    assert_eq!(
        max.max_seqs.get("si_gina_hugo"),
        Some(&2),
        "both messages are pullable"
    );

    // A different platform is not kicked under policy 1.
    let mut gina_pc = gateway
        .connect_at(&gateway.address, "gina", Platform::from_id(3).unwrap())
        .await;
    assert_quiet(&mut gina_again, Duration::from_millis(300)).await;

    // Force logout (what /auth/force_logout announces) closes the platform's connections
    // on every gateway.
    let client = gateway.nats.client().await;
    announce(
        &client,
        "gina",
        &SessionControl::ForceLogout { platform_id: 5 },
    )
    .await
    .unwrap();
    assert_eq!(next_binary(&mut gina_again).await["reqIdentifier"], 2002);
    assert!(closed_with(&mut gina_again).await.contains("kicked"));
    assert_quiet(&mut gina_pc, Duration::from_millis(300)).await;
    assert_eq!(other.hub.connection_count(), 1, "hugo is still there");
}

#[tokio::test]
async fn watchers_hear_when_a_dead_gateways_presence_ages_out() {
    let gateway =
        TestGateway::spawn_with_presence_ttl(&["carol", "dave"], Duration::from_secs(3)).await;
    // A gateway that said dave is online on the web, then died: nobody confirms it again.
    gateway
        .state
        .presence
        .set("dave", "dead-gateway", &[5])
        .await
        .unwrap();
    let mut carol = gateway.connect("carol").await;
    let subscribe = SubUserOnlineStatus {
        subscribe_user_id: vec!["dave".into()],
        unsubscribe_user_id: Vec::new(),
    };
    let reply = request(&mut carol, "carol", 2005, "w1", &subscribe.encode_to_vec()).await;
    let tips: SubUserOnlineStatusTips = payload(&reply);
    assert_eq!(
        tips.subscribers[0].online_platform_i_ds,
        [5],
        "dave looks online"
    );
    // Within the TTL and a third of it, the watcher is told dave is gone (carol's client
    // keeps its connection alive with heartbeats meanwhile).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    let change = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a status push once the dead gateway's part ages out"
        );
        carol
            .send(Message::Text(r#"{"type":"ping","body":"b"}"#.into()))
            .await
            .unwrap();
        match tokio::time::timeout(Duration::from_secs(1), next_frame(&mut carol)).await {
            Ok(Message::Binary(bytes)) => break serde_json::from_slice::<Value>(&bytes).unwrap(),
            Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_)) | Err(_) => {}
            Ok(other) => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(change["reqIdentifier"], 2005);
    let tips: SubUserOnlineStatusTips = payload(&change);
    assert_eq!(tips.subscribers[0].user_id, "dave");
    assert!(tips.subscribers[0].online_platform_i_ds.is_empty());
}

#[tokio::test]
async fn status_subscriptions_follow_presence_across_gateways() {
    let gateway = TestGateway::spawn(&["carol", "dave"]).await;
    let other = gateway.another().await;
    let mut carol = gateway.connect("carol").await;
    let subscribe = SubUserOnlineStatus {
        subscribe_user_id: vec!["dave".into()],
        unsubscribe_user_id: Vec::new(),
    };
    let reply = request(&mut carol, "carol", 2005, "w1", &subscribe.encode_to_vec()).await;
    let tips: SubUserOnlineStatusTips = payload(&reply);
    assert_eq!(tips.subscribers.len(), 1);
    assert_eq!(tips.subscribers[0].user_id, "dave");
    assert!(
        tips.subscribers[0].online_platform_i_ds.is_empty(),
        "dave is offline"
    );

    let mut dave = gateway
        .connect_at(&other.address, "dave", Platform::WEB)
        .await;
    let change = next_binary(&mut carol).await;
    assert_eq!(change["reqIdentifier"], 2005);
    assert_eq!(change["msgIncr"], "", "a push, not a reply");
    let tips: SubUserOnlineStatusTips = payload(&change);
    assert_eq!(tips.subscribers[0].online_platform_i_ds, [5]);
    assert_eq!(gateway.state.presence.online("dave").await.unwrap(), [5]);
    let tokens = gateway.state.presence.online_tokens("dave").await.unwrap();
    assert_eq!(tokens[&5].len(), 1, "one connection's token fingerprint");
    assert!(
        !tokens[&5][0].is_empty() && !tokens[&5][0].contains('.'),
        "a fingerprint, not a JWT"
    );

    dave.close(None).await.unwrap();
    let change = next_binary(&mut carol).await;
    let tips: SubUserOnlineStatusTips = payload(&change);
    assert!(tips.subscribers[0].online_platform_i_ds.is_empty());
    assert!(
        gateway
            .state
            .presence
            .online("dave")
            .await
            .unwrap()
            .is_empty()
    );

    // Unsubscribed: no more pushes.
    let unsubscribe = SubUserOnlineStatus {
        subscribe_user_id: Vec::new(),
        unsubscribe_user_id: vec!["dave".into()],
    };
    let reply = request(
        &mut carol,
        "carol",
        2005,
        "w2",
        &unsubscribe.encode_to_vec(),
    )
    .await;
    assert_eq!(reply["errCode"], 0);
    let _dave = gateway
        .connect_at(&other.address, "dave", Platform::WEB)
        .await;
    assert_quiet(&mut carol, Duration::from_millis(300)).await;

    // Bad lists are refused, and the connection stays.
    let empty = SubUserOnlineStatus {
        subscribe_user_id: vec![String::new()],
        unsubscribe_user_id: Vec::new(),
    };
    let reply = request(&mut carol, "carol", 2005, "w3", &empty.encode_to_vec()).await;
    assert_eq!(reply["errCode"], 1001, "{reply}");
    let many = SubUserOnlineStatus {
        subscribe_user_id: (0..1001).map(|index| format!("{index:x}")).collect(),
        unsubscribe_user_id: Vec::new(),
    };
    let reply = request(&mut carol, "carol", 2005, "w4", &many.encode_to_vec()).await;
    assert_eq!(reply["errCode"], 1001, "{reply}");
    let reply = request(&mut carol, "carol", 2005, "w5", b"\xff").await;
    assert_eq!(reply["errCode"], 1001, "{reply}");
}

#[tokio::test]
async fn background_and_logout_requests() {
    let gateway = TestGateway::spawn(&["erin"]).await;
    let mut erin = gateway.connect("erin").await;
    let background = SetAppBackgroundStatusReq {
        user_id: "erin".into(),
        is_background: true,
    };
    let reply = request(&mut erin, "erin", 2004, "b1", &background.encode_to_vec()).await;
    assert_eq!(
        reply,
        json!({"reqIdentifier": 2004, "msgIncr": "b1", "operationID": "op-b1", "errCode": 0,
               "errMsg": "", "data": null})
    );
    let someone_else = SetAppBackgroundStatusReq {
        user_id: "frank".into(),
        is_background: true,
    };
    let reply = request(&mut erin, "erin", 2004, "b2", &someone_else.encode_to_vec()).await;
    assert_eq!(reply["errCode"], 1002, "{reply}");
    let logout = DelUserPushTokenReq {
        user_id: "erin".into(),
        platform_id: 5,
    };
    send_request(&mut erin, "erin", 2003, "l1", &logout.encode_to_vec()).await;
    let reply = next_binary(&mut erin).await;
    assert_eq!(
        (reply["reqIdentifier"].as_i64(), reply["errCode"].as_i64()),
        (Some(2003), Some(0))
    );
    assert_eq!(reply["data"], "", "an empty DelUserPushTokenResp");
    assert_eq!(closed_with(&mut erin).await, "logged out");
}

/// A gob request frame as the Go SDK writes it (`GeneralWsReq`), gzip'd if asked.
fn gob_request(user: &str, identifier: i32, incr: &str, data: &[u8], gzip: bool) -> Vec<u8> {
    let plain = gob::encode_request(&Request {
        req_identifier: identifier,
        token: String::new(),
        send_id: user.into(),
        operation_id: format!("op-{incr}"),
        msg_incr: incr.into(),
        data: data.to_vec(),
    });
    if gzip {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&plain).unwrap();
        encoder.finish().unwrap()
    } else {
        plain
    }
}

fn gob_reply(bytes: &[u8], gzip: bool) -> Reply {
    let plain = if gzip {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut plain)
            .unwrap();
        plain
    } else {
        bytes.to_vec()
    };
    gob::decode_reply(&plain).unwrap()
}

async fn next_gob(socket: &mut Socket, gzip: bool) -> Reply {
    loop {
        match next_frame(socket).await {
            Message::Binary(bytes) => return gob_reply(&bytes, gzip),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }
}

/// The native Go SDK's query: no sdkType (gob), gzip, no in-band result.
fn go_query(user: &str, token: &str, gzip: bool) -> String {
    let compression = if gzip { "&compression=gzip" } else { "" };
    format!(
        "sendID={user}&token={token}&platformID=2&operationID=op-go&isBackground=false&sdkVersion=v3.8.0{compression}"
    )
}

#[tokio::test]
async fn go_sdk_clients_speak_gob_with_and_without_gzip() {
    let gateway = TestGateway::spawn(&["gopher", "jsuser"]).await;
    for gzip in [true, false] {
        let token = gateway.token("gopher", Platform::ANDROID).await;
        let mut socket = gateway.connect_raw(&go_query("gopher", &token, gzip)).await;
        let ask = GetMaxSeqReq {
            user_id: "gopher".into(),
        };
        socket
            .send(Message::Binary(
                gob_request("gopher", 1001, "g1", &ask.encode_to_vec(), gzip).into(),
            ))
            .await
            .unwrap();
        let reply = next_gob(&mut socket, gzip).await;
        assert_eq!(
            (
                reply.req_identifier,
                reply.msg_incr.as_str(),
                reply.operation_id.as_str(),
                reply.err_code
            ),
            (1001, "g1", "op-g1", 0),
            "{reply:?}"
        );
        // An error reply carries the code and the message.
        socket
            .send(Message::Binary(
                gob_request("gopher", 1099, "g2", b"", gzip).into(),
            ))
            .await
            .unwrap();
        let reply = next_gob(&mut socket, gzip).await;
        assert_eq!(reply.err_code, 1001);
        assert!(reply.err_msg.starts_with("ArgsError"), "{reply:?}");
        assert_eq!(reply.data, None);

        // A message from a JS user reaches the gob client as a gob 2001.
        let mut js = gateway.connect("jsuser").await;
        let client_msg_id = format!("to-gopher-{gzip}");
        let reply = request(
            &mut js,
            "jsuser",
            1003,
            "j1",
            &text_message("jsuser", "gopher", &client_msg_id, "hi").encode_to_vec(),
        )
        .await;
        assert_eq!(reply["errCode"], 0);
        let push = next_gob(&mut socket, gzip).await;
        assert_eq!((push.req_identifier, push.msg_incr.as_str()), (2001, ""));
        assert_eq!(push.operation_id, "op-j1");
        let pushed = PushMessages::decode(push.data.unwrap().as_slice()).unwrap();
        assert_eq!(only_message(&pushed).1.client_msg_id, client_msg_id);

        // The gob client sends; its reply is gob too.
        let message = text_message("gopher", "jsuser", &format!("from-gopher-{gzip}"), "yo");
        socket
            .send(Message::Binary(
                gob_request("gopher", 1003, "g3", &message.encode_to_vec(), gzip).into(),
            ))
            .await
            .unwrap();
        let reply = next_gob(&mut socket, gzip).await;
        assert_eq!(
            (reply.req_identifier, reply.err_code),
            (1003, 0),
            "{reply:?}"
        );
        let sent = SendMsgResp::decode(reply.data.unwrap().as_slice()).unwrap();
        assert_eq!(sent.client_msg_id, format!("from-gopher-{gzip}"));
        // Then its own copy (sender sync), as gob, behind the reply.
        let push = next_gob(&mut socket, gzip).await;
        assert_eq!(
            (push.req_identifier, push.operation_id.as_str()),
            (2001, "op-g3")
        );
        socket.close(None).await.unwrap();
    }

    // Every request code over gob: a good request is answered with 0, invalid protobuf with
    // 1001, and the connection stays open throughout.
    let token = gateway.token("gopher", Platform::ANDROID).await;
    let mut socket = gateway.connect_raw(&go_query("gopher", &token, true)).await;
    let me = || "gopher".to_owned();
    let good: Vec<(i32, Vec<u8>)> = vec![
        (1001, GetMaxSeqReq { user_id: me() }.encode_to_vec()),
        (
            1002,
            jetim_schemas::openim::sdkws::PullMessageBySeqsReq {
                user_id: me(),
                seq_ranges: vec![jetim_schemas::openim::sdkws::SeqRange {
                    conversation_id: "si_gopher_jsuser".into(),
                    begin: 1,
                    end: 2,
                    num: 10,
                }],
                order: 0,
            }
            .encode_to_vec(),
        ),
        (
            1005,
            jetim_schemas::openim::msg::GetSeqMessageReq {
                user_id: me(),
                conversations: vec![jetim_schemas::openim::msg::ConversationSeqs {
                    conversation_id: "si_gopher_jsuser".into(),
                    seqs: vec![1],
                }],
                order: 0,
            }
            .encode_to_vec(),
        ),
        (
            1006,
            jetim_schemas::openim::msg::GetConversationsHasReadAndMaxSeqReq {
                user_id: me(),
                conversation_i_ds: Vec::new(),
                return_pinned: true,
            }
            .encode_to_vec(),
        ),
        (
            1007,
            jetim_schemas::openim::msg::GetLastMessageReq {
                user_id: me(),
                conversation_i_ds: vec!["si_gopher_jsuser".into()],
            }
            .encode_to_vec(),
        ),
        (
            2004,
            SetAppBackgroundStatusReq {
                user_id: me(),
                is_background: false,
            }
            .encode_to_vec(),
        ),
        (
            2005,
            SubUserOnlineStatus {
                subscribe_user_id: vec!["jsuser".into()],
                unsubscribe_user_id: Vec::new(),
            }
            .encode_to_vec(),
        ),
    ];
    for (index, (code, data)) in good.iter().enumerate() {
        let incr = format!("every-{index}");
        socket
            .send(Message::Binary(
                gob_request("gopher", *code, &incr, data, true).into(),
            ))
            .await
            .unwrap();
        let reply = next_gob(&mut socket, true).await;
        assert_eq!(
            (reply.req_identifier, reply.msg_incr.as_str()),
            (*code, incr.as_str())
        );
        assert_eq!(reply.err_code, 0, "{code}: {reply:?}");
        let incr = format!("bad-{index}");
        socket
            .send(Message::Binary(
                gob_request("gopher", *code, &incr, b"\xff\xff", true).into(),
            ))
            .await
            .unwrap();
        let reply = next_gob(&mut socket, true).await;
        assert_eq!(
            reply.err_code, 1001,
            "{code} with invalid protobuf: {reply:?}"
        );
    }
    for code in [1004, 3001] {
        socket
            .send(Message::Binary(
                gob_request("gopher", code, "odd", b"", true).into(),
            ))
            .await
            .unwrap();
        assert_eq!(next_gob(&mut socket, true).await.err_code, 1001, "{code}");
    }
    socket
        .send(Message::Binary(
            gob_request("jsuser", 1001, "as-another", b"", true).into(),
        ))
        .await
        .unwrap();
    assert!(closed_with(&mut socket).await.contains("sendID"));

    // Bad frames close the connection with a reason: truncated gob, a gzip bomb, not gzip.
    let frame = gob_request("gopher", 1001, "g1", b"\x0a\x02u1", false);
    let mut socket = gateway
        .connect_raw(&go_query("gopher", &token, false))
        .await;
    socket
        .send(Message::Binary(frame[..frame.len() - 3].to_vec().into()))
        .await
        .unwrap();
    assert!(
        closed_with(&mut socket)
            .await
            .contains("not a gob envelope")
    );

    let mut socket = gateway.connect_raw(&go_query("gopher", &token, true)).await;
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    bomb.write_all(&vec![0u8; 8192 * 64 + 1]).unwrap();
    let bomb = bomb.finish().unwrap();
    assert!(bomb.len() < 8192, "the bomb fits the frame limit");
    socket.send(Message::Binary(bomb.into())).await.unwrap();
    assert!(closed_with(&mut socket).await.contains("inflates beyond"));

    let mut socket = gateway.connect_raw(&go_query("gopher", &token, true)).await;
    socket
        .send(Message::Binary(b"plainly not gzip".to_vec().into()))
        .await
        .unwrap();
    assert!(closed_with(&mut socket).await.contains("not gzip"));
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_and_forgotten() {
    let gateway = TestGateway::spawn(&["slow"]).await;
    let _slow = gateway.connect("slow").await;
    assert_eq!(gateway.hub.connection_count(), 1);
    // Far more than the socket buffers and the write queue (64 frames) hold.
    let client = gateway.nats.client().await;
    let chunk = bytes::Bytes::from(vec![7u8; 64 * 1024]);
    for _ in 0..1500 {
        client
            .publish("im.deliver.slow", chunk.clone())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    gateway
        .until_no_connections("the slow client was not closed")
        .await;
}

#[tokio::test]
async fn shutdown_sends_every_client_a_going_away_close() {
    let gateway = TestGateway::spawn(&["ivy"]).await;
    let other = gateway.another().await;
    let mut ivy = gateway
        .connect_at(&other.address, "ivy", Platform::WEB)
        .await;
    other.stop.cancel();
    let frame = loop {
        if let Message::Close(frame) = next_frame(&mut ivy).await {
            break frame.expect("a close frame with a reason");
        }
    };
    assert_eq!(frame.code, CloseCode::Away);
    assert!(frame.reason.contains("shutting down"));
    for _ in 0..100 {
        if other.hub.connection_count() == 0
            && gateway
                .state
                .presence
                .online("ivy")
                .await
                .unwrap()
                .is_empty()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the connection or its presence outlived the shutdown");
}

/// A gateway that no longer hears pushes and kicks stops, says why, and sends its clients
/// away to reconnect elsewhere, rather than taking connections it cannot serve.
#[tokio::test]
async fn a_gateway_whose_shared_subscriptions_end_stops_with_the_reason() {
    let gateway = TestGateway::spawn(&["jay"]).await;
    let client = gateway.nats.client().await;
    let mut state = gateway.state.clone();
    state.fanouts_on = None;
    state.log = std::sync::Arc::new(
        jetim_streams::EventLog::open(async_nats::jetstream::new(client.clone()))
            .await
            .unwrap(),
    );
    let app = jetim_gateway::build(state).await.unwrap();
    let address = format!("ws://{}", app.local_addr());
    let running =
        tokio::spawn(app.run_until_stopped(jetim_common::shutdown::CancellationToken::new()));
    let mut jay = gateway.connect_at(&address, "jay", Platform::WEB).await;
    client.drain().await.unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the gateway stops")
        .unwrap();
    let error = stopped.unwrap_err().to_string();
    assert!(error.contains("subscription ended"), "{error}");
    let frame = loop {
        if let Message::Close(frame) = next_frame(&mut jay).await {
            break frame.expect("a close frame with a reason");
        }
    };
    assert_eq!(frame.code, CloseCode::Away);
}

#[tokio::test]
async fn a_full_gateway_refuses_with_1601() {
    let gateway = TestGateway::spawn(&["kim", "lou"]).await;
    let full = gateway
        .another_with(|config| config.max_connections = 1)
        .await;
    let _kim = gateway
        .connect_at(&full.address, "kim", Platform::WEB)
        .await;
    let token = gateway.token("lou", Platform::WEB).await;
    let mut lou = connect_to(&full.address, &TestGateway::js_query("lou", &token, 5)).await;
    let refusal = super::next_text(&mut lou).await;
    assert_eq!(refusal["errCode"], 1601, "{refusal}");
    assert!(
        refusal["errDlt"]
            .as_str()
            .unwrap()
            .contains("gateway.max_connections")
    );
    // The other gateway still takes lou.
    let _lou = connect_js(&gateway.address, "lou", &token, 5).await;
}

#[tokio::test]
async fn a_push_goes_out_before_the_read_model_has_it_and_the_pulls_it_leads_to_wait() {
    use jetim_schemas::openim::msg::{ConversationSeqs, GetSeqMessageReq, GetSeqMessageResp};
    use jetim_schemas::openim::sdkws::{PullMessageBySeqsReq, PullMessageBySeqsResp, SeqRange};

    let gateway = TestGateway::spawn(&["early", "late"]).await;
    let mut early = gateway.connect("early").await;
    let mut late = gateway.connect("late").await;
    // The messages projection's next batch waits on its registry row, uncommitted, as if
    // it lagged.
    let holder = gateway.pool.get().await.unwrap();
    holder
        .batch_execute("BEGIN; SELECT 1 FROM projections WHERE name = 'messages' FOR UPDATE")
        .await
        .unwrap();

    let reply = request(
        &mut early,
        "early",
        1003,
        "s1",
        &text_message("early", "late", "c-1", "first").encode_to_vec(),
    )
    .await;
    assert_eq!(reply["errCode"], 0, "{reply}");
    let (_, pushed) = tokio::time::timeout(Duration::from_secs(1), next_push(&mut late))
        .await
        .expect("pushed while the read model does not have it");
    let (conversation, message) = only_message(&pushed);
    assert_eq!((conversation, message.seq), ("si_early_late", 1));

    // The client asks for it, by range and by seq, before the read model has it.
    let by_range = PullMessageBySeqsReq {
        user_id: "late".into(),
        seq_ranges: vec![SeqRange {
            conversation_id: "si_early_late".into(),
            begin: 1,
            end: 1,
            num: 10,
        }],
        order: 0,
    };
    send_request(&mut late, "late", 1002, "p1", &by_range.encode_to_vec()).await;
    let by_seq = GetSeqMessageReq {
        user_id: "late".into(),
        conversations: vec![ConversationSeqs {
            conversation_id: "si_early_late".into(),
            seqs: vec![1],
        }],
        order: 0,
    };
    send_request(&mut late, "late", 1005, "q1", &by_seq.encode_to_vec()).await;
    assert_quiet(&mut late, Duration::from_millis(300)).await;
    holder.batch_execute("ROLLBACK").await.unwrap();

    for _ in 0..2 {
        let reply = next_binary(&mut late).await;
        match reply["msgIncr"].as_str() {
            Some("p1") => {
                let pulled: PullMessageBySeqsResp = payload(&reply);
                let messages = &pulled.msgs["si_early_late"].msgs;
                assert_eq!(messages.len(), 1, "{pulled:?}");
                assert_eq!((messages[0].seq, messages[0].status), (1, 2));
                assert_eq!(messages[0].client_msg_id, "c-1");
            }
            Some("q1") => {
                let pulled: GetSeqMessageResp = payload(&reply);
                let messages = &pulled.msgs["si_early_late"].msgs;
                assert_eq!(messages.len(), 1, "{pulled:?}");
                assert_eq!((messages[0].seq, messages[0].status), (1, 2));
            }
            _ => panic!("an unexpected frame: {reply}"),
        }
    }
}
