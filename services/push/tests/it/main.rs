//! The push service against real servers: deliveries on `im.deliver.<userID>` with the
//! sender's operationID, and the offline-push webhook for recipients who are not online.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::routing::post;
use futures::StreamExt as _;
use jetim_common::config::PushConfig;
use jetim_common::presence::PresenceStore;
use jetim_common::shutdown::CancellationToken;
use jetim_common::testing::{TestDatabase, TestNats};
use jetim_messaging::service;
use jetim_schemas::events::user::UserRegistered;
use jetim_schemas::openim::sdkws::{MsgData, PushMessages};
use jetim_streams::subject::{Subject, UserKind};
use jetim_streams::{EventLog, Expect, headers};
use prost::Message as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;

struct Setup {
    log: Arc<EventLog>,
    pool: deadpool_postgres::Pool,
    nats: async_nats::Client,
    presence: PresenceStore,
    webhook: mpsc::UnboundedReceiver<Value>,
    stop: CancellationToken,
    _servers: (TestNats, TestDatabase),
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Users and their global receive option.
async fn setup(users: &[(&str, i32)]) -> Setup {
    let nats = TestNats::start().await;
    let database = TestDatabase::migrated().await;
    let jetstream = nats.jetstream().await;
    jetim_streams::definitions::apply_all(&jetstream, 1)
        .await
        .unwrap();
    let log = Arc::new(EventLog::open(jetstream.clone()).await.unwrap());
    let stop = CancellationToken::new();
    tokio::spawn(jetim_readmodel::run_projections(
        jetstream.clone(),
        database.pool(),
        stop.clone(),
    ));
    for (user, global_recv_msg_opt) in users {
        let registered = UserRegistered {
            user_id: (*user).into(),
            nickname: (*user).into(),
            face_url: String::new(),
            ex: String::new(),
            app_manger_level: 1,
            global_recv_msg_opt: *global_recv_msg_opt,
            create_time: 1,
        };
        let subject = Subject::user(user, UserKind::Account).unwrap();
        log.append(&subject, "test", Expect::Empty, None, &registered)
            .await
            .unwrap();
    }
    let ids: Vec<String> = users.iter().map(|(user, _)| (*user).to_owned()).collect();
    for _ in 0..200 {
        let found = jetim_readmodel::users::find(&database.pool(), &ids)
            .await
            .unwrap();
        if found.len() == ids.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // The webhook: records every body it receives.
    let (received, webhook) = mpsc::unbounded_channel();
    let router = axum::Router::new().route(
        "/offline",
        post(move |Json(body): Json<Value>| {
            let received = received.clone();
            async move {
                let _ = received.send(body);
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/offline", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let presence = PresenceStore::open(&jetstream, 1, Duration::from_secs(90))
        .await
        .unwrap();
    let client = nats.client().await;
    tokio::spawn(jetim_push::run(
        jetim_push::PushState {
            jetstream,
            nats: client.clone(),
            db: database.pool(),
            presence: presence.clone(),
            members: jetim_push::members::MemberCache::new(database.pool(), 100),
            config: PushConfig {
                offline_webhook_url: url,
                ..PushConfig::default()
            },
        },
        stop.clone(),
    ));
    // The push consumer takes only messages sent after it exists.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Setup {
        log,
        pool: database.pool(),
        nats: client,
        presence,
        webhook,
        stop,
        _servers: (nats, database),
    }
}

fn message(from: &str, to: &str, client_msg_id: &str) -> MsgData {
    MsgData {
        send_id: from.into(),
        recv_id: to.into(),
        client_msg_id: client_msg_id.into(),
        session_type: 1,
        content_type: 101,
        content: json!({"content": "hi"}).to_string().into_bytes(),
        sender_platform_id: 5,
        ..MsgData::default()
    }
}

impl Setup {
    async fn send(&self, message: &MsgData, operation_id: &str) {
        let sent = service::send(
            &self.log,
            &self.pool,
            message,
            service::Caller::user(&message.send_id),
            operation_id,
        )
        .await
        .unwrap()
        .unwrap();
        assert!(sent.seq > 0);
    }

    async fn next_webhook(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(10), self.webhook.recv())
            .await
            .expect("a webhook call within 10 s")
            .unwrap()
    }
}

#[tokio::test]
async fn pushes_carry_the_operation_and_offline_recipients_reach_the_webhook() {
    let mut setup = setup(&[("alice", 0), ("bob", 0), ("carol", 0), ("dave", 2)]).await;
    let mut to_bob = setup.nats.subscribe("im.deliver.bob").await.unwrap();
    let mut to_alice = setup.nats.subscribe("im.deliver.alice").await.unwrap();
    setup.nats.flush().await.unwrap();

    setup.send(&message("alice", "bob", "m1"), "op-m1").await;
    for subscription in [&mut to_bob, &mut to_alice] {
        let delivered = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await
            .unwrap()
            .unwrap();
        let tags = delivered.headers.as_ref().unwrap();
        assert_eq!(headers::text(tags, headers::OPERATION), Some("op-m1"));
        assert_eq!(headers::text(tags, headers::CLIENT_MSG_ID), Some("m1"));
        let pushed = PushMessages::decode(delivered.payload.as_ref()).unwrap();
        assert_eq!(pushed.msgs["si_alice_bob"].msgs[0].seq, 1);
    }
    // bob is offline: the webhook hears of it, and not of alice, the sender.
    let body = setup.next_webhook().await;
    assert_eq!(body["userIDs"], json!(["bob"]));
    assert_eq!(body["conversationID"], "si_alice_bob");
    assert_eq!(body["clientMsgID"], "m1");
    assert_eq!(body["seq"], 1);
    assert_eq!(body["sendID"], "alice");

    // Not pushed offline: an online recipient, a message that says no, a receiver whose
    // global option says no.
    setup.presence.set("carol", "gw-test", &[5]).await.unwrap();
    setup.send(&message("alice", "carol", "m2"), "op-m2").await;
    let mut quiet = message("alice", "bob", "m3");
    quiet.options.insert("offlinePush".into(), false);
    setup.send(&quiet, "op-m3").await;
    setup.send(&message("alice", "dave", "m4"), "op-m4").await;
    // Then one that qualifies: it is the next call.
    setup.send(&message("carol", "bob", "m5"), "op-m5").await;
    let body = setup.next_webhook().await;
    assert_eq!(body["clientMsgID"], "m5", "{body}");
    assert_eq!(body["userIDs"], json!(["bob"]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        setup.webhook.try_recv().is_err(),
        "nothing else was pushed offline"
    );
}
