//! `jetim bench rebuild`: fill the log with messages, then rebuild the conversations read
//! model from it, against reading the same events with no projection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jetim_common::config::Config;
use jetim_schemas::events::msg::MsgSent;
use jetim_streams::EventLog;
use serde::Serialize;

use super::{Figure, FillWaits, PhaseTime};

/// What a rebuild run measured, and what it left behind.
pub(crate) struct Measured {
    /// The figures, the rebuild's own last.
    pub(crate) figures: Vec<Figure>,
    /// Where its time went.
    pub(crate) phases: Vec<PhaseTime>,
    /// What its fill waited for.
    pub(crate) fill_waits: FillWaits,
    /// What the rebuilt read model holds of the run's conversations.
    pub(crate) rebuilt: Rebuilt,
}

/// What the rebuilt `messages_v1` holds of the conversations a run filled, read after the
/// switch: a rebuild's rate counts only if it kept every message.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Rebuilt {
    /// The messages appended by this run.
    pub(crate) appended: u64,
    /// Whether the stream held events before the run (whose messages may share the run's
    /// conversations).
    pub(crate) log_held_events: bool,
    /// Messages found in the run's conversations.
    pub(crate) messages: u64,
    /// The run's conversations that hold messages, and how many it filled.
    pub(crate) conversations: u64,
    pub(crate) conversations_filled: u64,
    /// Conversations whose seqs do not run from 1 without a gap, or whose max seq in
    /// `conversation_seqs_v1` is not their last message's.
    pub(crate) broken_conversations: u64,
}

impl Rebuilt {
    /// Whether every appended message is there, in gapless conversations. Before a log
    /// that already held events, the run's conversations may hold more than it appended.
    pub(crate) fn whole(&self) -> bool {
        let messages = if self.log_held_events {
            self.messages >= self.appended
        } else {
            self.messages == self.appended
        };
        messages
            && self.conversations == self.conversations_filled
            && self.broken_conversations == 0
    }
}

/// Reads what `messages_v1` and `conversation_seqs_v1` hold of `conversation_ids`: the
/// messages, the conversations that hold any, and those of them that are broken.
async fn read_rebuilt(
    config: &Config,
    conversation_ids: &[String],
) -> anyhow::Result<(u64, u64, u64)> {
    let pool = jetim_common::db::connect(&config.postgres).await?;
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT coalesce(sum(m.n), 0)::bigint, count(*),
                    count(*) FILTER (WHERE m.n <> m.last OR m.first <> 1
                                     OR s.max_seq IS DISTINCT FROM m.last)
             FROM (SELECT conversation_id, count(*) AS n, min(seq) AS first, max(seq) AS last
                     FROM messages_v1 WHERE conversation_id = ANY($1)
                    GROUP BY conversation_id) m
             LEFT JOIN conversation_seqs_v1 s USING (conversation_id)",
            &[&conversation_ids],
        )
        .await?;
    let count = |index: usize| u64::try_from(row.get::<_, i64>(index)).unwrap_or(0);
    Ok((count(0), count(1), count(2)))
}

/// Fills the log, replays it, rebuilds the conversations read model from it, and checks
/// what the rebuild left.
pub(crate) async fn rebuild(
    config: &Config,
    jetstream: &async_nats::jetstream::Context,
    events: u64,
    conversations: u64,
    payload: usize,
    batch: usize,
    concurrency: u64,
) -> anyhow::Result<Measured> {
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
    let filled = conversations.min(events);
    let conversation_ids: Vec<String> = (0..filled)
        .map(|pair| {
            let (from, to) = pair_users(pair);
            conversation_of(&from, &to)
        })
        .collect();
    let (messages, found, broken_conversations) = read_rebuilt(config, &conversation_ids).await?;
    let rebuilt = Rebuilt {
        appended: events,
        log_held_events: already > 0,
        messages,
        conversations: found,
        conversations_filled: filled,
        broken_conversations,
    };
    Ok(Measured {
        figures: vec![fill, replay, copying, rebuild],
        phases,
        fill_waits,
        rebuilt,
    })
}

/// The users of single chat `pair`: `b<pair>a` and `b<pair>b`.
fn pair_users(pair: u64) -> (String, String) {
    (format!("b{pair}a"), format!("b{pair}b"))
}

/// The single chat of `from` and `to`.
fn conversation_of(from: &str, to: &str) -> String {
    use jetim_messaging::conversation::{SessionType, chat_conversation_id};
    chat_conversation_id(SessionType::Single, from, to, "")
}

/// A text message in single chat `pair` ([`pair_users`]).
pub(crate) fn message(pair: u64, index: u64, text: &str) -> MsgSent {
    let (from, to) = pair_users(pair);
    let now = jetim_common::clock::now_millis();
    MsgSent {
        conversation_id: conversation_of(&from, &to),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebuild_is_whole_only_with_every_message_in_gapless_conversations() {
        let rebuilt = Rebuilt {
            appended: 600,
            log_held_events: false,
            messages: 600,
            conversations: 7,
            conversations_filled: 7,
            broken_conversations: 0,
        };
        assert!(rebuilt.whole());
        let missing = Rebuilt {
            messages: 599,
            ..rebuilt
        };
        assert!(!missing.whole());
        let extra = Rebuilt {
            messages: 601,
            ..missing
        };
        assert!(!extra.whole());
        // A log that held events before the run may have put more in its conversations.
        assert!(
            Rebuilt {
                log_held_events: true,
                ..extra
            }
            .whole()
        );
        let gap = Rebuilt {
            messages: 600,
            broken_conversations: 1,
            ..extra
        };
        assert!(!gap.whole());
        let empty_conversation = Rebuilt {
            conversations: 6,
            broken_conversations: 0,
            ..gap
        };
        assert!(!empty_conversation.whole());
    }
}
