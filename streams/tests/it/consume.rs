use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::AckPolicy;
use futures::StreamExt as _;
use jetim_common::shutdown::CancellationToken;
use jetim_streams::consume::{BatchHandler, DurableSpec, HandleError, Hurry, Replay, run_durable};
use jetim_streams::subject::{CONVERSATION_STREAM, projection_applied};
use jetim_streams::{EventLog, Expect, RecordedEvent};

use crate::support::{Note, server_with_streams};

/// Records what it applied; fails on command.
#[derive(Clone, Default)]
struct Recorder {
    applied: Arc<Mutex<Vec<u64>>>,
    /// When each batch was applied, and its size.
    batches: Arc<Mutex<Vec<(std::time::Instant, usize)>>>,
    calls: Arc<Mutex<u32>>,
    fail_first_calls: u32,
    poison: Option<u64>,
}

impl BatchHandler for Recorder {
    async fn apply(&mut self, batch: &[RecordedEvent]) -> Result<(), HandleError> {
        let call = {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            *calls
        };
        if call <= self.fail_first_calls {
            return Err(HandleError::Transient("database unavailable".into()));
        }
        if let Some(poison) = self.poison
            && batch.iter().any(|event| event.stream_sequence == poison)
        {
            return Err(HandleError::Poison {
                stream_sequence: poison,
                reason: "cannot apply".into(),
            });
        }
        // "Commit": only now are the effects visible.
        self.batches
            .lock()
            .unwrap()
            .push((std::time::Instant::now(), batch.len()));
        self.applied
            .lock()
            .unwrap()
            .extend(batch.iter().map(|event| event.stream_sequence));
        Ok(())
    }
}

/// Appends `count` new events (each with its own dedup key).
async fn fill(log: &EventLog, conversation: &str, count: u64) {
    static NEXT_KEY: AtomicU64 = AtomicU64::new(0);
    for _ in 0..count {
        let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        log.append_to_timeline(conversation, &format!("k{key}"), "a", &Note::new("x"))
            .await
            .unwrap();
    }
}

