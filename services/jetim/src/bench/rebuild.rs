//! `jetim bench rebuild`: fill the log with messages, then rebuild the conversations read
//! model from it, against reading the same events with no projection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jetim_common::config::Config;
use jetim_schemas::events::msg::MsgSent;
use jetim_streams::EventLog;

use super::{Figure, FillWaits, PhaseTime};

/// The figures of a rebuild run (the last is the rebuild's own), where its time went, and
/// what its fill waited for.
pub(crate) async fn rebuild(
    config: &Config,
    jetstream: &async_nats::jetstream::Context,
    events: u64,
    conversations: u64,
    payload: usize,
    batch: usize,
    concurrency: u64,
) -> anyhow::Result<(Vec<Figure>, Vec<PhaseTime>, FillWaits)> {
    use jetim_readmodel::rebuild::{self, Options};
    let log = Arc::new(EventLog::open(jetstream.clone()).await?);
    let mut stream = jetstream
        .get_stream(jetim_streams::subject::CONVERSATION_STREAM)
        .await?;
    let already = stream.info().await?.state.messages;
    if already > 0 {
        eprintln!("note: IM_CONV already holds {already} events; the rebuild replays them too");
    }

    // Fill: jetim's append path (expected subject sequence, dedup ID), many in flight.
    let text = "x".repeat(payload);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let fill = {
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (log, next, text) = (Arc::clone(&log), Arc::clone(&next), text.clone());
                tokio::spawn(async move {
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if index >= events {
                            return Ok::<(), anyhow::Error>(());
                        }
                        let pair = index % conversations;
                        let event = message(pair, index, &text);
                        log.append_to_timeline(
                            &event.conversation_id,
                            &event.client_msg_id,
                            event.send_id.as_str(),
                            &event,
                        )
                        .await?;
                    }
                })
            })
            .collect();
        let ticker = tokio::spawn({
            let next = Arc::clone(&next);
            async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let done = next.load(Ordering::Relaxed).min(events);
                    let seconds = started.elapsed().as_secs_f64();
                    eprintln!(
                        "filling: {done} of {events} appended, {:.0}/s",
                        done as f64 / seconds
                    );
                }
            }
        });
        let filled = futures::future::try_join_all(tasks).await;
        ticker.abort();
        for appended in filled? {
            appended?;
        }
        Figure::new("append (jetim's append path)", events, started.elapsed())
    };

    // Baseline: the same events read with an ordered consumer and applied nowhere.
    let started = Instant::now();
    let mut replay = jetim_streams::consume::Replay::start(
        jetstream,
        jetim_streams::subject::CONVERSATION_STREAM,
        1,
        Vec::new(),
    )
    .await?;
    let mut read = 0_u64;
    while let Some(event) = replay.next().await {
        event?;
        read += 1;
    }
    let replay = Figure::new("replay (read only, the ceiling)", read, started.elapsed());

    let connection = jetim_common::db::connection_config(&config.postgres)?;
    let model = rebuild::read_model_of("conversations").expect("a read model");
    let mut last_print = Instant::now();
    let rebuilt = rebuild::rebuild(
        jetstream,
        &connection,
        model,
        Options {
            batch_size: batch,
            keep_old: false,
        },
        |progress| {
            if last_print.elapsed() >= Duration::from_secs(1) {
                last_print = Instant::now();
                eprintln!(
                    "rebuilding {}: stream sequence {} of {}, {} events",
                    progress.projection, progress.stream_sequence, progress.target, progress.events
                );
            }
        },
    )
    .await?;
    let applied = rebuilt
        .projections
        .iter()
        .map(|(_, events, _)| events)
        .sum();
    let timings = &rebuilt.timings;
    let copying = Figure::new(
        "rebuild: filling the copies alone",
        timings.filled,
        timings.fill,
    )
    .against(&replay);
    let rebuild = Figure::new(
        "rebuild (conversations read model)",
        applied,
        rebuilt.elapsed,
    )
    .against(&replay);
    let before_switch = timings.setup + timings.fill + timings.indexes + timings.catch_up;
    let phases = vec![
        PhaseTime::new("setting up (lock, empty copies)", timings.setup),
        PhaseTime::new("filling the copies", timings.fill),
        PhaseTime::new("building the deferred indexes", timings.indexes),
        PhaseTime::new("catching up", timings.catch_up),
        PhaseTime::new("switching (tables locked)", rebuilt.switch_time),
        PhaseTime::new(
            "the rest (dropping the copies' schema)",
            rebuilt
                .elapsed
                .saturating_sub(before_switch + rebuilt.switch_time),
        ),
    ];
    let fill_waits = FillWaits {
        seconds: timings.fill.as_secs_f64(),
        log_seconds: timings.fill_waits.log.as_secs_f64(),
        lanes_seconds: timings.fill_waits.lanes.as_secs_f64(),
    };
    Ok((vec![fill, replay, copying, rebuild], phases, fill_waits))
}

/// A text message in single chat `pair` (users `b<pair>a` and `b<pair>b`).
pub(crate) fn message(pair: u64, index: u64, text: &str) -> MsgSent {
    let (from, to) = (format!("b{pair}a"), format!("b{pair}b"));
    let now = jetim_common::clock::now_millis();
    MsgSent {
        conversation_id: jetim_messaging::conversation::chat_conversation_id(
            jetim_messaging::conversation::SessionType::Single,
            &from,
            &to,
            "",
        ),
        seq: 0,
        server_msg_id: format!("{index:032x}"),
        client_msg_id: format!("bench{index}"),
        send_id: from,
        recv_id: to,
        group_id: String::new(),
        sender_platform_id: 1,
        sender_nickname: String::new(),
        sender_face_url: String::new(),
        session_type: 1,
        msg_from: 100,
        content_type: 101,
        content: serde_json::json!({ "content": text }).to_string(),
        send_time: now,
        create_time: now,
        options: Default::default(),
        offline_push: None,
        at_user_ids: Vec::new(),
        attached_info: String::new(),
        ex: String::new(),
    }
}
