//! The push service against real servers: deliveries on `im.deliver.<userID>` (and, the
//! default, once per message on `im.fanout.<conversationID>`) with the sender's operationID,
//! and the offline-push webhook for recipients who are not online.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::routing::post;
use futures::StreamExt as _;
use jetim_common::config::{PushConfig, PushFanout};
use jetim_common::presence::PresenceStore;
use jetim_common::shutdown::CancellationToken;
use jetim_common::testing::{TestDatabase, TestNats};
use jetim_messaging::delivery::{FANOUT_USERS_PER_MESSAGE, Fanout};
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
    members: jetim_push::members::MemberCache,
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

/// Users and their global receive option, and a push service publishing as `fanout` says.
async fn setup(users: &[(&str, i32)], fanout: PushFanout) -> Setup {
    setup_with(
        users,
        PushConfig {
            fanout,
            ..PushConfig::default()
        },
    )
    .await
}

/// As [`setup`], with the push service configured as `config` says (its webhook set here).
async fn setup_with(users: &[(&str, i32)], config: PushConfig) -> Setup {
    setup_over(users, config, None).await
}

/// As [`setup_with`], with the push consumer made beforehand as `made_before` says, as an
/// earlier build would have left it.
async fn setup_over(
    users: &[(&str, i32)],
    config: PushConfig,
    made_before: Option<async_nats::jetstream::consumer::pull::Config>,
) -> Setup {
    let nats = TestNats::start().await;
    let database = TestDatabase::migrated().await;
    let jetstream = nats.jetstream().await;
    jetim_streams::definitions::apply_all(&jetstream, 1)
        .await
        .unwrap();
    if let Some(made_before) = made_before {
        jetstream
            .get_stream("IM_CONV")
            .await
            .unwrap()
            .create_consumer(made_before)
            .await
            .unwrap();
    }
    let log = Arc::new(EventLog::open(jetstream.clone()).await.unwrap());
    let stop = CancellationToken::new();
    tokio::spawn(jetim_readmodel::run_projections(
        jetstream.clone(),
        database.pool(),
        log.hurry().clone(),
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
    let members = jetim_push::members::MemberCache::new(database.pool(), 100);
    let running = jetim_push::run(
        jetim_push::PushState {
            jetstream,
            nats: client.clone(),
            local_gateway: None,
            db: database.pool(),
            presence: presence.clone(),
            members: members.clone(),
            config: PushConfig {
                offline_webhook_url: url,
                ..config
            },
        },
        stop.clone(),
    );
    tokio::spawn(async move {
        // A test waiting for pushes times out; this says why none came.
        if let Err(error) = running.await {
            eprintln!("the push service stopped: {error:#}");
        }
    });
    // The push consumer takes only messages sent after it exists.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Setup {
        log,
        members,
        pool: database.pool(),
        nats: client,
        presence,
        webhook,
        stop,
        _servers: (nats, database),
    }
}

/// A member joining group `g`; ann owns it.
fn new_member(user: &str) -> jetim_schemas::events::group::NewMember {
    jetim_schemas::events::group::NewMember {
        user_id: user.into(),
        role_level: if user == "ann" { 100 } else { 20 },
        join_source: 1,
        inviter_user_id: String::new(),
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
            &jetim_readmodel::send_facts::FactsReader::new(self.pool.clone()),
            message,
            service::Caller::user(&message.send_id),
            operation_id,
        )
        .await
        .unwrap()
        .unwrap();
        assert!(sent.seq > 0);
    }

    /// Group `g`, created by ann with `members` (ann among them), once the groups read model
    /// shows it.
    async fn create_group(&self, members: &[&str]) {
        use jetim_schemas::events::group::{GroupCreated, GroupProfile};
        use jetim_streams::subject::ConversationKind;
        let group = Subject::conversation("sg_g", ConversationKind::Group).unwrap();
        let created = GroupCreated {
            group_id: "g".into(),
            creator_user_id: "ann".into(),
            group_type: 2,
            profile: GroupProfile::default(),
            members: members.iter().map(|user| new_member(user)).collect(),
            create_time: 1,
        };
        let appended = self
            .log
            .append(&group, "ann", Expect::Empty, None, &created)
            .await
            .unwrap();
        jetim_readmodel::projection::wait_for(
            &self.pool,
            self.log.hurry(),
            jetim_readmodel::groups::NAME,
            jetim_readmodel::groups::VERSION,
            appended.stream_sequence,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
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
    let mut setup = setup(
        &[("alice", 0), ("bob", 0), ("carol", 0), ("dave", 2)],
        PushFanout::PerUser,
    )
    .await;
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
    // Handled messages are acknowledged once nothing else waits, at most 50 ms after the
    // first of them (one ack for several under the "all" policy): the consumer holds none
    // unacknowledged, and redelivers none.
    let info = push_consumer_info(&setup.nats).await;
    assert_eq!(
        info.config.ack_policy,
        async_nats::jetstream::consumer::AckPolicy::All
    );
    assert_eq!(info.num_ack_pending, 0, "{info:?}");
    assert_eq!(
        info.ack_floor.stream_sequence,
        info.delivered.stream_sequence
    );
}

#[tokio::test]
async fn a_push_consumer_made_by_an_earlier_build_gets_room_for_a_whole_pull() {
    use async_nats::jetstream::consumer;
    let earlier = consumer::pull::Config {
        // Settings of its own, which the raise must keep.
        description: Some("made by an earlier build".to_owned()),
        ack_wait: Duration::from_secs(20),
        // An operator's cap on pulls, below the push's own batch: its pulls must fit.
        max_batch: 100,
        ..push_consumer_made_before(1000)
    };
    let setup = setup_over(
        &[("alice", 0), ("bob", 0)],
        PushConfig {
            fanout: PushFanout::PerUser,
            ..PushConfig::default()
        },
        Some(earlier),
    )
    .await;
    let mut to_bob = setup.nats.subscribe("im.deliver.bob").await.unwrap();
    setup.nats.flush().await.unwrap();
    let mut info = push_consumer_info(&setup.nats).await;
    for _ in 0..200 {
        if info.config.max_ack_pending > 1000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        info = push_consumer_info(&setup.nats).await;
    }
    assert!(info.config.max_ack_pending > 1000, "{:?}", info.config);
    // Everything else is as it was made.
    assert_eq!(
        info.config.description.as_deref(),
        Some("made by an earlier build")
    );
    assert_eq!(info.config.ack_wait, Duration::from_secs(20));
    assert_eq!(info.config.max_batch, 100);
    assert_eq!(info.config.ack_policy, consumer::AckPolicy::All);
    assert_eq!(info.config.filter_subject, "im.conv.*.msg");
    // And the consumer it reopened pushes.
    for n in 0..3 {
        setup
            .send(&message("alice", "bob", &format!("m{n}")), "op")
            .await;
    }
    for n in 0..3 {
        let delivered = tokio::time::timeout(Duration::from_secs(10), to_bob.next())
            .await
            .expect("a push within 10 s")
            .unwrap();
        let tags = delivered.headers.as_ref().unwrap();
        assert_eq!(
            headers::text(tags, headers::CLIENT_MSG_ID),
            Some(format!("m{n}").as_str())
        );
    }
}

#[tokio::test]
async fn a_push_consumer_with_no_limit_in_flight_keeps_it() {
    let setup = setup_over(
        &[("alice", 0), ("bob", 0)],
        PushConfig {
            fanout: PushFanout::PerUser,
            ..PushConfig::default()
        },
        Some(push_consumer_made_before(-1)),
    )
    .await;
    let mut to_bob = setup.nats.subscribe("im.deliver.bob").await.unwrap();
    setup.nats.flush().await.unwrap();
    setup.send(&message("alice", "bob", "m0"), "op").await;
    // Once it pushes, the start (and any raise) is over.
    tokio::time::timeout(Duration::from_secs(10), to_bob.next())
        .await
        .expect("a push within 10 s")
        .unwrap();
    let info = push_consumer_info(&setup.nats).await;
    assert_eq!(info.config.max_ack_pending, -1);
}

/// A push consumer as an earlier build (or an operator) made it, allowing `max_ack_pending`
/// unacknowledged messages.
fn push_consumer_made_before(
    max_ack_pending: i64,
) -> async_nats::jetstream::consumer::pull::Config {
    async_nats::jetstream::consumer::pull::Config {
        durable_name: Some(jetim_push::CONSUMER.to_owned()),
        filter_subject: jetim_streams::subject::every_conversation(
            jetim_streams::subject::ConversationKind::Timeline,
        ),
        ack_policy: async_nats::jetstream::consumer::AckPolicy::All,
        max_ack_pending,
        deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::New,
        ..Default::default()
    }
}

/// The push service's consumer as the server holds it now.
async fn push_consumer_info(nats: &async_nats::Client) -> async_nats::jetstream::consumer::Info {
    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
        async_nats::jetstream::new(nats.clone())
            .get_stream(jetim_streams::subject::CONVERSATION_STREAM)
            .await
            .unwrap()
            .get_consumer(jetim_push::CONSUMER)
            .await
            .unwrap();
    consumer.info().await.unwrap().clone()
}

/// The next fan-out push on `subscription`: its subject, its recipients (sorted), and the
/// conversation and seq it pushes.
async fn next_fanout(
    subscription: &mut async_nats::Subscriber,
) -> (String, Vec<String>, (String, i64)) {
    let delivered = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("a fan-out push within 10 s")
        .unwrap();
    let tags = delivered.headers.as_ref().unwrap();
    assert_eq!(headers::text(tags, headers::OPERATION), Some("op"));
    assert_eq!(headers::text(tags, headers::SENDER), Some("ann"));
    let fanout = Fanout::decode(delivered.payload.as_ref()).unwrap();
    let mut users = fanout.users;
    users.sort();
    let pushed = PushMessages::decode(fanout.push.as_ref()).unwrap();
    let (conversation, pulled) = pushed.msgs.into_iter().next().expect("a chat message");
    (
        delivered.subject.to_string(),
        users,
        (conversation, pulled.msgs[0].seq),
    )
}

#[tokio::test]
async fn a_group_message_reaches_the_members_of_the_moment() {
    use jetim_schemas::events::group::{MembersJoined, MembersLeft};
    use jetim_streams::subject::ConversationKind;
    let setup = setup(
        &[("ann", 0), ("bo", 0), ("cy", 0), ("di", 0)],
        PushFanout::Conversation,
    )
    .await;
    setup.create_group(&["ann", "bo", "cy"]).await;
    let group = Subject::conversation("sg_g", ConversationKind::Group).unwrap();
    // One message for the whole group, naming its members; nothing per user.
    let mut fanouts = setup.nats.subscribe("im.fanout.*").await.unwrap();
    let mut per_user = setup.nats.subscribe("im.deliver.*").await.unwrap();
    setup.nats.flush().await.unwrap();
    let group_message = |client_msg_id: &str| MsgData {
        group_id: "g".into(),
        session_type: 3,
        ..message("ann", "", client_msg_id)
    };
    setup.send(&group_message("g1"), "op").await;
    assert_eq!(
        next_fanout(&mut fanouts).await,
        (
            "im.fanout.sg_g".to_owned(),
            vec!["ann".to_owned(), "bo".to_owned(), "cy".to_owned()],
            ("sg_g".to_owned(), 1)
        )
    );

    // cy leaves and di joins: the cached list follows the group's events.
    setup
        .log
        .append(
            &group,
            "ann",
            Expect::Anything,
            None,
            &MembersLeft {
                group_id: "g".into(),
                operator_user_id: "ann".into(),
                user_ids: vec!["cy".into()],
                kicked: true,
                max_seq: 1,
                time: 2,
            },
        )
        .await
        .unwrap();
    let joined = setup
        .log
        .append(
            &group,
            "ann",
            Expect::Anything,
            None,
            &MembersJoined {
                group_id: "g".into(),
                operator_user_id: "ann".into(),
                members: vec![new_member("di")],
                join_time: 3,
                history_from_seq: None,
            },
        )
        .await
        .unwrap();
    jetim_readmodel::projection::wait_for(
        &setup.pool,
        setup.log.hurry(),
        jetim_readmodel::groups::NAME,
        jetim_readmodel::groups::VERSION,
        joined.stream_sequence,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let mut members = Vec::new();
    for _ in 0..200 {
        members = setup.members.members("g").await.unwrap().as_ref().clone();
        members.sort();
        if members == ["ann", "bo", "di"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(members, ["ann", "bo", "di"]);
    setup.send(&group_message("g2"), "op").await;
    assert_eq!(
        next_fanout(&mut fanouts).await,
        (
            "im.fanout.sg_g".to_owned(),
            vec!["ann".to_owned(), "bo".to_owned(), "di".to_owned()],
            ("sg_g".to_owned(), 2)
        ),
        "cy left and is not named; di joined and is"
    );
    let nothing = tokio::time::timeout(Duration::from_millis(300), per_user.next()).await;
    assert!(nothing.is_err(), "no push per user");
}

/// A linger long enough for the six sends of [`push_group_messages_sent_together`] to fall
/// in one, and for what must not wait to show it did not.
const TEST_LINGER_MS: u64 = 3000;

#[tokio::test]
async fn group_messages_read_within_the_linger_are_pushed_together_in_seq_order() {
    let sizes = push_group_messages_sent_together(PushConfig {
        group_linger_ms: TEST_LINGER_MS,
        ..PushConfig::default()
    })
    .await;
    // The group was quiet, so its first message went at once with what had been read by
    // then; the group was busy from there, so the rest waited for each other.
    assert!(
        sizes.len() <= 2,
        "the messages read within the linger went out together: {sizes:?}"
    );
}

#[tokio::test]
async fn one_message_a_push_when_so_configured() {
    let sizes = push_group_messages_sent_together(PushConfig {
        messages_per_push: 1,
        group_linger_ms: TEST_LINGER_MS,
        ..PushConfig::default()
    })
    .await;
    assert_eq!(sizes, [1; 6]);
}

#[tokio::test]
async fn single_chats_and_quiet_groups_do_not_wait_for_the_linger_and_busy_groups_do() {
    let setup = setup_with(
        &[("ann", 0), ("bo", 0), ("cy", 0)],
        PushConfig {
            group_linger_ms: TEST_LINGER_MS,
            ..PushConfig::default()
        },
    )
    .await;
    setup.create_group(&["ann", "bo", "cy"]).await;
    let mut fanouts = setup.nats.subscribe("im.fanout.*").await.unwrap();
    setup.nats.flush().await.unwrap();
    let group_message = |client_msg_id: &str| MsgData {
        group_id: "g".into(),
        session_type: 3,
        ..message("ann", "", client_msg_id)
    };
    let soon = Duration::from_millis(TEST_LINGER_MS / 2);
    let mut next = async || {
        let delivered = tokio::time::timeout(Duration::from_secs(10), fanouts.next())
            .await
            .expect("a fan-out push within 10 s")
            .unwrap();
        delivered.subject.to_string()
    };

    // A single chat's message, and a quiet group's, go at once.
    for (message, subject) in [
        (message("ann", "bo", "c-single"), "im.fanout.si_ann_bo"),
        (group_message("c-quiet"), "im.fanout.sg_g"),
    ] {
        let sent = std::time::Instant::now();
        setup.send(&message, "op").await;
        assert_eq!(next().await, subject);
        assert!(
            sent.elapsed() < soon,
            "{subject} waited {:?}",
            sent.elapsed()
        );
    }

    // The group is busy now: its next message waits for the linger, and a single chat's
    // message sent meanwhile does not wait for it.
    let held = std::time::Instant::now();
    setup.send(&group_message("c-busy"), "op").await;
    setup.send(&message("bo", "ann", "c-meanwhile"), "op").await;
    assert_eq!(next().await, "im.fanout.si_ann_bo");
    assert!(
        held.elapsed() < soon,
        "the single chat waited {:?}",
        held.elapsed()
    );
    assert_eq!(next().await, "im.fanout.sg_g");
    assert!(
        held.elapsed() >= Duration::from_millis(TEST_LINGER_MS) - Duration::from_millis(100),
        "the busy group's message waited for the linger: {:?}",
        held.elapsed()
    );
}

/// Six group messages sent one after the other, within one linger; checks each push and
/// returns how many messages each carried, in order.
async fn push_group_messages_sent_together(config: PushConfig) -> Vec<usize> {
    let setup = setup_with(&[("ann", 0), ("bo", 0), ("cy", 0)], config).await;
    setup.create_group(&["ann", "bo", "cy"]).await;
    let mut fanouts = setup.nats.subscribe("im.fanout.*").await.unwrap();
    setup.nats.flush().await.unwrap();

    let senders = ["ann", "bo", "ann", "cy", "bo", "ann"];
    for (index, sender) in senders.iter().enumerate() {
        let message = MsgData {
            group_id: "g".into(),
            session_type: 3,
            ..message(sender, "", &format!("w{index}"))
        };
        setup.send(&message, &format!("op-w{index}")).await;
    }

    let mut seqs = Vec::new();
    let mut sizes = Vec::new();
    while seqs.len() < senders.len() {
        let delivered = tokio::time::timeout(Duration::from_secs(10), fanouts.next())
            .await
            .expect("the pushes within 10 s")
            .unwrap();
        assert_eq!(delivered.subject.as_str(), "im.fanout.sg_g");
        let fanout = Fanout::decode(delivered.payload.as_ref()).unwrap();
        let mut users = fanout.users.clone();
        users.sort();
        assert_eq!(users, ["ann", "bo", "cy"]);
        let pushed = PushMessages::decode(fanout.push.as_ref()).unwrap();
        assert_eq!(pushed.msgs.len(), 1, "one conversation a push");
        let messages = &pushed.msgs["sg_g"].msgs;
        sizes.push(messages.len());
        let operation = delivered
            .headers
            .as_ref()
            .and_then(|tags| headers::text(tags, headers::OPERATION));
        if let [alone] = messages.as_slice() {
            // One message: tagged in the headers, as always.
            assert!(fanout.singles.is_empty());
            assert_eq!(
                operation,
                Some(format!("op-{}", alone.client_msg_id).as_str())
            );
        } else {
            // Several: each alone beside them, with its sender's tags.
            assert_eq!(operation, None);
            assert_eq!(fanout.singles.len(), messages.len());
            for (single, message) in fanout.singles.iter().zip(messages) {
                assert_eq!(single.sender, message.send_id);
                assert_eq!(single.client_msg_id, message.client_msg_id);
                assert_eq!(single.operation_id, format!("op-{}", message.client_msg_id));
                let alone = PushMessages::decode(single.push.as_ref()).unwrap();
                assert_eq!(alone.msgs["sg_g"].msgs, std::slice::from_ref(message));
            }
        }
        for message in messages {
            let index: usize = message.client_msg_id[1..].parse().unwrap();
            assert_eq!(message.send_id, senders[index]);
            seqs.push(message.seq);
        }
    }
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6], "each once, in seq order");
    let nothing = tokio::time::timeout(Duration::from_millis(300), fanouts.next()).await;
    assert!(nothing.is_err(), "nothing twice");
    sizes
}

#[tokio::test]
async fn a_big_group_s_push_is_split_into_parts_that_name_each_member_once() {
    let nats = TestNats::start().await;
    let client = nats.client().await;
    let mut fanouts = client.subscribe("im.fanout.*").await.unwrap();
    client.flush().await.unwrap();
    let members: Vec<String> = (0..2 * FANOUT_USERS_PER_MESSAGE + 7)
        .map(|member| format!("member.{member}"))
        .collect();
    let sent = jetim_schemas::events::msg::MsgSent {
        conversation_id: "sg_big.one".into(),
        seq: 9,
        server_msg_id: "s9".into(),
        client_msg_id: "c9".into(),
        send_id: "member.0".into(),
        recv_id: String::new(),
        group_id: "big.one".into(),
        sender_platform_id: 5,
        sender_nickname: String::new(),
        sender_face_url: String::new(),
        session_type: 3,
        msg_from: 100,
        content_type: 101,
        content: r#"{"content":"hi all"}"#.into(),
        send_time: 1,
        create_time: 1,
        options: std::collections::BTreeMap::new(),
        offline_push: None,
        at_user_ids: Vec::new(),
        attached_info: String::new(),
        ex: String::new(),
    };
    jetim_messaging::delivery::publish_fanout(&client, &members, &sent, "op")
        .await
        .unwrap();
    client.flush().await.unwrap();
    let mut named = Vec::new();
    let mut sizes = Vec::new();
    for _ in 0..3 {
        let part = tokio::time::timeout(Duration::from_secs(10), fanouts.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(part.subject.as_str(), "im.fanout.sg_big=2Eone");
        let fanout = Fanout::decode(part.payload.as_ref()).unwrap();
        let pushed = PushMessages::decode(fanout.push.as_ref()).unwrap();
        assert_eq!(pushed.msgs["sg_big.one"].msgs[0].seq, 9);
        sizes.push(fanout.users.len());
        named.extend(fanout.users);
    }
    assert_eq!(
        sizes,
        [FANOUT_USERS_PER_MESSAGE, FANOUT_USERS_PER_MESSAGE, 7]
    );
    assert_eq!(named, members, "every member once, in order");
    let nothing = tokio::time::timeout(Duration::from_millis(200), fanouts.next()).await;
    assert!(nothing.is_err(), "three parts, no more");
}
