use std::sync::Arc;

use jetim_streams::append::MAX_ATOMIC_BATCH;
use jetim_streams::subject::UserKind;
use jetim_streams::{AppendError, EventLog, Expect, Subject};

use crate::support::{Note, assert_gapless, server_with_streams, timeline};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_tasks_appending_to_shared_and_private_conversations_get_gapless_seqs() {
    let (_nats, jetstream) = server_with_streams().await;
    let log = Arc::new(EventLog::open(jetstream.clone()).await.unwrap());
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                for index in 0..1_000 {
                    // Even appends go to the shared conversation, odd ones to one of four
                    // private conversations shared by pairs of tasks.
                    let conversation = if index % 2 == 0 {
                        "sg_shared".to_owned()
                    } else {
                        format!("si_pair{}_x.y", task % 4)
                    };
                    let appended = log
                        .append_to_timeline(
                            &conversation,
                            &format!("t{task}-{index}"),
                            "tester",
                            &Note::new(format!("{task}/{index}")),
                        )
                        .await
                        .unwrap();
                    assert!(!appended.duplicate);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_gapless(&jetstream, "sg_shared", 4_000).await;
    for pair in 0..4 {
        assert_gapless(&jetstream, &format!("si_pair{pair}_x.y"), 1_000).await;
    }
    assert_eq!(log.stats().stored, 8_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_racing_on_one_conversation_are_resolved_by_the_conflict_retry() {
    let (nats, jetstream) = server_with_streams().await;
    // Two writers on separate connections stand for two jetim processes: their in-process
    // locks do not see each other, so only the expected-last-subject-sequence check keeps
    // the seqs apart.
    let first = Arc::new(EventLog::open(jetstream.clone()).await.unwrap());
    let second = Arc::new(EventLog::open(nats.jetstream().await).await.unwrap());
    let mut tasks = Vec::new();
    for (name, log) in [("a", &first), ("b", &second)] {
        for task in 0..4 {
            let log = Arc::clone(log);
            tasks.push(tokio::spawn(async move {
                for index in 0..250 {
                    log.append_to_timeline(
                        "sg_contested",
                        &format!("{name}{task}-{index}"),
                        "tester",
                        &Note::new("x"),
                    )
                    .await
                    .unwrap();
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_gapless(&jetstream, "sg_contested", 2_000).await;
    let conflicts = first.stats().conflicts + second.stats().conflicts;
    assert!(
        conflicts > 0,
        "the writers never raced; the test proves nothing"
    );
    assert_eq!(first.stats().stored + second.stats().stored, 2_000);
}

#[tokio::test]
async fn a_resend_with_the_same_dedup_key_returns_the_original_seq_and_adds_nothing() {
    let (_nats, jetstream) = server_with_streams().await;
    let log = EventLog::open(jetstream.clone()).await.unwrap();
    let original = log
        .append_to_timeline("si_a_b", "client-msg-1", "a", &Note::new("hello"))
        .await
        .unwrap();
    let next = log
        .append_to_timeline("si_a_b", "client-msg-2", "a", &Note::new("again"))
        .await
        .unwrap();
    assert_eq!((original.seq, next.seq), (1, 2));

    let resent = log
        .append_to_timeline("si_a_b", "client-msg-1", "a", &Note::new("hello"))
        .await
        .unwrap();
    assert!(resent.duplicate);
    assert_eq!(resent.seq, 1);
    assert_eq!(resent.stream_sequence, original.stream_sequence);

    // A writer that never saw the conversation (a restarted process) gets the same answer.
    let fresh = EventLog::open(jetstream.clone()).await.unwrap();
    let resent_elsewhere = fresh
        .append_to_timeline("si_a_b", "client-msg-1", "a", &Note::new("hello"))
        .await
        .unwrap();
    assert!(resent_elsewhere.duplicate);
    assert_eq!(resent_elsewhere.seq, 1);

    // The same key in another conversation is another command.
    let elsewhere = fresh
        .append_to_timeline("si_a_c", "client-msg-1", "a", &Note::new("hello"))
        .await
        .unwrap();
    assert!(!elsewhere.duplicate);
    assert_eq!(elsewhere.seq, 1);

    assert_eq!(timeline(&jetstream, "si_a_b").await.len(), 2);
    let stored = log.read(original.stream_sequence).await.unwrap();
    assert_eq!(
        stored.decode::<Note>().unwrap(),
        Note {
            text: "hello".into(),
            seq: 1
        }
    );
}

#[tokio::test]
async fn a_new_writer_continues_the_seq_from_the_stream() {
    let (_nats, jetstream) = server_with_streams().await;
    let first = EventLog::open(jetstream.clone()).await.unwrap();
    for index in 0..3 {
        first
            .append_to_timeline("sg_g", &format!("k{index}"), "a", &Note::new("x"))
            .await
            .unwrap();
    }
    let restarted = EventLog::open(jetstream.clone()).await.unwrap();
    let appended = restarted
        .append_to_timeline("sg_g", "k3", "a", &Note::new("x"))
        .await
        .unwrap();
    assert_eq!(appended.seq, 4);
    // The first writer's cached cursor is stale now; it recovers through the retry.
    let appended = first
        .append_to_timeline("sg_g", "k4", "a", &Note::new("x"))
        .await
        .unwrap();
    assert_eq!(appended.seq, 5);
    assert_eq!(first.stats().conflicts, 1);
    assert_gapless(&jetstream, "sg_g", 5).await;
}

#[tokio::test]
async fn a_small_cursor_cache_forgets_idle_conversations_without_losing_seqs() {
    let (_nats, jetstream) = server_with_streams().await;
    let log = EventLog::open(jetstream.clone())
        .await
        .unwrap()
        .with_cursor_capacity(2);
    for round in 0..3 {
        for conversation in ["si_1", "si_2", "si_3", "si_4", "si_5"] {
            log.append_to_timeline(conversation, &format!("r{round}"), "a", &Note::new("x"))
                .await
                .unwrap();
        }
    }
    for conversation in ["si_1", "si_2", "si_3", "si_4", "si_5"] {
        assert_gapless(&jetstream, conversation, 3).await;
    }
    assert_eq!(log.stats().conflicts, 0);
}

#[tokio::test]
async fn events_carry_kind_version_actor_and_seq_headers() {
    let (_nats, jetstream) = server_with_streams().await;
    let log = EventLog::open(jetstream.clone()).await.unwrap();
    let appended = log
        .append_to_timeline("si_a.b_c", "k", "user.one", &Note::new("x"))
        .await
        .unwrap();
    let stored = log.read(appended.stream_sequence).await.unwrap();
    assert_eq!(stored.subject, "im.conv.si_a=2Eb_c.msg");
    assert_eq!(stored.kind, "test.note");
    assert_eq!(stored.version, 1);
    assert_eq!(stored.actor, "user.one");
    assert_eq!(stored.seq, Some(1));
    assert_eq!(
        jetim_streams::headers::text(&stored.headers, "Nats-Msg-Id"),
        Some("si_a=2Eb_c:k")
    );
}

#[tokio::test]
async fn opening_the_log_before_the_streams_exist_is_a_clear_error() {
    let nats = jetim_common::testing::TestNats::start().await;
    let Err(error) = EventLog::open(nats.jetstream().await).await else {
        panic!("the log opened without its stream");
    };
    assert!(matches!(error, jetim_streams::AppendError::NoStream { .. }));
    assert_eq!(
        error.to_string(),
        "no stream holds subject im.conv.> (stream IM_CONV); were the streams applied?"
    );
}

#[tokio::test]
async fn ids_that_cannot_form_a_subject_are_refused_before_anything_is_written() {
    let (_nats, jetstream) = server_with_streams().await;
    let log = EventLog::open(jetstream.clone()).await.unwrap();
    let error = log
        .append_to_timeline("", "k", "a", &Note::new("x"))
        .await
        .unwrap_err();
    assert!(matches!(error, jetim_streams::AppendError::InvalidId(_)));
    assert!(!error.is_transient());
}

#[tokio::test]
async fn the_trace_context_of_the_appending_span_travels_in_headers() {
    use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
    use tracing::Instrument as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let (_nats, jetstream) = server_with_streams().await;
    let log = EventLog::open(jetstream.clone()).await.unwrap();
    let span = tracing::info_span!("send_msg");
    let trace_id = span.context().span().span_context().trace_id().to_string();
    let appended = log
        .append_to_timeline("si_a_b", "k", "a", &Note::new("x"))
        .instrument(span)
        .await
        .unwrap();
    let stored = log.read(appended.stream_sequence).await.unwrap();
    let traceparent =
        jetim_streams::headers::text(&stored.headers, "traceparent").expect("a traceparent header");
    assert!(
        traceparent.contains(&trace_id),
        "{traceparent} should carry {trace_id}"
    );
}

fn accounts(ids: &[&str]) -> Vec<(Subject, Expect, Note)> {
    ids.iter()
        .map(|id| {
            (
                Subject::user(id, UserKind::Account).unwrap(),
                Expect::Empty,
                Note::new(*id),
            )
        })
        .collect()
}

async fn user_stream_last(jetstream: &async_nats::jetstream::Context) -> u64 {
    let mut stream = jetstream.get_stream("IM_USER").await.unwrap();
    stream.info().await.unwrap().state.last_sequence
}

#[tokio::test]
async fn an_atomic_append_stores_every_event_or_none() {
    let (_nats, jetstream) = server_with_streams().await;
    let log = EventLog::open(jetstream.clone()).await.unwrap();

    let appended = log
        .append_atomically("admin", &accounts(&["a1", "a2", "a3"]))
        .await
        .unwrap();
    assert_eq!(appended.stream_sequence, 3);
    for (sequence, id) in [(1, "a1"), (2, "a2"), (3, "a3")] {
        let subject = Subject::user(id, UserKind::Account).unwrap();
        let stored = log.last_event(&subject).await.unwrap().unwrap();
        assert_eq!(stored.stream_sequence, sequence);
        assert_eq!(stored.actor, "admin");
        assert_eq!(stored.kind, "test.note");
    }

    // One taken subject in the middle refuses the whole batch.
    let error = log
        .append_atomically("admin", &accounts(&["b1", "a2", "b3"]))
        .await
        .unwrap_err();
    assert!(
        matches!(error, AppendError::Conflict { ref subject } if subject == "im.user.b1.account and 2 more"),
        "{error}"
    );
    assert_eq!(
        user_stream_last(&jetstream).await,
        3,
        "nothing of it stored"
    );
    let b1 = Subject::user("b1", UserKind::Account).unwrap();
    assert!(log.last_event(&b1).await.unwrap().is_none());

    // An expectation of a later event holds too.
    let a1 = Subject::user("a1", UserKind::Account).unwrap();
    let mixed = vec![
        (b1.clone(), Expect::Empty, Note::new("b1")),
        (a1.clone(), Expect::LastAt(1), Note::new("a1 again")),
    ];
    assert_eq!(
        log.append_atomically("admin", &mixed)
            .await
            .unwrap()
            .stream_sequence,
        5
    );
    let stale = vec![(a1, Expect::LastAt(1), Note::new("stale"))];
    assert!(matches!(
        log.append_atomically("admin", &stale).await,
        Err(AppendError::Conflict { .. })
    ));

    assert!(matches!(
        log.append_atomically::<Note>("admin", &[]).await,
        Err(AppendError::EmptyBatch)
    ));
    let ids: Vec<String> = (0..=MAX_ATOMIC_BATCH).map(|n| format!("u{n}")).collect();
    let too_many = accounts(&ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(matches!(
        log.append_atomically("admin", &too_many).await,
        Err(AppendError::BatchTooLarge { count: 1001, .. })
    ));
    assert_eq!(user_stream_last(&jetstream).await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_racing_atomic_appends_sharing_a_subject_exactly_one_is_stored_whole() {
    let (_nats, jetstream) = server_with_streams().await;
    let log = Arc::new(EventLog::open(jetstream.clone()).await.unwrap());
    for round in 0..20 {
        // Eight batches of 50 accounts; each shares one account with every other.
        let shared = format!("shared{round}");
        let tasks: Vec<_> = (0..8)
            .map(|task| {
                let log = Arc::clone(&log);
                let mut ids: Vec<String> =
                    (0..49).map(|n| format!("r{round}t{task}n{n}")).collect();
                ids.insert(task * 6, shared.clone());
                tokio::spawn(async move {
                    let batch = accounts(&ids.iter().map(String::as_str).collect::<Vec<_>>());
                    log.append_atomically("admin", &batch).await
                })
            })
            .collect();
        let mut stored = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => stored += 1,
                Err(AppendError::Conflict { .. }) => {}
                Err(error) => panic!("{error}"),
            }
        }
        assert_eq!(stored, 1, "round {round}");
        assert_eq!(user_stream_last(&jetstream).await, 50 * (round as u64 + 1));
    }
}

#[tokio::test]
async fn the_leader_tells_the_last_stream_sequence_of_a_subject() {
    let (_nats, jetstream) = server_with_streams().await;
    let log = EventLog::open(jetstream).await.unwrap();
    let subject = Subject::timeline("si_leader_test").unwrap();
    assert_eq!(log.last_sequence_at_leader(&subject).await.unwrap(), None);
    let mut last = 0;
    for index in 0..3 {
        last = log
            .append_to_timeline(
                "si_leader_test",
                &format!("c{index}"),
                "tester",
                &Note::new(format!("{index}")),
            )
            .await
            .unwrap()
            .stream_sequence;
        // Another subject's event after it does not count.
        log.append_to_timeline(
            "si_other",
            &format!("o{index}"),
            "tester",
            &Note::new(format!("{index}")),
        )
        .await
        .unwrap();
    }
    assert_eq!(
        log.last_sequence_at_leader(&subject).await.unwrap(),
        Some(last)
    );
}
