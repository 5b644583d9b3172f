//! The gateway against real servers, through WebSocket clients speaking the JS SDK's JSON
//! envelope and the Go SDK's gob: the handshake and its refusals, the heartbeat, each
//! request, pushes through the push service, kicks and presence across two gateway
//! instances, slow clients and shutdown.

mod delivery;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use jetim_common::auth::{Platform, TokenService};
use jetim_common::config::{
    AuthConfig, DeliverySubscription, GatewayConfig, NatsConfig, PushFanout,
};
use jetim_common::presence::PresenceStore;
use jetim_common::shutdown::CancellationToken;
use jetim_common::testing::{TestDatabase, TestNats};
use jetim_gateway::hub::Hub;
use jetim_gateway::{GatewayState, build};
use jetim_schemas::events::user::UserRegistered;
use jetim_schemas::openim::msg::{
    GetConversationsHasReadAndMaxSeqReq, GetConversationsHasReadAndMaxSeqResp, GetSeqMessageReq,
    GetSeqMessageResp, SendMsgResp,
};
use jetim_schemas::openim::sdkws::{
    GetMaxSeqReq, GetMaxSeqResp, MsgData, PullMessageBySeqsReq, PullMessageBySeqsResp, SeqRange,
};
use jetim_streams::subject::{Subject, UserKind};
use jetim_streams::{EventLog, Expect};
use prost::Message as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct TestGateway {
    address: String,
    tokens: TokenService,
    pool: deadpool_postgres::Pool,
    state: GatewayState,
    hub: Arc<Hub>,
    nats: TestNats,
    _database: TestDatabase,
    stop: CancellationToken,
}

/// Another gateway instance on the same servers.
struct OtherGateway {
    address: String,
    hub: Arc<Hub>,
    stop: CancellationToken,
}

impl Drop for OtherGateway {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TestGateway {
    async fn spawn(users: &[&str]) -> Self {
        Self::spawn_with_presence_ttl(users, Duration::from_secs(90)).await
    }

    /// A gateway whose presence entries count for `ttl`.
    async fn spawn_with_presence_ttl(users: &[&str], ttl: Duration) -> Self {
        Self::spawn_with(users, ttl, PushFanout::default()).await
    }

    /// A gateway beside a push service that publishes as `fanout` says.
    async fn spawn_with_push_fanout(users: &[&str], fanout: PushFanout) -> Self {
        Self::spawn_with(users, Duration::from_secs(90), fanout).await
    }

