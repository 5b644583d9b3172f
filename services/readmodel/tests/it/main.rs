//! The read models' invariants against real servers: applying is idempotent (a batch
//! redelivered after its commit changes nothing), and a rebuild from the log in other batch
//! sizes gives the same rows as the live projection.

use deadpool_postgres::Pool;
use jetim_common::testing::{TestDatabase, TestNats};
use jetim_readmodel::conversations::ConversationSettingsProjection;
use jetim_readmodel::messages::MessagesProjection;
use jetim_readmodel::relations::RelationsProjection;
use jetim_schemas::events::conversation::{
    ConversationSet, ConversationsDeleted, DeletedConversation,
};
use jetim_schemas::events::msg::{
    ConversationCleared, ConversationRead, MsgRevoked, MsgSent, MsgsDeleted, ReadMode,
};
use jetim_schemas::events::user::UserRegistered;
use jetim_schemas::openim::sdkws::MsgData;
use jetim_streams::consume::{BatchHandler, Replay};
use jetim_streams::subject::{
    CONVERSATION_STREAM, ConversationKind, Subject, USER_STREAM, UserKind,
};
use jetim_streams::{EventLog, Expect, RecordedEvent};

const TABLES: &[&str] = &[
    "messages_v1",
    "conversation_seqs_v1",
    "user_conversations_v1",
    "read_seqs_v1",
    "hidden_messages_v1",
];

/// Every row of `tables`, as JSON text, sorted.
async fn rows_of(pool: &Pool, tables: &[&str]) -> Vec<Vec<String>> {
    let client = pool.get().await.unwrap();
    let mut all = Vec::new();
    for table in tables {
        let rows = client
            .query(
                &format!("SELECT to_jsonb(t)::text FROM {table} t ORDER BY 1"),
                &[],
            )
            .await
            .unwrap();
        all.push(rows.iter().map(|row| row.get::<_, String>(0)).collect());
    }
    all
}

/// Applies `events` in batches of `batch_size`; with `twice`, each batch again after its
/// commit, as when the ack was lost and the same batch comes again.
async fn project(
    mut projection: impl BatchHandler,
    events: &[RecordedEvent],
    batch_size: usize,
    twice: bool,
) {
    for batch in events.chunks(batch_size) {
        projection.apply(batch).await.unwrap();
        if twice {
            projection.apply(batch).await.unwrap();
        }
    }
}

/// A private nats-server with jetim's streams, and the event log on it.
async fn fresh_log() -> (TestNats, async_nats::jetstream::Context, EventLog) {
    let nats = TestNats::start().await;
    let jetstream = nats.jetstream().await;
    jetim_streams::definitions::apply_all(&jetstream, 1)
        .await
        .unwrap();
    let log = EventLog::open(jetstream.clone()).await.unwrap();
    (nats, jetstream, log)
}

