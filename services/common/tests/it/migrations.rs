use jetim_common::migrate::{EMBEDDED, MigrateError, Migration, run};
use jetim_common::testing::TestDatabase;

async fn connect(database: &TestDatabase) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&database.config.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

async fn applied_names(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query("SELECT name FROM jetim_migrations ORDER BY name", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

const SLOW_MIGRATIONS: &[Migration] = &[
    Migration {
        name: "0001_first.sql",
        // Slow enough that two migrators overlap.
        sql: "SELECT pg_sleep(0.3); CREATE TABLE first_table (id int); INSERT INTO first_table VALUES (1);",
    },
    Migration {
        name: "0002_second.sql",
        sql: "INSERT INTO first_table VALUES (2);",
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_migrators_apply_each_migration_once() {
    let database = TestDatabase::empty().await;
    let mut first = connect(&database).await;
    let mut second = connect(&database).await;
    let (first_report, second_report) = tokio::join!(
        run(&mut first, SLOW_MIGRATIONS),
        run(&mut second, SLOW_MIGRATIONS)
    );
    let (first_report, second_report) = (first_report.unwrap(), second_report.unwrap());
    let mut applied = first_report.applied.clone();
    applied.extend(second_report.applied.clone());
    applied.sort();
    assert_eq!(applied, ["0001_first.sql", "0002_second.sql"]);
    assert_eq!(
        first_report.already_applied.len() + second_report.already_applied.len(),
        2
    );
    assert_eq!(
        applied_names(&first).await,
        ["0001_first.sql", "0002_second.sql"]
    );
    let rows: i64 = first
        .query_one("SELECT count(*) FROM first_table", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 2, "each migration ran exactly once");
}

#[tokio::test]
async fn the_embedded_migrations_apply_and_a_second_run_applies_nothing() {
    let database = TestDatabase::empty().await;
    let mut client = connect(&database).await;
    let report = run(&mut client, EMBEDDED).await.unwrap();
    assert_eq!(report.applied.len(), EMBEDDED.len());
    let again = run(&mut client, EMBEDDED).await.unwrap();
    assert!(again.applied.is_empty());
    assert_eq!(again.already_applied.len(), EMBEDDED.len());
    // The projection registry allows one active version per projection.
    client
        .batch_execute(
            "INSERT INTO projections (name, version, active) VALUES ('test_projection', 1, true)",
        )
        .await
        .unwrap();
    let second_active = client
        .batch_execute(
            "INSERT INTO projections (name, version, active) VALUES ('test_projection', 2, true)",
        )
        .await;
    assert!(second_active.is_err());
}

#[tokio::test]
async fn a_migration_edited_after_it_was_applied_stops_the_migrator() {
    let database = TestDatabase::empty().await;
    let mut client = connect(&database).await;
    run(&mut client, &SLOW_MIGRATIONS[..1]).await.unwrap();
    let edited = [Migration {
        name: "0001_first.sql",
        sql: "CREATE TABLE first_table (id bigint);",
    }];
    let error = run(&mut client, &edited).await.unwrap_err();
    assert!(matches!(error, MigrateError::Changed { .. }));
    assert!(
        error
            .to_string()
            .starts_with("migration 0001_first.sql was changed after it was applied"),
        "{error}"
    );
}

#[tokio::test]
async fn a_failing_migration_leaves_nothing_behind_and_releases_the_lock() {
    let database = TestDatabase::empty().await;
    let mut client = connect(&database).await;
    let broken = [Migration {
        name: "0001_broken.sql",
        sql: "CREATE TABLE half_done (id int); SELECT no_such_function();",
    }];
    let error = run(&mut client, &broken).await.unwrap_err();
    assert!(
        error.to_string().starts_with(
            "migration 0001_broken.sql failed: ERROR: function no_such_function() does not exist"
        ),
        "{error}"
    );
    let half_done: Option<String> = client
        .query_one("SELECT to_regclass('half_done')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        half_done, None,
        "the failed file's first statement was rolled back"
    );
    assert!(applied_names(&client).await.is_empty());
    // Another migrator is not blocked by a lock left behind.
    let mut other = connect(&database).await;
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        run(&mut other, &SLOW_MIGRATIONS[..1]),
    )
    .await
    .expect("the advisory lock was released")
    .unwrap();
    assert_eq!(report.applied, ["0001_first.sql"]);
}

#[tokio::test]
async fn messages_stored_before_0018_read_the_same_after_it() {
    let database = TestDatabase::empty().await;
    let mut client = connect(&database).await;
    let before: Vec<Migration> = EMBEDDED
        .iter()
        .filter(|migration| migration.name < "0018")
        .copied()
        .collect();
    run(&mut client, &before).await.unwrap();
    client
        .batch_execute(
            r#"INSERT INTO messages_v1 (conversation_id, seq, client_msg_id, server_msg_id,
                                       send_id, send_time, content_type, body, stream_sequence,
                                       revoked)
               VALUES ('si_a_b', 1, 'c1', 's1', 'a', 5, 101, '{"seq": 1, "content": "hi"}', 3,
                       '{"revoker_id": "a"}'),
                      ('si_a_b', 2, 'c2', 's2', 'b', 6, 101, '{"seq": 2}', 4, NULL);
               INSERT INTO client_msg_ids_v1 (conversation_id, client_msg_id, seq)
               VALUES ('si_a_b', 'c1', 1), ('si_a_b', 'c2', 2);"#,
        )
        .await
        .unwrap();
    let report = run(&mut client, EMBEDDED).await.unwrap();
    assert!(report.applied.iter().any(|name| name.starts_with("0018")));
    let rows: Vec<(i64, String, Option<String>)> = client
        .query(
            "SELECT seq, body, revoked FROM messages_v1 ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert_eq!(
        rows,
        [
            (
                1,
                r#"{"seq": 1, "content": "hi"}"#.to_owned(),
                Some(r#"{"revoker_id": "a"}"#.to_owned())
            ),
            (2, r#"{"seq": 2}"#.to_owned(), None),
        ]
    );
    let found: i64 = client
        .query_one(
            "SELECT seq FROM messages_v1 WHERE conversation_id = 'si_a_b' AND client_msg_id = 'c2'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(found, 2);
    let gone = client
        .query_one("SELECT to_regclass('client_msg_ids_v1') IS NULL", &[])
        .await
        .unwrap()
        .get::<_, bool>(0);
    assert!(gone, "the clientMsgID table is folded into messages_v1");
}

#[tokio::test]
async fn a_client_msg_id_is_found_through_its_bytewise_index() {
    let database = TestDatabase::empty().await;
    let mut client = connect(&database).await;
    run(&mut client, EMBEDDED).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO messages_v1 (conversation_id, seq, client_msg_id, server_msg_id, send_id,
                                      send_time, content_type, body, stream_sequence)
             VALUES ('si_a_b', 1, 'Ä1', 's1', 'a', 1, 101, '{}', 1),
                    ('si_a_b', 2, 'ä1', 's2', 'a', 2, 101, '{}', 2),
                    ('si_a_b', 3, 'Ä1', 's3', 'a', 3, 101, '{}', 3);
             SET enable_seqscan = off;",
        )
        .await
        .unwrap();
    let lookup = "SELECT seq FROM messages_v1 WHERE conversation_id = $1 AND client_msg_id = $2
                  ORDER BY seq LIMIT 1";
    // Equality is exact, whatever a collation would say of the two.
    for (client_msg_id, seq) in [("Ä1", 1_i64), ("ä1", 2)] {
        let found: i64 = client
            .query_one(lookup, &[&"si_a_b", &client_msg_id])
            .await
            .unwrap()
            .get(0);
        assert_eq!(found, seq);
    }
    // And the lookup is the index's, not a scan of the table.
    let plan: Vec<String> = client
        .query(
            "EXPLAIN SELECT seq FROM messages_v1
             WHERE conversation_id = 'si_a_b' AND client_msg_id = 'Ä1' ORDER BY seq LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(
        plan.iter()
            .any(|line| line.contains("messages_v1_by_client_msg_id")),
        "{plan:#?}"
    );
    let definition: String = client
        .query_one(
            "SELECT pg_get_indexdef('messages_v1_by_client_msg_id'::regclass)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(definition.contains("text_pattern_ops"), "{definition}");
}