async fn run_until<F: Fn(&[u64]) -> bool + Send + 'static>(
    jetstream: &async_nats::jetstream::Context,
    spec: &DurableSpec,
    handler: &mut Recorder,
    done: F,
) {
    let stop = CancellationToken::new();
    let applied = Arc::clone(&handler.applied);
    let watcher_stop = stop.clone();
    let watcher = tokio::spawn(async move {
        for _ in 0..300 {
            if done(&applied.lock().unwrap()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        watcher_stop.cancel();
    });
    run_durable(
        jetstream,
        spec,
        handler,
        &Hurry::default(),
        stop.cancelled(),
    )
    .await
    .unwrap();
    watcher.await.unwrap();
}

fn spec(name: &str) -> DurableSpec {
    let mut spec = DurableSpec::new(CONVERSATION_STREAM, name);
    spec.batch_size = 4;
    spec.fetch_wait = Duration::from_millis(100);
    spec
}

#[tokio::test]
async fn a_durable_consumer_applies_every_event_once_in_order_and_acks_after() {
    let (_nats, jetstream) = server_with_streams().await;
    let log = EventLog::open(jetstream.clone()).await.unwrap();
    fill(&log, "si_a_b", 10).await;
    let mut handler = Recorder::default();
    let spec = spec("test_projection_v1");
    let mut announcements = jetstream
        .client()
        .subscribe(projection_applied("test_projection_v1"))
        .await
        .unwrap();
    jetstream.client().flush().await.unwrap();
    run_until(&jetstream, &spec, &mut handler, |applied| {
        applied.len() >= 10
    })
    .await;
    assert_eq!(
        *handler.applied.lock().unwrap(),
        (1..=10).collect::<Vec<_>>()
    );
    // After each batch the position is announced; batches of 4 make 4, 8, 10.
    let mut announced = Vec::new();
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(500), announcements.next()).await
    {
        announced.push(String::from_utf8(message.payload.to_vec()).unwrap());
    }
    assert_eq!(
        announced.last().map(String::as_str),
        Some("10"),
        "{announced:?}"
    );
    assert!(
        announced
            .windows(2)
            .all(|pair| pair[0].parse::<u64>().unwrap() < pair[1].parse::<u64>().unwrap())
    );

    let stream = jetstream.get_stream(CONVERSATION_STREAM).await.unwrap();
    let info = stream.consumer_info("test_projection_v1").await.unwrap();
    assert_eq!(info.num_pending, 0);
    assert_eq!(info.num_ack_pending, 0, "everything applied is acked");

    // A restarted projector resumes after the last ack and sees only new events.
    fill(&log, "si_a_b", 2).await;
    let mut resumed = Recorder::default();
    run_until(&jetstream, &spec, &mut resumed, |applied| {
        applied.len() >= 2
    })
    .await;
    assert_eq!(*resumed.applied.lock().unwrap(), vec![11, 12]);
}

#[tokio::test]
async fn a_transient_failure_redelivers_the_batch_and_nothing_is_skipped() {
    let (_nats, jetstream) = server_with_streams().await;
    let log = EventLog::open(jetstream.clone()).await.unwrap();
    fill(&log, "si_a_b", 6).await;
    let mut handler = Recorder {
        fail_first_calls: 2,
        ..Recorder::default()
    };
    run_until(&jetstream, &spec("flaky_v1"), &mut handler, |applied| {
        applied.len() >= 6
    })
    .await;
    assert_eq!(
        *handler.applied.lock().unwrap(),
        (1..=6).collect::<Vec<_>>()
    );
    assert!(*handler.calls.lock().unwrap() >= 4);
}

#[tokio::test]
async fn a_poison_event_is_terminated_and_the_rest_still_apply() {
    let (_nats, jetstream) = server_with_streams().await;
    let log = EventLog::open(jetstream.clone()).await.unwrap();
    fill(&log, "si_a_b", 6).await;
    let mut handler = Recorder {
        poison: Some(3),
        ..Recorder::default()
    };
    run_until(&jetstream, &spec("poisoned_v1"), &mut handler, |applied| {
        applied.len() >= 5
    })
    .await;
    // Each applied once, in order: the rest of the poisoned batch is applied at once, not
    // redelivered.
    assert_eq!(*handler.applied.lock().unwrap(), vec![1, 2, 4, 5, 6]);
    let stream = jetstream.get_stream(CONVERSATION_STREAM).await.unwrap();
    let info = stream.consumer_info("poisoned_v1").await.unwrap();
    assert_eq!(info.config.ack_policy, AckPolicy::All);
    assert_eq!(
        (info.num_pending, info.num_ack_pending),
        (0, 0),
        "the batches are acknowledged, the poison event terminated"
    );
    // The poison event is still in the stream for inspection.
    assert_eq!(log.read(3).await.unwrap().seq, Some(3));
}

#[tokio::test]
async fn a_consumer_made_with_explicit_acks_gets_every_event_acked() {
    let (_nats, jetstream) = server_with_streams().await;
    let log = EventLog::open(jetstream.clone()).await.unwrap();
    fill(&log, "si_a_b", 6).await;
    // As an earlier build made it: the policy of an existing consumer cannot change.
    let explicit = spec("explicit_v1");
    jetstream
        .get_stream(CONVERSATION_STREAM)
        .await
        .unwrap()
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some(explicit.name.clone()),
            ack_policy: AckPolicy::Explicit,
            max_ack_pending: 4,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut handler = Recorder::default();
    run_until(&jetstream, &explicit, &mut handler, |applied| {
        applied.len() >= 6
    })
    .await;
    assert_eq!(
        *handler.applied.lock().unwrap(),
        (1..=6).collect::<Vec<_>>()
    );
    let stream = jetstream.get_stream(CONVERSATION_STREAM).await.unwrap();
    let info = stream.consumer_info("explicit_v1").await.unwrap();
    assert_eq!(info.config.ack_policy, AckPolicy::Explicit);
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0));
}