/// Projects `events` one at a time, each twice (as when an ack is lost), into a fresh
/// database, then replays them all once more, and checks the replay changed neither the
/// rows of `tables` nor the version logs `logs`. Returns the database and its rows.
async fn applied_idempotently<H: BatchHandler>(
    handler: impl Fn(Pool) -> H,
    events: &[RecordedEvent],
    (tables, logs): (&[&str], &[&str]),
) -> (TestDatabase, Vec<Vec<String>>) {
    let live = TestDatabase::migrated().await;
    let pool = live.pool();
    project(handler(pool.clone()), events, 1, true).await;
    let rows = rows_of(&pool, tables).await;
    let versions = rows_of(&pool, logs).await;
    project(handler(pool.clone()), events, events.len(), false).await;
    assert_eq!(
        rows_of(&pool, tables).await,
        rows,
        "a replay changes nothing"
    );
    assert_eq!(rows_of(&pool, logs).await, versions, "nor bumps a version");
    (live, rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_messages_projection_is_idempotent_and_a_rebuild_equals_the_live_rows() {
    let (_nats, jetstream, log) = fresh_log().await;
    for user in ["u1", "u2", "u3", "news"] {
        let registered = UserRegistered {
            user_id: user.into(),
            nickname: user.into(),
            face_url: String::new(),
            ex: String::new(),
            app_manger_level: if user == "news" { 3 } else { 1 },
            global_recv_msg_opt: 0,
            create_time: 1,
        };
        let subject = Subject::user(user, UserKind::Account).unwrap();
        log.append(&subject, "test", Expect::Empty, None, &registered)
            .await
            .unwrap();
    }
    let live = TestDatabase::migrated().await;
    let live_pool = live.pool();
    let pairs = [
        ("u1", "u2", 1),
        ("u2", "u1", 1),
        ("u1", "u3", 1),
        ("news", "u1", 4),
    ];
    for index in 0..23 {
        let (from, to, session) = pairs[index % pairs.len()];
        let message = MsgData {
            send_id: from.into(),
            recv_id: to.into(),
            client_msg_id: format!("c{index}"),
            session_type: session,
            content_type: 101,
            content: format!(r#"{{"content":"m{index}"}}"#).into_bytes(),
            ..MsgData::default()
        };
        jetim_messaging::service::send(
            &log,
            &live_pool,
            &jetim_readmodel::send_facts::FactsReader::new(live_pool.clone()),
            &message,
            jetim_messaging::service::Caller::user(from),
            "op",
        )
        .await
        .unwrap()
        .unwrap();
    }

    // The same clientMsgID again, beyond the duplicate window (another dedup key): the log
    // is the authority, so it keeps its own row and seq, and the clientMsgID still answers
    // with the message it first became.
    let timeline = Subject::timeline("si_u1_u2").unwrap();
    let first = stream_events(&jetstream, CONVERSATION_STREAM)
        .await
        .into_iter()
        .find(|event| event.subject == timeline.as_str())
        .unwrap();
    let mut again: MsgSent = first.decode().unwrap();
    assert_eq!((again.seq, again.client_msg_id.as_str()), (1, "c0"));
    again.server_msg_id = "again".into();
    log.append_to_timeline("si_u1_u2", "beyond the window", "u1", &again)
        .await
        .unwrap();

    // Read marks, raised and set, interleaved with the timeline.
    for (reader, has_read_seq, mode) in [
        ("u2", 5, ReadMode::Raise),
        ("u2", 3, ReadMode::Set),
        ("u2", 4, ReadMode::Raise),
        ("u1", 2, ReadMode::Set),
    ] {
        let read = ConversationRead {
            conversation_id: "si_u1_u2".into(),
            user_id: reader.into(),
            has_read_seq,
            mode,
            seqs: vec![1],
            from_seq: 0,
        };
        let subject = Subject::conversation("si_u1_u2", ConversationKind::Read).unwrap();
        log.append(&subject, reader, Expect::Anything, None, &read)
            .await
            .unwrap();
    }

    // Two revocations of one message: the first counts.
    for revoker in ["u1", "u2"] {
        let revoked = MsgRevoked {
            conversation_id: "si_u1_u2".into(),
            seq: 3,
            client_msg_id: "c4".into(),
            revoker_id: revoker.into(),
            revoker_role: 0,
            revoker_nickname: revoker.into(),
            revoke_time: 7,
            is_admin_revoke: false,
        };
        let subject = Subject::conversation("si_u1_u2", ConversationKind::Revoke).unwrap();
        log.append(&subject, revoker, Expect::Anything, None, &revoked)
            .await
            .unwrap();
    }

    // A delete for one, a delete for all, a clear for one.
    let delete_subject = Subject::conversation("si_u1_u3", ConversationKind::Delete).unwrap();
    for (seqs, for_everyone) in [(vec![1, 2], false), (vec![3], true)] {
        let deletion = MsgsDeleted {
            conversation_id: "si_u1_u3".into(),
            user_id: "u3".into(),
            seqs,
            for_everyone,
        };
        log.append(&delete_subject, "u3", Expect::Anything, None, &deletion)
            .await
            .unwrap();
    }
    let clear = ConversationCleared {
        conversation_id: "si_u1_u3".into(),
        user_id: "u1".into(),
        min_seq: 5,
        for_everyone: false,
    };
    log.append(&delete_subject, "u1", Expect::Anything, None, &clear)
        .await
        .unwrap();

    let events = stream_events(&jetstream, CONVERSATION_STREAM).await;
    assert_eq!(events.len(), 33);
    // Live batches write their messages with COPY here, so each batch's second delivery
    // finds them there and writes them again with ON CONFLICT; the batches of `once` are
    // too small for COPY.
    project(
        MessagesProjection::new(live_pool.clone()).copying_from(1),
        &events,
        7,
        true,
    )
    .await;
    let once = TestDatabase::migrated().await;
    project(MessagesProjection::new(once.pool()), &events, 7, false).await;
    let live_rows = rows_of(&live_pool, TABLES).await;
    assert_eq!(
        live_rows,
        rows_of(&once.pool(), TABLES).await,
        "a redelivered batch changed nothing"
    );
    // A batch of which some messages are there and some not (a replay from further back
    // than the last commit) writes the new ones.
    let partly = TestDatabase::migrated().await;
    project(
        MessagesProjection::new(partly.pool()).copying_from(1),
        &events[..20],
        20,
        false,
    )
    .await;
    project(
        MessagesProjection::new(partly.pool()).copying_from(1),
        &events[12..],
        events.len(),
        false,
    )
    .await;
    assert_eq!(
        rows_of(&partly.pool(), TABLES).await,
        live_rows,
        "a batch overlapping the last one"
    );

    let rebuilt = TestDatabase::migrated().await;
    project(
        MessagesProjection::new(rebuilt.pool()).copying_from(2),
        &events,
        3,
        false,
    )
    .await;
    assert_eq!(
        rows_of(&rebuilt.pool(), TABLES).await,
        live_rows,
        "rebuild equals live"
    );

    // Seqs run 1..n per conversation in the read model.
    let client = live_pool.get().await.unwrap();
    let gaps: i64 = client
        .query_one(
            "SELECT count(*) FROM (
                 SELECT conversation_id, max(seq) AS top, count(*) AS n FROM messages_v1
                 GROUP BY conversation_id) c
             WHERE top <> n",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(gaps, 0);
    let conversations: i64 = client
        .query_one(
            "SELECT count(DISTINCT conversation_id) FROM messages_v1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(conversations, 3, "si_u1_u2, si_u1_u3 and sn_news_u1");
    let max_seq = jetim_readmodel::messages::max_seq(&live_pool, "si_u1_u2")
        .await
        .unwrap();
    assert_eq!(
        max_seq, 13,
        "two of every four sends went to si_u1_u2, and the resend"
    );
    let original = jetim_readmodel::messages::original(&live_pool, "si_u1_u2", "c0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        original.seq, 1,
        "a clientMsgID answers with its first message"
    );
    assert_ne!(original.server_msg_id, "again");
    let resent: Vec<i64> = client
        .query(
            "SELECT seq FROM messages_v1 WHERE conversation_id = 'si_u1_u2'
               AND client_msg_id = 'c0' ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(resent, [1, 13], "the resend kept its row and seq");
    let read: Vec<(String, i64)> = client
        .query(
            "SELECT owner_user_id, has_read_seq FROM read_seqs_v1
             WHERE conversation_id = 'si_u1_u2' ORDER BY owner_user_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    // u1 sent up to seq 13 but then set 2; u2 sent up to 12, raised to 5, set 3, raised 4.
    assert_eq!(read, [("u1".to_owned(), 2), ("u2".to_owned(), 4)]);
    let revoker: String = client
        .query_one(
            "SELECT revoked::jsonb->>'revoker_id' FROM messages_v1 WHERE conversation_id = 'si_u1_u2' AND seq = 3",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(revoker, "u1", "the first revocation counts");
}

async fn stream_events(
    jetstream: &async_nats::jetstream::Context,
    stream: &str,
) -> Vec<RecordedEvent> {
    let mut replay = Replay::start(jetstream, stream, 1, Vec::new())
        .await
        .unwrap();
    let mut events = Vec::new();
    while let Some(event) = replay.next().await {
        events.push(event.unwrap());
    }
    events
}

/// Each owner's visible conversation rows, as the routes read them.
async fn visible_rows(pool: &Pool) -> Vec<jetim_readmodel::conversations::ConversationRow> {
    let mut rows = Vec::new();
    for owner in ["v1", "v2"] {
        rows.extend(
            jetim_readmodel::conversations::list(pool, owner, None)
                .await
                .unwrap(),
        );
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_conversations_read_the_same_whichever_projection_applies_first() {
    let (_nats, jetstream, log) = fresh_log().await;
    for user in ["v1", "v2"] {
        let registered = UserRegistered {
            user_id: user.into(),
            nickname: user.into(),
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
    let scratch = TestDatabase::migrated().await;
    let scratch_pool = scratch.pool();
    let conversation_subject = Subject::user("v2", UserKind::Conversation).unwrap();
    let set = |pinned: bool| ConversationSet {
        owner_user_id: "v2".into(),
        conversation_id: "si_v1_v2".into(),
        conversation_type: 1,
        user_id: "v1".into(),
        is_pinned: Some(pinned),
        ..ConversationSet::default()
    };
    let delete = |owner: &str, through_seq: u64| ConversationsDeleted {
        owner_user_id: owner.into(),
        conversations: vec![DeletedConversation {
            conversation_id: "si_v1_v2".into(),
            conversation_type: 1,
            user_id: if owner == "v1" { "v2" } else { "v1" }.into(),
            group_id: String::new(),
            through_seq,
        }],
    };
    let mut sent = 0;
    let mut send = async |count: usize| {
        for _ in 0..count {
            let (from, to) = if sent % 2 == 0 {
                ("v1", "v2")
            } else {
                ("v2", "v1")
            };
            let message = MsgData {
                send_id: from.into(),
                recv_id: to.into(),
                client_msg_id: format!("d{sent}"),
                session_type: 1,
                content_type: 101,
                content: format!(r#"{{"content":"m{sent}"}}"#).into_bytes(),
                ..MsgData::default()
            };
            sent += 1;
            jetim_messaging::service::send(
                &log,
                &scratch_pool,
                &jetim_readmodel::send_facts::FactsReader::new(scratch_pool.clone()),
                &message,
                jetim_messaging::service::Caller::user(from),
                "op",
            )
            .await
            .unwrap()
            .unwrap();
        }
    };
    send(3).await;
    log.append(
        &conversation_subject,
        "v2",
        Expect::Anything,
        None,
        &set(true),
    )
    .await
    .unwrap();
    log.append(
        &conversation_subject,
        "v2",
        Expect::Anything,
        None,
        &delete("v2", 3),
    )
    .await
    .unwrap();
    send(2).await;
    let v1_subject = Subject::user("v1", UserKind::Conversation).unwrap();
    log.append(&v1_subject, "v1", Expect::Anything, None, &delete("v1", 5))
        .await
        .unwrap();

    let timeline = stream_events(&jetstream, CONVERSATION_STREAM).await;
    let settings = stream_events(&jetstream, USER_STREAM).await;
    let mut answers = Vec::new();
    for messages_first in [true, false] {
        let database = TestDatabase::migrated().await;
        let pool = database.pool();
        let mut messages = MessagesProjection::new(pool.clone());
        let mut conversations = ConversationSettingsProjection::new(pool.clone());
        // Each batch twice (a redelivery), one projection entirely before the other.
        if messages_first {
            messages.apply(&timeline).await.unwrap();
            messages.apply(&timeline).await.unwrap();
        }
        conversations.apply(&settings).await.unwrap();
        conversations.apply(&settings).await.unwrap();
        if !messages_first {
            messages.apply(&timeline).await.unwrap();
            messages.apply(&timeline).await.unwrap();
        }
        answers.push(visible_rows(&pool).await);
    }
    assert_eq!(answers[0], answers[1], "the order does not matter");
    let owners: Vec<(&str, &str, bool)> = answers[0]
        .iter()
        .map(|row| {
            (
                row.owner_user_id.as_str(),
                row.conversation_id.as_str(),
                row.is_pinned,
            )
        })
        .collect();
    assert_eq!(
        owners,
        [
            ("v1", "n_v1_v2", false),
            ("v2", "n_v1_v2", false),
            ("v2", "si_v1_v2", false)
        ],
        "v1 deleted after the last message; v2's row came back without its pin"
    );
}

const RELATION_TABLES: &[&str] = &["friend_requests_v1", "friends_v1", "blacks_v1"];
const RELATION_LOGS: &[&str] = &[
    "friend_versions_v1",
    "friend_changes_v1",
    "black_versions_v1",
    "black_changes_v1",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relations_projection_is_idempotent_and_a_rebuild_equals_the_live_rows() {
    use jetim_schemas::events::relation::{
        BlackAdded, BlackRemoved, FriendDeleted, FriendRequestHandled, FriendRequested,
        FriendsImported, FriendsUpdated,
    };
    let (_nats, jetstream, log) = fresh_log().await;
    let friend = |user: &str| Subject::user(user, UserKind::Friend).unwrap();
    let black = |user: &str| Subject::user(user, UserKind::Black).unwrap();
    let request = |from: &str, to: &str, create_time: i64| FriendRequested {
        from_user_id: from.into(),
        to_user_id: to.into(),
        req_msg: format!("{from} asks {to}"),
        ex: String::new(),
        create_time,
    };
    let answer =
        |from: &str, to: &str, handle_result: i32, handle_time: i64| FriendRequestHandled {
            from_user_id: from.into(),
            to_user_id: to.into(),
            handle_result,
            handle_msg: String::new(),
            handle_time,
        };
    let blocked = |ex: &str, create_time: i64| BlackAdded {
        owner_user_id: "a".into(),
        black_user_id: "c".into(),
        operator_user_id: "a".into(),
        ex: ex.into(),
        create_time,
    };
    log.append(
        &friend("b"),
        "a",
        Expect::Anything,
        None,
        &request("a", "b", 1),
    )
    .await
    .unwrap();
    log.append(
        &friend("a"),
        "b",
        Expect::Anything,
        None,
        &request("b", "a", 2),
    )
    .await
    .unwrap();
    log.append(
        &friend("b"),
        "b",
        Expect::Anything,
        None,
        &answer("a", "b", 1, 3),
    )
    .await
    .unwrap();
    let imported = FriendsImported {
        owner_user_id: "c".into(),
        friend_user_ids: vec!["a".into(), "b".into()],
        operator_user_id: "imAdmin".into(),
        create_time: 4,
    };
    log.append(&friend("c"), "imAdmin", Expect::Anything, None, &imported)
        .await
        .unwrap();
    let updated = FriendsUpdated {
        owner_user_id: "a".into(),
        friend_user_ids: vec!["b".into(), "c".into()],
        remark: Some("x".into()),
        is_pinned: Some(true),
        ex: None,
    };
    log.append(&friend("a"), "a", Expect::Anything, None, &updated)
        .await
        .unwrap();
    let deleted = FriendDeleted {
        owner_user_id: "a".into(),
        friend_user_id: "b".into(),
    };
    log.append(&friend("a"), "a", Expect::Anything, None, &deleted)
        .await
        .unwrap();
    log.append(
        &friend("a"),
        "d",
        Expect::Anything,
        None,
        &request("d", "a", 5),
    )
    .await
    .unwrap();
    log.append(
        &friend("a"),
        "a",
        Expect::Anything,
        None,
        &answer("d", "a", -1, 6),
    )
    .await
    .unwrap();
    log.append(&black("a"), "a", Expect::Anything, None, &blocked("one", 7))
        .await
        .unwrap();
    log.append(&black("a"), "a", Expect::Anything, None, &blocked("two", 8))
        .await
        .unwrap();
    let unblocked = BlackRemoved {
        owner_user_id: "a".into(),
        black_user_id: "c".into(),
    };
    log.append(&black("a"), "a", Expect::Anything, None, &unblocked)
        .await
        .unwrap();
    log.append(
        &black("a"),
        "a",
        Expect::Anything,
        None,
        &blocked("three", 9),
    )
    .await
    .unwrap();
    // a asks b again after deleting b; b accepts: a's side comes back, fresh.
    log.append(
        &friend("b"),
        "a",
        Expect::Anything,
        None,
        &request("a", "b", 10),
    )
    .await
    .unwrap();
    log.append(
        &friend("b"),
        "b",
        Expect::Anything,
        None,
        &answer("a", "b", 1, 11),
    )
    .await
    .unwrap();
    // c's new nickname is an update in the logs of a and b, who list c.
    let renamed = jetim_schemas::events::user::UserUpdated {
        user_id: "c".into(),
        nickname: Some("Cee".into()),
        ..Default::default()
    };
    log.append(
        &Subject::user("c", UserKind::Account).unwrap(),
        "c",
        Expect::Anything,
        None,
        &renamed,
    )
    .await
    .unwrap();
    let events = stream_events(&jetstream, USER_STREAM).await;
    assert_eq!(events.len(), 15);

    let (live, rows) = applied_idempotently(
        RelationsProjection::new,
        &events,
        (RELATION_TABLES, RELATION_LOGS),
    )
    .await;
    let live_pool = live.pool();

    let client = live_pool.get().await.unwrap();
    let friends: Vec<(String, String, String, bool, bool)> = client
        .query(
            "SELECT owner_user_id, friend_user_id, remark, is_pinned, deleted FROM friends_v1
             ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)))
        .collect();
    let friend_row = |owner: &str, other: &str, remark: &str, pinned: bool| {
        (
            owner.to_owned(),
            other.to_owned(),
            remark.to_owned(),
            pinned,
            false,
        )
    };
    assert_eq!(
        friends,
        [
            friend_row("a", "b", "", false),
            friend_row("a", "c", "x", true),
            friend_row("b", "a", "", false),
            friend_row("b", "c", "", false),
            friend_row("c", "a", "", false),
            friend_row("c", "b", "", false),
        ]
    );
    let handled: Vec<(String, String, i32)> = client
        .query(
            "SELECT from_user_id, to_user_id, handle_result FROM friend_requests_v1 ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    let request_row = |from: &str, to: &str, result: i32| (from.to_owned(), to.to_owned(), result);
    assert_eq!(
        handled,
        [
            request_row("a", "b", 1),
            request_row("b", "a", 1),
            request_row("d", "a", -1),
        ]
    );
    let touched: Vec<(String, i16)> = client
        .query(
            "SELECT owner_user_id, state FROM friend_changes_v1 WHERE element_id = 'c'
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        touched,
        [("a".to_owned(), 3), ("b".to_owned(), 3)],
        "c's rename is the latest change to c in both logs"
    );
    let ex: String = client
        .query_one("SELECT ex FROM blacks_v1 WHERE NOT deleted", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ex, "three");

    for batch_size in [4, 100] {
        let rebuilt = TestDatabase::migrated().await;
        project(
            RelationsProjection::new(rebuilt.pool()),
            &events,
            batch_size,
            false,
        )
        .await;
        assert_eq!(
            rows_of(&rebuilt.pool(), RELATION_TABLES).await,
            rows,
            "a rebuild in batches of {batch_size} equals the live rows"
        );
    }
}

const GROUP_TABLES: &[&str] = &[
    "groups_v1",
    "group_members_v1",
    "group_requests_v1",
    "user_conversations_v1",
];
const GROUP_LOGS: &[&str] = &[
    "joined_group_versions_v1",
    "joined_group_changes_v1",
    "group_member_versions_v1",
    "group_member_changes_v1",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_groups_projection_is_idempotent_and_a_rebuild_equals_the_live_rows() {
    use jetim_readmodel::groups::GroupsProjection;
    use jetim_schemas::events::group::{
        GroupApplicationHandled, GroupApplied, GroupCreated, GroupDismissed, GroupInfoSet,
        GroupMuted, GroupProfile, MemberInfoChange, MemberMuted, MembersInfoSet, MembersJoined,
        MembersLeft, NewMember, OwnerTransferred,
    };
    let (_nats, jetstream, log) = fresh_log().await;
    let group =
        |id: &str| Subject::conversation(&format!("sg_{id}"), ConversationKind::Group).unwrap();
    let member = |user: &str, role_level: i32| NewMember {
        user_id: user.into(),
        role_level,
        join_source: 2,
        inviter_user_id: "o".into(),
    };
    let created = |id: &str, members: Vec<NewMember>| GroupCreated {
        group_id: id.into(),
        creator_user_id: "o".into(),
        group_type: 2,
        profile: GroupProfile {
            name: format!("group {id}"),
            ..GroupProfile::default()
        },
        members,
        create_time: 1,
    };
    macro_rules! append {
        ($id:expr, $event:expr) => {
            log.append(&group($id), "o", Expect::Anything, None, &$event)
                .await
                .unwrap();
        };
    }
    append!(
        "g1",
        created(
            "g1",
            vec![member("o", 100), member("a", 20), member("b", 60)]
        )
    );
    append!(
        "g1",
        GroupInfoSet {
            group_id: "g1".into(),
            operator_user_id: "b".into(),
            name: Some("n2".into()),
            notification: Some("hi".into()),
            time: 2,
            ..GroupInfoSet::default()
        }
    );
    append!(
        "g1",
        MembersJoined {
            group_id: "g1".into(),
            operator_user_id: "o".into(),
            members: vec![member("c", 20)],
            join_time: 3,
            history_from_seq: Some(5),
        }
    );
    append!(
        "g1",
        MemberMuted {
            group_id: "g1".into(),
            operator_user_id: "o".into(),
            user_id: "a".into(),
            mute_end_time: 99,
            time: 4,
        }
    );
    append!(
        "g1",
        MembersInfoSet {
            group_id: "g1".into(),
            operator_user_id: "o".into(),
            changes: vec![
                MemberInfoChange {
                    user_id: "a".into(),
                    nickname: Some("A".into()),
                    ..MemberInfoChange::default()
                },
                MemberInfoChange {
                    user_id: "c".into(),
                    role_level: Some(60),
                    ..MemberInfoChange::default()
                },
            ],
            time: 5,
        }
    );
    for (user, result) in [("d", 1), ("e", -1)] {
        append!(
            "g1",
            GroupApplied {
                group_id: "g1".into(),
                user_id: user.into(),
                req_msg: "please".into(),
                join_source: 3,
                inviter_user_id: String::new(),
                ex: String::new(),
                req_time: 6,
            }
        );
        append!(
            "g1",
            GroupApplicationHandled {
                group_id: "g1".into(),
                user_id: user.into(),
                handle_result: result,
                handled_msg: String::new(),
                handler_user_id: "o".into(),
                handle_time: 7,
                member: (result == 1).then(|| member(user, 20)),
                history_from_seq: None,
            }
        );
    }
    append!(
        "g1",
        MembersLeft {
            group_id: "g1".into(),
            operator_user_id: "o".into(),
            user_ids: vec!["a".into()],
            kicked: true,
            max_seq: 7,
            time: 8,
        }
    );
    append!(
        "g1",
        OwnerTransferred {
            group_id: "g1".into(),
            operator_user_id: "o".into(),
            old_owner_user_id: "o".into(),
            new_owner_user_id: "b".into(),
            old_owner_role_level: 60,
            time: 9,
        }
    );
    append!(
        "g1",
        GroupMuted {
            group_id: "g1".into(),
            operator_user_id: "b".into(),
            muted: true,
            time: 10,
        }
    );
    append!("g2", created("g2", vec![member("o", 100)]));
    append!(
        "g2",
        GroupDismissed {
            group_id: "g2".into(),
            operator_user_id: "o".into(),
            max_seq: 3,
            time: 11,
        }
    );
    let events = stream_events(&jetstream, CONVERSATION_STREAM).await;
    assert_eq!(events.len(), 14);

    let (live, rows) =
        applied_idempotently(GroupsProjection::new, &events, (GROUP_TABLES, GROUP_LOGS)).await;
    let live_pool = live.pool();

    let client = live_pool.get().await.unwrap();
    let members: Vec<(String, i32, String, i64)> = client
        .query(
            "SELECT user_id, role_level, nickname, mute_end_time FROM group_members_v1
             WHERE group_id = 'g1' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect();
    let m = |user: &str, role: i32| (user.to_owned(), role, String::new(), 0);
    assert_eq!(members, [m("b", 100), m("c", 60), m("d", 20), m("o", 60)]);
    let groups: Vec<(String, String, String, i32, String)> = client
        .query(
            "SELECT group_id, group_name, owner_user_id, status, notification_user_id
             FROM groups_v1 ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)))
        .collect();
    assert_eq!(
        groups,
        [
            ("g1".into(), "n2".into(), "b".into(), 3, "b".into()),
            ("g2".into(), "group g2".into(), "o".into(), 2, String::new()),
        ]
    );
    let windows: Vec<(String, String, i64, i64)> = client
        .query(
            "SELECT owner_user_id, conversation_id, min_seq, max_seq FROM user_conversations_v1
             WHERE conversation_id LIKE 'sg%' AND (min_seq > 0 OR max_seq > 0) ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect();
    assert_eq!(
        windows,
        [
            ("a".into(), "sg_g1".into(), 0, 7),
            ("c".into(), "sg_g1".into(), 5, 0),
            ("o".into(), "sg_g2".into(), 0, 3),
        ]
    );
    let requests: Vec<(String, i32)> = client
        .query(
            "SELECT user_id, handle_result FROM group_requests_v1 ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(requests, [("d".into(), 1), ("e".into(), -1)]);

    let rebuilt = TestDatabase::migrated().await;
    project(
        GroupsProjection::new(rebuilt.pool()),
        &events,
        events.len(),
        false,
    )
    .await;
    assert_eq!(
        rows_of(&rebuilt.pool(), GROUP_TABLES).await,
        rows,
        "a rebuild from the stream in one batch gives the same rows"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_change_is_an_update_in_the_member_logs_where_it_shows_once() {
    use jetim_readmodel::groups::{GroupsProjection, ProfilesProjection};
    use jetim_schemas::events::group::{
        GroupCreated, GroupProfile, MemberInfoChange, MembersInfoSet, NewMember,
    };
    let (_nats, jetstream, log) = fresh_log().await;
    for group in ["g1", "g2"] {
        let subject =
            Subject::conversation(&format!("sg_{group}"), ConversationKind::Group).unwrap();
        let created = GroupCreated {
            group_id: group.into(),
            creator_user_id: "o".into(),
            group_type: 2,
            profile: GroupProfile::default(),
            members: ["o", "m"]
                .iter()
                .map(|user| NewMember {
                    user_id: (*user).into(),
                    role_level: if *user == "o" { 100 } else { 20 },
                    join_source: 1,
                    inviter_user_id: String::new(),
                })
                .collect(),
            create_time: 1,
        };
        log.append(&subject, "o", Expect::Anything, None, &created)
            .await
            .unwrap();
    }
    let own_nickname = MembersInfoSet {
        group_id: "g2".into(),
        operator_user_id: "m".into(),
        changes: vec![MemberInfoChange {
            user_id: "m".into(),
            nickname: Some("mine".into()),
            ..MemberInfoChange::default()
        }],
        time: 2,
    };
    log.append(
        &Subject::conversation("sg_g2", ConversationKind::Group).unwrap(),
        "m",
        Expect::Anything,
        None,
        &own_nickname,
    )
    .await
    .unwrap();
    let renamed = jetim_schemas::events::user::UserUpdated {
        user_id: "m".into(),
        nickname: Some("Em".into()),
        ..Default::default()
    };
    log.append(
        &Subject::user("m", UserKind::Account).unwrap(),
        "m",
        Expect::Anything,
        None,
        &renamed,
    )
    .await
    .unwrap();
    let database = TestDatabase::migrated().await;
    let pool = database.pool();
    project(
        GroupsProjection::new(pool.clone()),
        &stream_events(&jetstream, CONVERSATION_STREAM).await,
        10,
        false,
    )
    .await;
    let logs = rows_of(&pool, &["group_member_versions_v1"]).await;
    let profile_events = stream_events(&jetstream, USER_STREAM).await;
    project(
        ProfilesProjection::new(pool.clone()),
        &profile_events,
        10,
        true,
    )
    .await;
    let client = pool.get().await.unwrap();
    let updated: Vec<(String, String, i16)> = client
        .query(
            "SELECT c.owner_id, c.element_id, c.state FROM group_member_changes_v1 c
             JOIN group_member_versions_v1 v ON v.owner_id = c.owner_id AND v.version = c.version
             WHERE c.element_id = 'm' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert_eq!(
        updated,
        [
            ("g1".to_owned(), "m".to_owned(), 3),
            ("g2".to_owned(), "m".to_owned(), 3)
        ],
        "g1 by the profile change; g2's latest is m's own nickname, not the profile"
    );
    let versions: Vec<(String, i64)> = client
        .query(
            "SELECT owner_id, version FROM group_member_versions_v1 ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_ne!(rows_of(&pool, &["group_member_versions_v1"]).await, logs);
    assert_eq!(
        versions,
        [("g1".to_owned(), 2), ("g2".to_owned(), 1)],
        "g1 bumped once by the change (applied twice), g2 not at all"
    );
}
mod kill;
mod rebuild;
mod send_facts;