    async fn spawn_with(users: &[&str], ttl: Duration, fanout: PushFanout) -> Self {
        let nats = TestNats::start().await;
        let database = TestDatabase::migrated().await;
        let jetstream = nats.jetstream().await;
        jetim_streams::definitions::apply_all(&jetstream, 1)
            .await
            .unwrap();
        let tokens = TokenService::open(&jetstream, &AuthConfig::default(), 1)
            .await
            .unwrap();
        let log = Arc::new(EventLog::open(jetstream.clone()).await.unwrap());
        let stop = CancellationToken::new();
        tokio::spawn(jetim_readmodel::run_projections(
            jetstream.clone(),
            database.pool(),
            log.hurry().clone(),
            stop.clone(),
        ));
        for user in users {
            let registered = UserRegistered {
                user_id: (*user).into(),
                nickname: format!("nick {user}"),
                face_url: String::new(),
                ex: String::new(),
                app_manger_level: 1,
                global_recv_msg_opt: 0,
                create_time: 1,
            };
            let subject = Subject::user(user, UserKind::Account).unwrap();
            log.append(&subject, "test", Expect::Empty, None, &registered)
                .await
                .unwrap();
        }
        let ids: Vec<String> = users.iter().map(|user| (*user).to_owned()).collect();
        for _ in 0..200 {
            if jetim_readmodel::users::find(&database.pool(), &ids)
                .await
                .unwrap()
                .len()
                == ids.len()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let config = GatewayConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            max_frame_bytes: 8192,
            write_queue: 64,
            read_timeout_secs: 2,
            web_ping_secs: 27,
            max_connections: 1000,
            deliveries: DeliverySubscription::Shared,
        };
        let presence = PresenceStore::open(&jetstream, 1, ttl).await.unwrap();
        // As `jetim all` runs them: the push service hands this gateway its fan-out pushes
        // and publishes them, on a connection without echo, for the others.
        let fanout_client = jetim_common::nats::connect_without_echo(&NatsConfig {
            url: nats.url.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
        let state = GatewayState {
            tokens: tokens.clone(),
            db: database.pool(),
            send_facts: jetim_readmodel::send_facts::FactsReader::new(database.pool()),
            log,
            presence: presence.clone(),
            config,
            messaging: Default::default(),
            fanouts_on: Some(fanout_client.clone()),
        };
        let app = build(state.clone()).await.unwrap();
        tokio::spawn(jetim_push::run(
            jetim_push::PushState {
                jetstream: jetstream.clone(),
                nats: fanout_client,
                local_gateway: Some(app.hub()),
                db: database.pool(),
                presence,
                members: jetim_push::members::MemberCache::new(database.pool(), 100),
                config: jetim_common::config::PushConfig {
                    fanout,
                    ..Default::default()
                },
            },
            stop.clone(),
        ));
        let address = format!("ws://{}", app.local_addr());
        let hub = app.hub();
        tokio::spawn(app.run_until_stopped(stop.clone()));
        Self {
            address,
            tokens,
            pool: database.pool(),
            state,
            hub,
            nats,
            _database: database,
            stop,
        }
    }

    /// A second gateway instance on the same NATS and Postgres.
    async fn another(&self) -> OtherGateway {
        self.another_with(|_| {}).await
    }

    /// [`TestGateway::another`] with its own settings.
    async fn another_with(&self, configure: impl FnOnce(&mut GatewayConfig)) -> OtherGateway {
        let mut state = self.state.clone();
        // Another process: it hears fan-out pushes over NATS.
        state.fanouts_on = None;
        configure(&mut state.config);
        let app = build(state).await.unwrap();
        let address = format!("ws://{}", app.local_addr());
        let hub = app.hub();
        let stop = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(stop.clone()));
        OtherGateway { address, hub, stop }
    }

    async fn token(&self, user: &str, platform: Platform) -> String {
        self.tokens.issue(user, platform).await.unwrap().token
    }

    /// Connects as the JS SDK does (unencoded query, in-band result).
    async fn connect_raw(&self, query: &str) -> Socket {
        connect_to(&self.address, query).await
    }

    fn js_query(user: &str, token: &str, platform: i32) -> String {
        format!(
            "sendID={user}&token={token}&platformID={platform}&operationID=op-connect&isBackground=false&isMsgResp=true&sdkType=js"
        )
    }

    /// Waits up to 10 s for the hub to hold no connection; panics with `what` if it still
    /// holds one.
    async fn until_no_connections(&self, what: &str) {
        for _ in 0..200 {
            if self.hub.connection_count() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what}");
    }

    /// A connected socket, past the success frame.
    async fn connect(&self, user: &str) -> Socket {
        self.connect_at(&self.address, user, Platform::WEB).await
    }

    /// A JS connection for `user` on `platform` to the gateway at `address`, with a fresh
    /// token.
    async fn connect_at(&self, address: &str, user: &str, platform: Platform) -> Socket {
        let token = self.token(user, platform).await;
        connect_js(address, user, &token, platform.id()).await
    }
}

async fn connect_to(address: &str, query: &str) -> Socket {
    let (socket, _) = tokio_tungstenite::connect_async(format!("{address}/?{query}"))
        .await
        .unwrap();
    socket
}

/// A JS connection with `token`, past the success frame.
async fn connect_js(address: &str, user: &str, token: &str, platform: i32) -> Socket {
    let mut socket = connect_to(address, &TestGateway::js_query(user, token, platform)).await;
    assert_eq!(
        next_text(&mut socket).await,
        json!({"errCode": 0, "errMsg": "", "errDlt": ""})
    );
    socket
}

async fn next_frame(socket: &mut Socket) -> Message {
    tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("a frame within 10 s")
        .expect("the connection is open")
        .expect("a readable frame")
}

async fn next_text(socket: &mut Socket) -> Value {
    match next_frame(socket).await {
        Message::Text(text) => serde_json::from_str(text.as_str()).unwrap(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// A JSON request envelope, as the JS SDK writes it.
fn request_envelope(user: &str, identifier: i32, incr: &str, data: &[u8]) -> Vec<u8> {
    json!({
        "reqIdentifier": identifier,
        "sendID": user,
        "operationID": format!("op-{incr}"),
        "msgIncr": incr,
        "data": base64::engine::general_purpose::STANDARD.encode(data),
    })
    .to_string()
    .into_bytes()
}

/// Sends a JSON request without waiting for anything.
async fn send_request(socket: &mut Socket, user: &str, identifier: i32, incr: &str, data: &[u8]) {
    let envelope = request_envelope(user, identifier, incr, data);
    socket.send(Message::Binary(envelope.into())).await.unwrap();
}

/// Sends a request and returns the reply envelope (with `data` still base64).
async fn request(
    socket: &mut Socket,
    user: &str,
    identifier: i32,
    incr: &str,
    data: &[u8],
) -> Value {
    send_request(socket, user, identifier, incr, data).await;
    reply_to(socket, incr).await
}

/// The reply envelope to the request `incr`, past pushes and heartbeats.
async fn reply_to(socket: &mut Socket, incr: &str) -> Value {
    loop {
        match next_frame(socket).await {
            Message::Binary(bytes) => {
                let reply: Value = serde_json::from_slice(&bytes).unwrap();
                // Pushes (empty msgIncr) may come in between.
                if reply["msgIncr"] == incr {
                    return reply;
                }
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a binary reply, got {other:?}"),
        }
    }
}

fn payload<M: prost::Message + Default>(reply: &Value) -> M {
    assert_eq!(reply["errCode"], 0, "{reply}");
    let data = base64::engine::general_purpose::STANDARD
        .decode(reply["data"].as_str().unwrap())
        .unwrap();
    M::decode(data.as_slice()).unwrap()
}

/// Waits until the closing frame (or the end of the stream) and returns its reason.
async fn closed_with(socket: &mut Socket) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => {
                return frame
                    .map(|frame| frame.reason.to_string())
                    .unwrap_or_default();
            }
            Ok(Some(Ok(_))) => {}
            Ok(None | Some(Err(_))) => return String::new(),
            Err(_) => panic!("the connection was not closed"),
        }
    }
}

fn text_message(from: &str, to: &str, client_msg_id: &str, text: &str) -> MsgData {
    MsgData {
        send_id: from.into(),
        recv_id: to.into(),
        client_msg_id: client_msg_id.into(),
        session_type: 1,
        content_type: 101,
        content: json!({"content": text}).to_string().into_bytes(),
        sender_platform_id: 5,
        ..MsgData::default()
    }
}

#[tokio::test]
async fn a_js_client_connects_sends_and_syncs_over_the_gateway() {
    let gateway = TestGateway::spawn(&["ws1", "ws2"]).await;
    let mut one = gateway.connect("ws1").await;

    socket_ping(&mut one).await;

    let sent: SendMsgResp = payload(
        &request(
            &mut one,
            "ws1",
            1003,
            "s1",
            &text_message("ws1", "ws2", "c-1", "hello").encode_to_vec(),
        )
        .await,
    );
    assert_eq!(sent.client_msg_id, "c-1");
    assert_eq!(sent.server_msg_id.len(), 32);
    let again: SendMsgResp = payload(
        &request(
            &mut one,
            "ws1",
            1003,
            "s2",
            &text_message("ws1", "ws2", "c-1", "hello").encode_to_vec(),
        )
        .await,
    );
    assert_eq!(again, sent, "a resend returns the original");

    let mut two = gateway.connect("ws2").await;
    let mut max = GetMaxSeqResp::default();
    for attempt in 0..100 {
        max = payload(
            &request(
                &mut two,
                "ws2",
                1001,
                &format!("m{attempt}"),
                &GetMaxSeqReq {
                    user_id: "ws2".into(),
                }
                .encode_to_vec(),
            )
            .await,
        );
        if !max.max_seqs.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(max.max_seqs.get("si_ws1_ws2"), Some(&1), "{max:?}");

    let pulled: PullMessageBySeqsResp = payload(
        &request(
            &mut two,
            "ws2",
            1002,
            "p1",
            &PullMessageBySeqsReq {
                user_id: "ws2".into(),
                seq_ranges: vec![SeqRange {
                    conversation_id: "si_ws1_ws2".into(),
                    begin: 1,
                    end: 1,
                    num: 10,
                }],
                order: 0,
            }
            .encode_to_vec(),
        )
        .await,
    );
    let message = &pulled.msgs["si_ws1_ws2"].msgs[0];
    assert_eq!(
        (message.seq, message.client_msg_id.as_str(), message.status),
        (1, "c-1", 2)
    );

    let by_seq: GetSeqMessageResp = payload(
        &request(
            &mut two,
            "ws2",
            1005,
            "q1",
            &GetSeqMessageReq {
                user_id: "ws2".into(),
                conversations: vec![
                    jetim_schemas::openim::msg::ConversationSeqs {
                        conversation_id: "si_ws1_ws2".into(),
                        seqs: vec![1, 5],
                    },
                    jetim_schemas::openim::msg::ConversationSeqs {
                        conversation_id: "si_x_y".into(),
                        seqs: vec![1],
                    },
                ],
                order: 0,
            }
            .encode_to_vec(),
        )
        .await,
    );
    let own = &by_seq.msgs["si_ws1_ws2"];
    assert_eq!(own.msgs.len(), 1);
    assert_eq!(
        (own.is_end, own.end_seq),
        (true, 1),
        "seq 5 is past the end"
    );
    assert!(
        by_seq.msgs["si_x_y"].msgs.is_empty(),
        "a conversation the user is not in is answered, empty"
    );

    let seqs: GetConversationsHasReadAndMaxSeqResp = payload(
        &request(
            &mut two,
            "ws2",
            1006,
            "r1",
            &GetConversationsHasReadAndMaxSeqReq {
                user_id: "ws2".into(),
                conversation_i_ds: Vec::new(),
                return_pinned: false,
            }
            .encode_to_vec(),
        )
        .await,
    );
    assert_eq!(seqs.seqs["si_ws1_ws2"].max_seq, 1);
    assert_eq!(seqs.seqs["si_ws1_ws2"].has_read_seq, 0);
    let _ = &gateway.pool;
}

/// A pull reply of about 34 KB, whose payload the gateway writes from its own buffer, reaches
/// the client whole, and the frames after it follow it.
#[tokio::test]
async fn a_long_reply_reaches_the_client_whole_and_the_connection_goes_on() {
    let gateway = TestGateway::spawn(&["lf1", "lf2"]).await;
    let mut one = gateway.connect("lf1").await;
    // Each send fits this gateway's 8 KiB limit on a client's frames; the five together are
    // a reply longer than any the writer copies.
    let texts: Vec<String> = (0..5).map(|n| n.to_string().repeat(5_000)).collect();
    for (n, text) in texts.iter().enumerate() {
        let sent = text_message("lf1", "lf2", &format!("c-{n}"), text);
        let _: SendMsgResp = payload(
            &request(
                &mut one,
                "lf1",
                1003,
                &format!("s{n}"),
                &sent.encode_to_vec(),
            )
            .await,
        );
    }

    let mut two = gateway.connect("lf2").await;
    let pull = PullMessageBySeqsReq {
        user_id: "lf2".into(),
        seq_ranges: vec![SeqRange {
            conversation_id: "si_lf1_lf2".into(),
            begin: 1,
            end: 5,
            num: 5,
        }],
        order: 0,
    };
    let reply = request(&mut two, "lf2", 1002, "p1", &pull.encode_to_vec()).await;
    assert!(reply.to_string().len() > 25_000, "a long reply");
    let pulled: PullMessageBySeqsResp = payload(&reply);
    let contents: Vec<Value> = pulled.msgs["si_lf1_lf2"]
        .msgs
        .iter()
        .map(|message| serde_json::from_slice(&message.content).unwrap())
        .collect();
    let expected: Vec<Value> = texts.iter().map(|text| json!({"content": text})).collect();
    assert_eq!(contents, expected);
    // The connection goes on as before.
    socket_ping(&mut two).await;
}

/// A plain HTTP request to the gateway is refused with 1602 and what it lacks.
#[tokio::test]
async fn a_request_that_is_not_an_upgrade_is_refused_with_what_it_lacks() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let gateway = TestGateway::spawn(&["nu1"]).await;
    let token = gateway.token("nu1", Platform::WEB).await;
    let host = gateway.address.trim_start_matches("ws://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let query = TestGateway::js_query("nu1", &token, 5);
    stream
        .write_all(
            format!("GET /?{query} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["errCode"], 1602, "{body}");
    assert_eq!(
        body["errDlt"],
        "not a WebSocket upgrade: a WebSocket upgrade sends `Connection: upgrade`"
    );
}

async fn socket_ping(socket: &mut Socket) {
    socket
        .send(Message::Text(r#"{"type":"ping","body":"b"}"#.into()))
        .await
        .unwrap();
    assert_eq!(
        next_text(socket).await,
        json!({"type": "pong", "body": "b"})
    );
}

/// The next pong or close frame, past any other (a push, a web ping); each within 10 s.
async fn next_pong_or_close(socket: &mut Socket) -> Message {
    loop {
        if let frame @ (Message::Pong(_) | Message::Close(_)) = next_frame(socket).await {
            return frame;
        }
    }
}

/// The gateway answers a client's WebSocket ping and close itself.
#[tokio::test]
async fn a_client_ping_gets_its_pong_and_a_client_close_gets_a_close_back() {
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    let gateway = TestGateway::spawn(&["cc1"]).await;
    let mut socket = gateway.connect("cc1").await;
    socket
        .send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let pong = next_pong_or_close(&mut socket).await;
    assert_eq!(pong, Message::Pong(b"are you there".to_vec().into()));

    socket
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await
        .unwrap();
    let Message::Close(close) = next_pong_or_close(&mut socket).await else {
        panic!("no close frame back");
    };
    assert_eq!(close.map(|frame| frame.code), Some(CloseCode::Normal));
    assert!(
        matches!(socket.next().await, None | Some(Err(_))),
        "the connection ends after the close"
    );
    gateway
        .until_no_connections("the closed connection is still held")
        .await;
}

/// A client may fragment a request (RFC 6455 §5.4), with control frames between the
/// fragments; a frame that breaks the protocol closes the connection with 1002.
#[tokio::test]
async fn a_fragmented_request_is_answered_and_an_unmasked_frame_closes_with_1002() {
    use tokio::io::AsyncWriteExt as _;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
    let gateway = TestGateway::spawn(&["fr1"]).await;
    let mut socket = gateway.connect("fr1").await;
    let envelope = request_envelope(
        "fr1",
        1001,
        "fragments",
        &GetMaxSeqReq {
            user_id: "fr1".into(),
        }
        .encode_to_vec(),
    );
    let (first, rest) = envelope.split_at(10);
    let (second, third) = rest.split_at(rest.len() / 2);
    for frame in [
        Frame::message(first.to_vec(), OpCode::Data(Data::Binary), false),
        Frame::ping(b"between".to_vec()),
        Frame::message(second.to_vec(), OpCode::Data(Data::Continue), false),
        Frame::message(third.to_vec(), OpCode::Data(Data::Continue), true),
    ] {
        socket.send(Message::Frame(frame)).await.unwrap();
    }
    assert_eq!(
        next_pong_or_close(&mut socket).await,
        Message::Pong(b"between".to_vec().into())
    );
    let reply = reply_to(&mut socket, "fragments").await;
    assert_eq!(reply["msgIncr"], "fragments", "{reply}");
    assert_eq!(reply["errCode"], 0, "{reply}");

    // A text frame "hi" without a mask, as only a server may send, written to the socket
    // under the client's WebSocket.
    let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = socket.get_mut() else {
        panic!("the test gateway is plain TCP");
    };
    tcp.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
    let Message::Close(close) = next_pong_or_close(&mut socket).await else {
        panic!("no close frame");
    };
    let close = close.expect("a close frame with a code");
    assert_eq!(close.code, CloseCode::Protocol);
    assert!(close.reason.contains("masked"), "{}", close.reason);
}

/// A client whose frames the server no longer reads, because it closed the connection, still
/// gets the close frame and a clean end: the server reads what is left until the client's
/// close, where letting the socket go with bytes unread would reset the connection.
#[tokio::test]
async fn a_client_still_sending_when_the_server_closes_gets_the_close_and_a_clean_end() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    let gateway = TestGateway::spawn(&["lg1"]).await;
    let mut socket = gateway.connect("lg1").await;
    // Not JSON: the server closes with 1002, and reads nothing after it.
    socket.send(Message::Text("{nope".into())).await.unwrap();
    for n in 0..50 {
        socket
            .send(Message::Text(
                format!(r#"{{"type":"pong","body":"{n}"}}"#).into(),
            ))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let Message::Close(close) = next_pong_or_close(&mut socket).await else {
        panic!("no close frame");
    };
    assert_eq!(close.map(|frame| frame.code), Some(CloseCode::Protocol));
    let end = socket.next().await;
    assert!(
        matches!(
            end,
            None | Some(Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed))
        ),
        "a clean end, not a reset: {end:?}"
    );
}

#[tokio::test]
async fn bad_requests_get_openim_errors_and_protocol_errors_close() {
    let gateway = TestGateway::spawn(&["bad1", "bad2"]).await;
    let mut socket = gateway.connect("bad1").await;
    let reply = request(&mut socket, "bad1", 1001, "x1", b"\xff\xff").await;
    assert_eq!(reply["errCode"], 1001, "{reply}");
    assert_eq!(reply["data"], Value::Null);
    assert_eq!(reply["msgIncr"], "x1");
    let reply = request(&mut socket, "bad1", 1099, "x2", b"").await;
    assert_eq!(
        reply["errMsg"],
        "ArgsError: reqIdentifier 1099 is not a request this gateway serves"
    );
    let reply = request(&mut socket, "bad1", 1004, "x3", b"").await;
    assert_eq!(reply["errCode"], 1001);
    let reply = request(
        &mut socket,
        "bad1",
        1001,
        "x4",
        &GetMaxSeqReq {
            user_id: "bad2".into(),
        }
        .encode_to_vec(),
    )
    .await;
    assert_eq!(reply["errCode"], 1002, "nobody asks for another's seqs");
    let reply = request(
        &mut socket,
        "bad1",
        1003,
        "x5",
        &text_message("bad2", "bad1", "forged", "hi").encode_to_vec(),
    )
    .await;
    assert_eq!(reply["errCode"], 1002, "nobody sends as another: {reply}");
    let reply = request(
        &mut socket,
        "bad1",
        1003,
        "x6",
        &text_message("bad1", "nobody", "c", "hi").encode_to_vec(),
    )
    .await;
    assert_eq!(reply["errCode"], 1101, "{reply}");
    let reply = request(
        &mut socket,
        "bad1",
        1002,
        "x7",
        &PullMessageBySeqsReq {
            user_id: "bad1".into(),
            seq_ranges: vec![SeqRange {
                conversation_id: "si_bad1_bad2".into(),
                begin: 5,
                end: 1,
                num: 10,
            }],
            order: 0,
        }
        .encode_to_vec(),
    )
    .await;
    assert_eq!(reply["errCode"], 1001, "{reply}");

    // A request in another user's name closes the connection.
    socket
        .send(Message::Binary(
            json!({"reqIdentifier": 1001, "sendID": "bad2", "msgIncr": "y", "data": ""})
                .to_string()
                .into_bytes()
                .into(),
        ))
        .await
        .unwrap();
    assert!(closed_with(&mut socket).await.contains("sendID"));

    let mut socket = gateway.connect("bad1").await;
    socket.send(Message::Text("hello".into())).await.unwrap();
    assert!(closed_with(&mut socket).await.contains("not JSON"));

    let mut socket = gateway.connect("bad1").await;
    socket
        .send(Message::Binary(b"{not json".to_vec().into()))
        .await
        .unwrap();
    assert!(closed_with(&mut socket).await.contains("not a request"));

    let mut socket = gateway.connect("bad1").await;
    socket
        .send(Message::Binary(vec![b' '; 9000].into()))
        .await
        .unwrap();
    assert!(closed_with(&mut socket).await.contains("too long"));

    // Silence past the read timeout closes it too.
    let mut socket = gateway.connect("bad1").await;
    assert!(closed_with(&mut socket).await.contains("read timeout"));
}

#[tokio::test]
async fn handshakes_are_refused_with_the_code_the_sdks_react_to() {
    let gateway = TestGateway::spawn(&["hs1", "hs2"]).await;
    let token = gateway.token("hs1", Platform::WEB).await;
    let refused = |query: String| {
        let gateway = &gateway;
        async move {
            let mut socket = gateway.connect_raw(&query).await;
            let result = next_text(&mut socket).await;
            let _ = closed_with(&mut socket).await;
            result
        }
    };
    let wrong_user = refused(TestGateway::js_query("hs2", &token, 5)).await;
    assert_eq!(wrong_user["errCode"], 1502, "{wrong_user}");
    let wrong_platform = refused(TestGateway::js_query("hs1", &token, 1)).await;
    assert_eq!(wrong_platform["errCode"], 1502, "{wrong_platform}");
    let forged = refused(TestGateway::js_query("hs1", "abc.def.ghi", 5)).await;
    assert!(
        (1501..=1507).contains(&forged["errCode"].as_i64().unwrap()),
        "{forged}"
    );
    let missing = refused(
        "sendID=hs1&platformID=5&operationID=o&isBackground=false&isMsgResp=true&sdkType=js"
            .to_owned(),
    )
    .await;
    assert_eq!(
        missing,
        json!({"errCode": 1602, "errMsg": "args err, need token, sendID, platformID",
               "errDlt": "token is missing"})
    );

    // Kicked tokens are refused with 1506.
    gateway
        .tokens
        .kick_platform("hs1", Platform::WEB)
        .await
        .unwrap();
    let kicked = refused(TestGateway::js_query("hs1", &token, 5)).await;
    assert_eq!(kicked["errCode"], 1506, "{kicked}");

    // Without isMsgResp the refusal is the HTTP answer: the upgrade does not happen.
    let query = format!(
        "sendID=hs1&token={token}&platformID=5&operationID=o&isBackground=false&sdkType=js"
    );
    let error = tokio_tungstenite::connect_async(format!("{}/?{query}", gateway.address))
        .await
        .unwrap_err();
    match error {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), 200);
            let body: Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["errCode"], 1506, "{body}");
        }
        other => panic!("expected the HTTP refusal, got {other:?}"),
    }
}
