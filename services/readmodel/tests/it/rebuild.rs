//! `jetim ops rebuild`: a read model rebuilt from the log while the live projector and writers
//! keep going switches to tables equal to a replay into an empty database, shaped as the
//! migrations made them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;
use jetim_common::testing::TestDatabase;
use jetim_readmodel::rebuild::{self, Options, Phase, RebuildError, read_model_of};
use jetim_schemas::events::conversation::ConversationSet;
use jetim_schemas::events::group::{GroupCreated, GroupProfile, MembersJoined, NewMember};
use jetim_schemas::events::user::{UserRegistered, UserUpdated};
use jetim_schemas::openim::sdkws::MsgData;
use jetim_streams::consume::Replay;
use jetim_streams::subject::{ConversationKind, Subject, UserKind};
use jetim_streams::{EventLog, Expect};
use tokio_util::sync::CancellationToken;

use crate::{fresh_log, rows_of};

fn connection(database: &TestDatabase) -> tokio_postgres::Config {
    jetim_common::db::connection_config(&database.config).unwrap()
}

pub(crate) async fn register(log: &EventLog, user: &str) {
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

/// One step of a writer touching every projection of the conversations read model.
async fn write(log: &EventLog, pool: &Pool, step: usize) {
    let (from, to) = [("w0", "w1"), ("w1", "w2"), ("w2", "w0")][step % 3];
    let message = MsgData {
        send_id: from.into(),
        recv_id: to.into(),
        client_msg_id: format!("c{step}"),
        session_type: 1,
        content_type: 101,
        content: format!(r#"{{"content":"m{step}"}}"#).into_bytes(),
        ..MsgData::default()
    };
    jetim_messaging::service::send(
        log,
        pool,
        &jetim_readmodel::send_facts::FactsReader::new(pool.clone()),
        &message,
        jetim_messaging::service::Caller::user(from),
        "op",
    )
    .await
    .unwrap_or_else(|error| panic!("{error:?}"))
    .unwrap();
    let group = Subject::conversation("sg_g1", ConversationKind::Group).unwrap();
    match step % 5 {
        0 if step == 0 => {
            let created = GroupCreated {
                group_id: "g1".into(),
                creator_user_id: "w0".into(),
                group_type: 2,
                profile: GroupProfile {
                    name: "g1".into(),
                    ..GroupProfile::default()
                },
                members: vec![NewMember {
                    user_id: "w0".into(),
                    role_level: 100,
                    join_source: 2,
                    inviter_user_id: "w0".into(),
                }],
                create_time: 1,
            };
            log.append(&group, "w0", Expect::Anything, None, &created)
                .await
                .unwrap();
        }
        1 => {
            let joined = MembersJoined {
                group_id: "g1".into(),
                members: vec![NewMember {
                    user_id: format!("j{step}"),
                    role_level: 20,
                    join_source: 2,
                    inviter_user_id: "w0".into(),
                }],
                operator_user_id: "w0".into(),
                history_from_seq: None,
                join_time: 1,
            };
            log.append(&group, "w0", Expect::Anything, None, &joined)
                .await
                .unwrap();
        }
        2 => {
            let set = ConversationSet {
                owner_user_id: from.into(),
                conversation_id: format!("si_{}", {
                    let mut pair = [from, to];
                    pair.sort_unstable();
                    pair.join("_")
                }),
                conversation_type: 1,
                user_id: to.into(),
                is_pinned: Some(step % 2 == 0),
                ..ConversationSet::default()
            };
            let subject = Subject::user(from, UserKind::Conversation).unwrap();
            log.append(&subject, from, Expect::Anything, None, &set)
                .await
                .unwrap();
        }
        3 => {
            let updated = UserUpdated {
                user_id: "w0".into(),
                nickname: Some(format!("w0 at {step}")),
                ..UserUpdated::default()
            };
            let subject = Subject::user("w0", UserKind::Account).unwrap();
            log.append(&subject, "w0", Expect::Anything, None, &updated)
                .await
                .unwrap();
        }
        _ => {}
    }
}

/// Replays the log through each projection of `model` into `pool`'s database.
async fn replay_into(
    jetstream: &async_nats::jetstream::Context,
    pool: &Pool,
    model: &rebuild::ReadModel,
) {
    use jetim_streams::consume::BatchHandler as _;
    for (name, _, spec) in jetim_readmodel::projections() {
        if !model.projections.contains(&name) {
            continue;
        }
        let mut events = Vec::new();
        let mut replay = Replay::start(jetstream, &spec.stream, 1, spec.filter_subjects.clone())
            .await
            .unwrap();
        while let Some(event) = replay.next().await {
            events.push(event.unwrap());
        }
        let mut projection = jetim_readmodel::AnyProjection::new(name, pool.clone()).unwrap();
        for batch in events.chunks(100) {
            projection.apply(batch).await.unwrap();
        }
    }
}

/// Every row of `table` as JSON text, sorted. A version log's ID is drawn at random when it
/// starts, and its numbers count the batches that changed it, which differ with batch sizes
/// and how projections interleave; what it lists, and in which state, may not differ.
async fn comparable_rows(pool: &Pool, table: &str) -> Vec<String> {
    let client = pool.get().await.unwrap();
    let rows = client
        .query(
            &format!(
                "SELECT (to_jsonb(t) - 'version_id' - 'version')::text FROM {table} t ORDER BY 1"
            ),
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|row| row.get(0)).collect()
}

/// The keys, indexes and checks of `tables`, by name.
async fn shape_of(pool: &Pool, tables: &[&str]) -> Vec<String> {
    let client = pool.get().await.unwrap();
    let tables: Vec<String> = tables.iter().map(|table| (*table).to_owned()).collect();
    let rows = client
        .query(
            "SELECT tablename || ' ' || indexdef FROM pg_indexes
             WHERE schemaname = 'public' AND tablename = ANY($1)
             UNION ALL
             SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
             FROM pg_constraint
             WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text = ANY($1)
             UNION ALL
             SELECT table_name || ' ' || column_name || ' ' || data_type || ' ' || is_nullable
                    || ' ' || coalesce(column_default, '')
             FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name = ANY($1)
             ORDER BY 1",
            &[&tables],
        )
        .await
        .unwrap();
    rows.iter().map(|row| row.get(0)).collect()
}

async fn live_caught_up(jetstream: &async_nats::jetstream::Context, model: &rebuild::ReadModel) {
    for _ in 0..500 {
        let mut idle = true;
        for (name, _, spec) in jetim_readmodel::projections() {
            if !model.projections.contains(&name) {
                continue;
            }
            let stream = jetstream.get_stream(&spec.stream).await.unwrap();
            let info = stream.consumer_info(&spec.name).await.unwrap();
            idle &= info.num_pending == 0 && info.num_ack_pending == 0;
        }
        if idle {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the live projections did not catch up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_under_load_switches_to_tables_equal_to_a_fresh_replay() {
    let (_nats, jetstream, log) = fresh_log().await;
    let log = Arc::new(log);
    for user in ["w0", "w1", "w2"] {
        register(&log, user).await;
    }
    let live = TestDatabase::migrated().await;
    let pool = live.pool();
    let shutdown = CancellationToken::new();
    let projector = tokio::spawn(jetim_readmodel::run_projections(
        jetstream.clone(),
        pool.clone(),
        log.hurry().clone(),
        shutdown.clone(),
    ));
    for step in 0..150 {
        write(&log, &pool, step).await;
    }

    // Writers keep going through the rebuild and after the switch.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (log, pool, stop) = (Arc::clone(&log), pool.clone(), Arc::clone(&stop));
        async move {
            let mut step = 150;
            while !stop.load(Ordering::Relaxed) {
                write(&log, &pool, step).await;
                step += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            step
        }
    });
    let model = read_model_of("messages").unwrap();
    assert_eq!(model.name, "conversations");
    let mut reports = Vec::new();
    let rebuilt = rebuild::rebuild(
        &jetstream,
        &connection(&live),
        model,
        Options {
            batch_size: 40,
            keep_old: false,
        },
        |progress| reports.push(*progress),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let steps = writer.await.unwrap();
    assert!(steps > 150, "the writer kept writing");
    live_caught_up(&jetstream, model).await;
    shutdown.cancel();
    projector.await.unwrap().unwrap();

    // Progress was reported per batch, and rose.
    assert!(reports.iter().any(|report| report.phase == Phase::Filling));
    let messages: Vec<u64> = reports
        .iter()
        .filter(|report| report.projection == "messages")
        .map(|report| report.stream_sequence)
        .collect();
    assert!(messages.len() > 3 && messages.is_sorted(), "{messages:?}");
    let (_, applied, _) = rebuilt.projections[0];
    assert!(applied >= 150, "{rebuilt:?}");
    // Its parts were timed: the fill did most of the events, the messages' deferred
    // indexes were built, and the parts fit in the whole.
    let timings = rebuilt.timings;
    let all: u64 = rebuilt
        .projections
        .iter()
        .map(|(_, events, _)| events)
        .sum();
    assert!(timings.filled > 0 && timings.filled <= all, "{rebuilt:?}");
    assert!(timings.indexes > Duration::ZERO, "{rebuilt:?}");
    assert!(
        timings.setup + timings.fill + timings.indexes + timings.catch_up + rebuilt.switch_time
            <= rebuilt.elapsed,
        "{rebuilt:?}"
    );
    // What the fill waited for is part of the fill, and it waited for the log at least while
    // the reader made its consumer.
    let waits = timings.fill_waits;
    assert!(waits.log > Duration::ZERO, "{rebuilt:?}");
    assert!(waits.log + waits.lanes <= timings.fill, "{rebuilt:?}");

    // The live tables now equal a replay of the whole log into an empty database.
    let fresh = TestDatabase::migrated().await;
    replay_into(&jetstream, &fresh.pool(), model).await;
    for table in model.tables {
        let (live_rows, fresh_rows) = (
            comparable_rows(&pool, table).await,
            comparable_rows(&fresh.pool(), table).await,
        );
        let differ: Vec<_> = live_rows
            .iter()
            .filter(|row| !fresh_rows.contains(row))
            .chain(fresh_rows.iter().filter(|row| !live_rows.contains(row)))
            .take(6)
            .collect();
        assert!(
            differ.is_empty(),
            "{table}: rebuilt and then live-fed rows equal a fresh replay; differing: {differ:#?}"
        );
    }
    // Shaped as the migrations made them: the same columns, keys and index names.
    assert_eq!(
        shape_of(&pool, model.tables).await,
        shape_of(&fresh.pool(), model.tables).await
    );
    let client = pool.get().await.unwrap();
    let registry = client
        .query(
            "SELECT name, rebuilds, rebuilt_at IS NOT NULL FROM projections
             WHERE rebuilds > 0 ORDER BY name",
            &[],
        )
        .await
        .unwrap();
    let registry: Vec<(String, i32, bool)> = registry
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert_eq!(
        registry,
        [
            ("conversation_settings".to_owned(), 1, true),
            ("group_profiles".to_owned(), 1, true),
            ("groups".to_owned(), 1, true),
            ("messages".to_owned(), 1, true),
        ]
    );
    let schemas: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'jetim_%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        schemas, 0,
        "no copy and, without --keep-old, no old tables left"
    );
}

#[tokio::test]
async fn a_rebuild_can_keep_the_old_tables_and_refuses_unknown_names_and_a_second_run() {
    let (_nats, jetstream, log) = fresh_log().await;
    for user in ["k0", "k1", "k2"] {
        register(&log, user).await;
    }
    let live = TestDatabase::migrated().await;
    let pool = live.pool();
    replay_into(&jetstream, &pool, read_model_of("users").unwrap()).await;
    let before = rows_of(&pool, &["users_v1"]).await;
    assert_eq!(before[0].len(), 3);

    assert!(read_model_of("nothing").is_none());
    assert!(
        RebuildError::Unknown("nothing".into())
            .to_string()
            .contains("users, user_settings, relations, conversations")
    );

    // Someone else holds the rebuild lock of `users`.
    let client = pool.get().await.unwrap();
    client
        .execute(
            "SELECT pg_advisory_lock(hashtext('jetim rebuild users'))",
            &[],
        )
        .await
        .unwrap();
    let users = read_model_of("users").unwrap();
    let busy = rebuild::rebuild(
        &jetstream,
        &connection(&live),
        users,
        Options::default(),
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(busy, RebuildError::Busy("users")), "{busy}");
    client
        .execute(
            "SELECT pg_advisory_unlock(hashtext('jetim rebuild users'))",
            &[],
        )
        .await
        .unwrap();

    let rebuilt = rebuild::rebuild(
        &jetstream,
        &connection(&live),
        users,
        Options {
            batch_size: 2,
            keep_old: true,
        },
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(rebuilt.projections, [("users", 3, 3)]);
    assert_eq!(rows_of(&pool, &["users_v1"]).await, before);
    assert_eq!(
        rows_of(&pool, &["jetim_retired_users.users_v1"]).await,
        before,
        "the old table is kept aside"
    );
    let position: i64 = client
        .query_one(
            "SELECT stream_sequence FROM projections WHERE name = 'users'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(position, 3);
}
