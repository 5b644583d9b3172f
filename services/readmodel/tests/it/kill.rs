//! A projector process killed between its commit and its ack: JetStream hands the batch out
//! again, and applying it a second time changes nothing (invariant 5 of the architecture).
//!
//! The projector runs in a child process (this test binary again, running one ignored test)
//! whose handler aborts the process right after its second batch commits, before
//! `run_durable` can ack it.

use std::process::Command;
use std::time::Duration;

use jetim_common::testing::TestDatabase;
use jetim_readmodel::messages::{self, MessagesProjection};
use jetim_schemas::openim::sdkws::MsgData;
use jetim_streams::RecordedEvent;
use jetim_streams::consume::{BatchHandler, DurableSpec, HandleError, Hurry, run_durable};
use jetim_streams::subject::CONVERSATION_STREAM;
use tokio_util::sync::CancellationToken;

use crate::{TABLES, fresh_log, project, rows_of, stream_events};

/// Tells the child test where the servers are: `<nats url> <postgres url>`.
const CHILD_ENV: &str = "JETIM_TEST_KILLED_PROJECTOR";
const CHILD_TEST: &str = "kill::killed_projector_child";

fn spec() -> DurableSpec {
    let mut spec = messages::consumer_spec();
    spec.batch_size = 5;
    spec.ack_wait = Duration::from_secs(1);
    spec
}

/// Applies with the messages projection, and dies once `commits_left` batches committed.
struct DiesAfterCommit {
    projection: MessagesProjection,
    commits_left: usize,
}

impl BatchHandler for DiesAfterCommit {
    async fn apply(&mut self, batch: &[RecordedEvent]) -> Result<(), HandleError> {
        self.projection.apply(batch).await?;
        self.commits_left -= 1;
        if self.commits_left == 0 {
            // Committed, not acked: the process ends as under `kill -9`, nothing unwinds.
            std::process::abort();
        }
        Ok(())
    }
}

/// Applies with the messages projection and notes which events it was given.
struct Noting {
    projection: MessagesProjection,
    seen: Vec<u64>,
}

impl BatchHandler for Noting {
    async fn apply(&mut self, batch: &[RecordedEvent]) -> Result<(), HandleError> {
        self.projection.apply(batch).await?;
        self.seen
            .extend(batch.iter().map(|event| event.stream_sequence));
        Ok(())
    }
}

#[tokio::test]
#[ignore = "the child process of the test below; does nothing on its own"]
async fn killed_projector_child() {
    let Ok(servers) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (nats_url, postgres_url) = servers.split_once(' ').unwrap();
    let jetstream = async_nats::jetstream::new(async_nats::connect(nats_url).await.unwrap());
    let pool = jetim_common::db::pool(&jetim_common::config::PostgresConfig {
        url: postgres_url.to_owned(),
        ..jetim_common::config::PostgresConfig::default()
    })
    .unwrap();
    let mut handler = DiesAfterCommit {
        projection: MessagesProjection::new(pool),
        commits_left: 2,
    };
    run_durable(
        &jetstream,
        &spec(),
        &mut handler,
        &Hurry::default(),
        std::future::pending(),
    )
    .await
    .unwrap();
    unreachable!("the handler aborts the process");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_between_commit_and_ack_redoes_the_batch_with_no_double_effect() {
    let (nats, jetstream, log) = fresh_log().await;
    let live = TestDatabase::migrated().await;
    let pool = live.pool();
    for user in ["k1", "k2", "k3"] {
        crate::rebuild::register(&log, user).await;
    }
    for index in 0..30 {
        let (from, to) = [("k1", "k2"), ("k2", "k1"), ("k1", "k3")][index % 3];
        let message = MsgData {
            send_id: from.into(),
            recv_id: to.into(),
            client_msg_id: format!("k{index}"),
            session_type: 1,
            content_type: 101,
            content: format!(r#"{{"content":"m{index}"}}"#).into_bytes(),
            ..MsgData::default()
        };
        jetim_messaging::service::send(
            &log,
            &pool,
            &jetim_readmodel::send_facts::FactsReader::new(pool.clone()),
            &message,
            jetim_messaging::service::Caller::user(from),
            "op",
        )
        .await
        .unwrap()
        .unwrap();
    }

    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CHILD_TEST, "--ignored", "--nocapture"])
        .env(CHILD_ENV, format!("{} {}", nats.url, live.config.url))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(status.signal(), Some(6), "the child aborted: {status:?}");
    }
    assert!(!status.success());

    // Two batches committed; only the first was acked.
    let committed = jetim_readmodel::projection::position(&pool, messages::NAME, messages::VERSION)
        .await
        .unwrap();
    assert_eq!(committed, 10);
    let stream = jetstream
        .get_stream_no_info(CONVERSATION_STREAM)
        .await
        .unwrap();
    let info = stream.consumer_info(&spec().name).await.unwrap();
    assert_eq!(info.ack_floor.stream_sequence, 5, "{info:?}");
    assert_eq!(info.num_ack_pending, 5, "{info:?}");

    // A new projector: the un-acked batch comes again after the ack wait, then the rest.
    let shutdown = CancellationToken::new();
    let resumed = tokio::spawn({
        let (jetstream, pool, shutdown) = (jetstream.clone(), pool.clone(), shutdown.clone());
        async move {
            let mut handler = Noting {
                projection: MessagesProjection::new(pool),
                seen: Vec::new(),
            };
            run_durable(
                &jetstream,
                &spec(),
                &mut handler,
                &Hurry::default(),
                shutdown.cancelled(),
            )
            .await
            .unwrap();
            handler.seen
        }
    });
    for _ in 0..500 {
        let info = stream.consumer_info(&spec().name).await.unwrap();
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    let seen = resumed.await.unwrap();
    assert_eq!(seen, (6..=30).collect::<Vec<u64>>(), "6..=10 came again");

    // The rows and the version logs are those of applying each event once.
    let once = TestDatabase::migrated().await;
    let events = stream_events(&jetstream, CONVERSATION_STREAM).await;
    project(MessagesProjection::new(once.pool()), &events, 5, false).await;
    assert_eq!(
        rows_of(&pool, TABLES).await,
        rows_of(&once.pool(), TABLES).await
    );
    let versions = |pool: deadpool_postgres::Pool| async move {
        let client = pool.get().await.unwrap();
        let rows = client
            .query(
                "SELECT owner_user_id, version FROM conversation_versions_v1 ORDER BY 1",
                &[],
            )
            .await
            .unwrap();
        rows.iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1)))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        versions(pool.clone()).await,
        versions(once.pool()).await,
        "the batch applied twice bumped no version"
    );
}
