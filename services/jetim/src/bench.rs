//! `jetim bench …`: load scenarios that print their figures, each next to a baseline measured
//! in the same run. Run them against a throwaway stack (`tests/bench.sh` starts one): they
//! write to the configured streams and database.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Subcommand;
use jetim_common::config::Config;
use jetim_schemas::events::msg::MsgSent;
use jetim_streams::EventLog;
use serde::Serialize;

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Fills the log with messages, then rebuilds the conversations read model (messages,
    /// conversation settings, groups) from it: events per second, against reading the same
    /// events with no projection (the ceiling).
    Rebuild {
        /// Messages to append before the rebuild.
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        /// Single chats they are spread over.
        #[arg(long, default_value_t = 1_000)]
        conversations: u64,
        /// Bytes of text per message.
        #[arg(long, default_value_t = 100)]
        payload: usize,
        /// Events applied per transaction by the rebuild.
        #[arg(long, default_value_t = 1_000)]
        batch: usize,
        /// Appends in flight while filling.
        #[arg(long, default_value_t = 64)]
        concurrency: u64,
        /// Write the report as JSON to this file too.
        #[arg(long)]
        report: Option<std::path::PathBuf>,
    },
}

/// One measured figure.
#[derive(Debug, Serialize)]
struct Figure {
    name: &'static str,
    events: u64,
    seconds: f64,
    per_second: f64,
    /// This figure as a share of its baseline's rate, where it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio_to_baseline: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<&'static str>,
}

impl Figure {
    fn new(name: &'static str, events: u64, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64();
        Self {
            name,
            events,
            seconds,
            per_second: events as f64 / seconds.max(1e-9),
            ratio_to_baseline: None,
            baseline: None,
        }
    }

    fn against(mut self, baseline: &Figure) -> Self {
        self.ratio_to_baseline = Some(self.per_second / baseline.per_second.max(1e-9));
        self.baseline = Some(baseline.name);
        self
    }
}

#[derive(Debug, Serialize)]
struct Report {
    scenario: &'static str,
    parameters: serde_json::Value,
    figures: Vec<Figure>,
    cores: usize,
}

pub(crate) async fn run(config: &Config, command: BenchCommand) -> anyhow::Result<()> {
    let (_client, jetstream) = jetim_common::nats::connect(&config.nats).await?;
    match command {
        BenchCommand::Rebuild {
            events,
            conversations,
            payload,
            batch,
            concurrency,
            report,
        } => {
            let parameters = serde_json::json!({
                "events": events,
                "conversations": conversations,
                "payload_bytes": payload,
                "batch": batch,
                "concurrency": concurrency,
            });
            let figures = rebuild(
                config,
                &jetstream,
                events,
                conversations.max(1),
                payload,
                batch,
                concurrency.max(1),
            )
            .await?;
            let report_value = Report {
                scenario: "rebuild",
                parameters,
                figures,
                cores: std::thread::available_parallelism().map_or(1, usize::from),
            };
            print!("{}", render(&report_value));
            if let Some(path) = report {
                std::fs::write(&path, serde_json::to_vec_pretty(&report_value)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    Ok(())
}

async fn rebuild(
    config: &Config,
    jetstream: &async_nats::jetstream::Context,
    events: u64,
    conversations: u64,
    payload: usize,
    batch: usize,
    concurrency: u64,
) -> anyhow::Result<Vec<Figure>> {
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
    let rebuild = Figure::new(
        "rebuild (conversations read model)",
        applied,
        rebuilt.elapsed,
    )
    .against(&replay);
    Ok(vec![fill, replay, rebuild])
}

/// A text message in single chat `pair` (users `b<pair>a` and `b<pair>b`).
fn message(pair: u64, index: u64, text: &str) -> MsgSent {
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

fn render(report: &Report) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} on {} cores: {}",
        report.scenario, report.cores, report.parameters
    );
    let _ = writeln!(
        out,
        "{:<38} {:>10} {:>9} {:>12} {:>10}",
        "FIGURE", "EVENTS", "SECONDS", "EVENTS/S", "RATIO"
    );
    for figure in &report.figures {
        let ratio = figure
            .ratio_to_baseline
            .map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}"));
        let _ = writeln!(
            out,
            "{:<38} {:>10} {:>9.2} {:>12.0} {:>10}",
            figure.name, figure.events, figure.seconds, figure.per_second, ratio
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_prints_each_figure_with_its_ratio_to_its_baseline() {
        let baseline = Figure::new("replay", 1000, Duration::from_millis(10));
        let figure = Figure::new("rebuild", 1000, Duration::from_millis(40)).against(&baseline);
        assert_eq!(figure.ratio_to_baseline, Some(0.25));
        let report = Report {
            scenario: "rebuild",
            parameters: serde_json::json!({"events": 1000}),
            figures: vec![baseline, figure],
            cores: 2,
        };
        let table = render(&report);
        assert!(
            table.starts_with("rebuild on 2 cores: {\"events\":1000}\n"),
            "{table}"
        );
        assert!(table.contains("rebuild   "), "{table}");
        assert!(
            table.lines().last().unwrap().ends_with("25000       0.25"),
            "{table}"
        );
    }
}