#[tokio::test]
async fn a_replay_from_a_sequence_reads_to_the_end_and_stops() {
    let (_nats, jetstream) = server_with_streams().await;
    let log = EventLog::open(jetstream.clone()).await.unwrap();
    fill(&log, "si_a_b", 5).await;
    fill(&log, "si_c_d", 5).await;
    let mut replay = Replay::start(&jetstream, CONVERSATION_STREAM, 4, Vec::new())
        .await
        .unwrap();
    let mut sequences = Vec::new();
    while let Some(event) = replay.next().await {
        sequences.push(event.unwrap().stream_sequence);
    }
    assert_eq!(sequences, (4..=10).collect::<Vec<_>>());

    let mut past_the_end = Replay::start(&jetstream, CONVERSATION_STREAM, 11, Vec::new())
        .await
        .unwrap();
    assert!(past_the_end.next().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_keeps_going_across_a_nats_restart() {
    let (mut nats, jetstream) = server_with_streams().await;
    let log = EventLog::open(jetstream.clone()).await.unwrap();
    fill(&log, "si_a_b", 5).await;

    let mut handler = Recorder::default();
    let applied = Arc::clone(&handler.applied);
    let stop = CancellationToken::new();
    let consumer_stop = stop.clone();
    let consumer_jetstream = jetstream.clone();
    let consumer = tokio::spawn(async move {
        run_durable(
            &consumer_jetstream,
            &spec("restart_v1"),
            &mut handler,
            &Hurry::default(),
            consumer_stop.cancelled(),
        )
        .await
    });
    let wait_for = |count: usize| {
        let applied = Arc::clone(&applied);
        async move {
            for _ in 0..600 {
                if applied.lock().unwrap().len() >= count {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("only {:?} applied", applied.lock().unwrap());
        }
    };
    wait_for(5).await;
    // The restart kills the server. It writes a consumer's acks to disk a moment after it
    // takes them, and a crash inside that moment loses them: those events would come back
    // after the ack wait, to a handler that must take them again. Give it that moment, so
    // this test counts exactly what is applied after the restart.
    tokio::time::sleep(Duration::from_secs(1)).await;

    nats.restart().await;
    // The writer's connection reconnects by itself; its appends continue the timeline.
    let mut appended = 0;
    while appended < 5 {
        match log
            .append_to_timeline(
                "si_a_b",
                &format!("after-restart-{appended}"),
                "a",
                &Note::new("x"),
            )
            .await
        {
            Ok(_) => appended += 1,
            Err(error) if error.is_transient() => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("{error}"),
        }
    }
    wait_for(10).await;
    stop.cancel();
    consumer.await.unwrap().unwrap();
    assert_eq!(*applied.lock().unwrap(), (1..=10).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_consumer_that_filters_on_the_client_drops_other_subjects_and_takes_over_a_filtered_one()
{
    use jetim_streams::subject::{ConversationKind, Subject, every_conversation};
    let (_nats, jetstream) = server_with_streams().await;
    let log = EventLog::open(jetstream.clone()).await.unwrap();
    let group = Subject::conversation("sg_g", ConversationKind::Group).unwrap();
    let mut filtered = spec("client_filter_v1");
    filtered.filter_subjects = vec![every_conversation(ConversationKind::Timeline)];
    // An earlier build's consumer, filtered by the server: it applies 1..=3.
    fill(&log, "si_a_b", 3).await;
    let mut first = Recorder::default();
    run_until(&jetstream, &filtered, &mut first, |applied| {
        applied.len() >= 3
    })
    .await;
    assert_eq!(*first.applied.lock().unwrap(), [1, 2, 3]);

    // Timeline events (4, 6, 7, 9) and another kind (5, 8) follow.
    fill(&log, "si_a_b", 1).await;
    log.append(&group, "a", Expect::Anything, None, &Note::new("g"))
        .await
        .unwrap();
    fill(&log, "si_a_b", 2).await;
    log.append(&group, "a", Expect::Anything, None, &Note::new("g"))
        .await
        .unwrap();
    fill(&log, "si_a_b", 1).await;
    filtered.filter_on_server = false;
    let mut second = Recorder::default();
    run_until(&jetstream, &filtered, &mut second, |applied| {
        applied.len() >= 4
    })
    .await;
    assert_eq!(
        *second.applied.lock().unwrap(),
        [4, 6, 7, 9],
        "from where the consumer was, only its subjects"
    );
    let stream = jetstream.get_stream(CONVERSATION_STREAM).await.unwrap();
    let info = stream.consumer_info("client_filter_v1").await.unwrap();
    assert!(info.config.filter_subjects.is_empty(), "{:?}", info.config);
    assert!(info.config.filter_subject.is_empty());
    assert_eq!(
        info.num_pending, 0,
        "the dropped events are acknowledged too"
    );
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.ack_floor.stream_sequence, 9);
}

#[tokio::test]
async fn a_busy_consumer_lingers_between_batches_but_never_through_a_backlog() {
    let (_nats, jetstream) = server_with_streams().await;
    let log = EventLog::open(jetstream.clone()).await.unwrap();
    let linger = Duration::from_millis(1500);
    let mut spec = spec("test_busy_v1");
    spec.busy_linger = linger;
    let handler = Recorder::default();
    let batches = Arc::clone(&handler.batches);
    let wait_for_batches = |count: usize| {
        let batches = Arc::clone(&batches);
        async move {
            for _ in 0..200 {
                if batches.lock().unwrap().len() >= count {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("{count} batches never came: {:?}", batches.lock().unwrap());
        }
    };

    // A backlog of three full batches: each is fetched as soon as the one before is done.
    fill(&log, "si_a_b", 12).await;
    let stop = CancellationToken::new();
    let hurry = Hurry::default();
    let running = {
        let (jetstream, spec, mut handler, hurry, stop) = (
            jetstream.clone(),
            spec.clone(),
            handler.clone(),
            hurry.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            run_durable(&jetstream, &spec, &mut handler, &hurry, stop.cancelled())
                .await
                .unwrap();
        })
    };
    wait_for_batches(3).await;
    let backlog = batches.lock().unwrap().clone();
    assert_eq!(
        backlog.iter().map(|(_, size)| *size).collect::<Vec<_>>(),
        [4, 4, 4]
    );
    assert!(
        backlog[2].0 - backlog[0].0 < linger / 2,
        "a backlog waited between batches: {backlog:?}"
    );

    // The last of them took everything and was busy: the next event waits out the linger.
    fill(&log, "si_a_b", 1).await;
    wait_for_batches(4).await;
    let lingered = batches.lock().unwrap()[3];
    assert_eq!(lingered.1, 1);
    assert!(
        lingered.0 - backlog[2].0 > linger / 2,
        "a busy consumer fetched again at once: {:?}",
        batches.lock().unwrap()
    );

    // One more event, with `hurried` hurried once it is stored: how long it took to apply.
    let applied_after = async |hurried: Option<&str>| {
        let count = batches.lock().unwrap().len() + 1;
        let appended = std::time::Instant::now();
        fill(&log, "si_a_b", 1).await;
        if let Some(name) = hurried {
            hurry.hurry(name);
        }
        wait_for_batches(count).await;
        batches.lock().unwrap()[count - 1].0 - appended
    };

    // A batch of one counts too: the event right after it waits out the linger as well,
    // however hard another consumer, or one that does not run here, is hurried.
    let took = applied_after(Some("test_other_v1")).await;
    assert!(
        took > linger / 2,
        "an event right after a batch of one was fetched at once: {:?}",
        batches.lock().unwrap()
    );

    // Someone who waits for the event right after a batch hurries the consumer: it fetches
    // at once.
    let took = applied_after(Some("test_busy_v1")).await;
    assert!(
        took < linger / 2,
        "a hurried consumer lingered: {:?}",
        batches.lock().unwrap()
    );

    // An event that comes when the last batch began longer than a linger ago is applied as
    // soon as it comes.
    tokio::time::sleep(linger).await;
    let took = applied_after(None).await;
    assert!(
        took < linger / 2,
        "a quiet consumer waited: {:?}",
        batches.lock().unwrap()
    );
    assert_eq!(
        *handler.applied.lock().unwrap(),
        (1..=16).collect::<Vec<_>>()
    );
    stop.cancel();
    running.await.unwrap();
}
