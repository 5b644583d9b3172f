//! `jetim ops …`: what an operator asks of the event log, answered from the JetStream API
//! (the same figures `nats stream ls` and `nats consumer ls` show).

use anyhow::Context as _;
use clap::Subcommand;
use futures::TryStreamExt as _;
use jetim_common::config::Config;
use serde::Serialize;

#[derive(Debug, Subcommand)]
pub(crate) enum OpsCommand {
    /// Each stream's messages, bytes, subjects and sequences, and each consumer's backlog.
    Streams {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The events of one conversation or one user, from the log, as JSON lines.
    Audit {
        /// A conversation ID (e.g. si_alice_bob).
        #[arg(long, conflicts_with = "user", required_unless_present = "user")]
        conversation: Option<String>,
        /// A user ID.
        #[arg(long)]
        user: Option<String>,
        /// Only events stored at or after this time (RFC 3339 or Unix milliseconds).
        #[arg(long, value_parser = parse_time)]
        since: Option<time::OffsetDateTime>,
        /// Only events stored before this time (RFC 3339 or Unix milliseconds).
        #[arg(long, value_parser = parse_time)]
        until: Option<time::OffsetDateTime>,
        /// Only events of this kind (`msg.sent`), or of kinds starting with it (`msg.`).
        #[arg(long)]
        kind: Option<String>,
    },
    /// Rebuilds a read model from the log into fresh tables while the live ones serve, then
    /// switches to them in one transaction. Name a projection (messages, groups, …) or a read
    /// model (users, user_settings, relations, conversations); projections that share tables
    /// are rebuilt together.
    Rebuild {
        /// The projection or read model.
        projection: String,
        /// Events per batch (one transaction; the messages projection splits each batch by
        /// conversation over two connections).
        #[arg(long, default_value_t = jetim_readmodel::rebuild::Options::DEFAULT.batch_size)]
        batch: usize,
        /// Keep the replaced tables in schema `jetim_retired_<read model>`.
        #[arg(long)]
        keep_old: bool,
    },
    /// Each projection's position against its stream: applied, pending, behind.
    Lag {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn parse_time(text: &str) -> Result<time::OffsetDateTime, String> {
    if let Ok(millis) = text.parse::<i64>() {
        return time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
            .map_err(|error| format!("{text}: {error}"));
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|error| format!("{text:?} is neither RFC 3339 nor Unix milliseconds: {error}"))
}

pub(crate) async fn run(config: &Config, command: OpsCommand) -> anyhow::Result<()> {
    let (_client, jetstream) = jetim_common::nats::connect(&config.nats).await?;
    match command {
        OpsCommand::Streams { json } => {
            let report = streams_report(&jetstream).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", render_table(&report));
            }
        }
        OpsCommand::Audit {
            conversation,
            user,
            since,
            until,
            kind,
        } => {
            let (stream, filter) = match (conversation, user) {
                (Some(conversation), _) => (
                    jetim_streams::subject::CONVERSATION_STREAM,
                    jetim_streams::subject::conversation_filter(&conversation)?,
                ),
                (None, Some(user)) => (
                    jetim_streams::subject::USER_STREAM,
                    jetim_streams::subject::user_filter(&user)?,
                ),
                (None, None) => anyhow::bail!("name a --conversation or a --user"),
            };
            audit(&jetstream, stream, filter, since, until, kind.as_deref()).await?;
        }
        OpsCommand::Rebuild {
            projection,
            batch,
            keep_old,
        } => {
            use jetim_readmodel::rebuild::{self, Options, RebuildError};
            let model = rebuild::read_model_of(&projection)
                .ok_or_else(|| RebuildError::Unknown(projection.clone()))?;
            let connection = jetim_common::db::connection_config(&config.postgres)?;
            jetim_common::db::connect(&config.postgres).await?;
            eprintln!(
                "rebuilding {} ({}) from the log",
                model.name,
                model.projections.join(", ")
            );
            let mut meter = ProgressMeter::default();
            let rebuilt = rebuild::rebuild(
                &jetstream,
                &connection,
                model,
                Options {
                    batch_size: batch.max(1),
                    keep_old,
                },
                |progress| meter.report(progress),
            )
            .await?;
            let events: u64 = rebuilt
                .projections
                .iter()
                .map(|(_, events, _)| events)
                .sum();
            let seconds = rebuilt.elapsed.as_secs_f64();
            println!(
                "rebuilt {}: {events} events in {seconds:.1} s ({:.0} events/s); reads switched to the new tables (locked for {} ms)",
                model.name,
                events as f64 / seconds.max(0.001),
                rebuilt.switch_time.as_millis()
            );
            let timings = &rebuilt.timings;
            println!(
                "  setting up {} ms; filling {:.1} s ({:.0} events/s); deferred indexes {} ms; catching up {} ms",
                timings.setup.as_millis(),
                timings.fill.as_secs_f64(),
                timings.filled as f64 / timings.fill.as_secs_f64().max(0.001),
                timings.indexes.as_millis(),
                timings.catch_up.as_millis()
            );
            println!(
                "  the fill waited {:.1} s for the log (NATS) and {:.1} s for its lanes (Postgres); the larger paced it",
                timings.fill_waits.log.as_secs_f64(),
                timings.fill_waits.lanes.as_secs_f64()
            );
            for (name, events, position) in &rebuilt.projections {
                println!("  {name}: {events} events, at stream sequence {position}");
            }
            if rebuilt.poison > 0 {
                println!(
                    "  {} events could not be applied and were skipped, as the live projector skips them",
                    rebuilt.poison
                );
            }
            if keep_old {
                println!(
                    "  the old tables are in schema jetim_retired_{}",
                    model.name
                );
            }
        }
        OpsCommand::Lag { json } => {
            let pool = jetim_common::db::connect(&config.postgres).await?;
            let report = lag_report(&jetstream, &pool).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", render_lag(&report));
            }
        }
    }
    Ok(())
}

async fn audit(
    jetstream: &async_nats::jetstream::Context,
    stream: &str,
    filter: String,
    since: Option<time::OffsetDateTime>,
    until: Option<time::OffsetDateTime>,
    kind: Option<&str>,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    let millis = |time: time::OffsetDateTime| {
        i64::try_from(time.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    };
    let since_ms = since.map(millis);
    let until_ms = until.map(millis);
    // Read from the start of the subject's history and skip what is older than --since: the
    // ordered consumer cannot be trusted to keep a start time across its own re-creation.
    let mut replay =
        jetim_streams::consume::Replay::start(jetstream, stream, 1, vec![filter]).await?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    while let Some(event) = replay.next().await {
        let event = event?;
        if until_ms.is_some_and(|until| event.stored_at_ms >= until) {
            break;
        }
        if since_ms.is_some_and(|since| event.stored_at_ms < since) {
            continue;
        }
        if kind.is_some_and(|kind| !event.kind.starts_with(kind)) {
            continue;
        }
        writeln!(out, "{}", event.to_audit_json())?;
    }
    out.flush()?;
    Ok(())
}

/// Prints a rebuild's progress at most once a second: position against the stream, rate and
/// time left. The projections of a read model replay side by side, so a line is about the one
/// that applied last, and the first line about each is printed at once.
#[derive(Default)]
struct ProgressMeter {
    last_print: Option<std::time::Duration>,
    seen: Vec<&'static str>,
}

impl ProgressMeter {
    fn report(&mut self, progress: &jetim_readmodel::rebuild::Progress) {
        use jetim_readmodel::rebuild::Phase;
        let due = self
            .last_print
            .is_none_or(|last| progress.elapsed.saturating_sub(last).as_secs() >= 1);
        let switching = progress.phase == Phase::Switching;
        let new = !self.seen.contains(&progress.projection);
        if !(due || switching || new) {
            return;
        }
        if new {
            self.seen.push(progress.projection);
        }
        self.last_print = Some(progress.elapsed);
        eprintln!(
            "{}",
            render_progress(progress, progress.elapsed.as_secs_f64())
        );
    }
}

/// One progress line; `seconds` is how long the rebuild has been reading the projection's
/// stream.
fn render_progress(progress: &jetim_readmodel::rebuild::Progress, seconds: f64) -> String {
    use jetim_readmodel::rebuild::Phase;
    if progress.phase == Phase::Switching {
        return format!(
            "{}: switching; caught up to the live position, stream sequence {}",
            progress.projection, progress.stream_sequence
        );
    }
    let seconds = seconds.max(0.001);
    let done = progress.stream_sequence.min(progress.target) as f64;
    let share = if progress.target == 0 {
        1.0
    } else {
        done / progress.target as f64
    };
    let left = if share > 0.0 {
        seconds * (1.0 - share) / share
    } else {
        f64::INFINITY
    };
    format!(
        "{}: stream sequence {} of {} ({:.1}%), {} events, {:.0} events/s, about {} left",
        progress.projection,
        progress.stream_sequence,
        progress.target,
        share * 100.0,
        progress.events,
        progress.events as f64 / seconds,
        if left.is_finite() {
            format!("{left:.0} s")
        } else {
            "? s".to_owned()
        }
    )
}

#[derive(Debug, Serialize)]
struct LagRow {
    projection: String,
    version: i32,
    active: bool,
    consumer: String,
    stream: String,
    applied_sequence: u64,
    stream_last_sequence: u64,
    pending: u64,
    ack_pending: usize,
}

async fn lag_report(
    jetstream: &async_nats::jetstream::Context,
    pool: &deadpool_postgres::Pool,
) -> anyhow::Result<Vec<LagRow>> {
    let client = pool.get().await.context("no database connection")?;
    let registry = client
        .query(
            "SELECT name, version, active, stream_sequence FROM projections ORDER BY name, version",
            &[],
        )
        .await
        .context("reading the projection registry")?;
    let known = jetim_readmodel::projections();
    let mut rows = Vec::new();
    for row in registry {
        let name: String = row.get(0);
        let version: i32 = row.get(1);
        let Some((_, _, spec)) = known.iter().find(|(known_name, known_version, _)| {
            *known_name == name && *known_version == version
        }) else {
            continue;
        };
        let mut stream = jetstream
            .get_stream(&spec.stream)
            .await
            .with_context(|| format!("opening stream {}", spec.stream))?;
        let last = stream.info().await?.state.last_sequence;
        let (pending, ack_pending) = match stream.consumer_info(&spec.name).await {
            Ok(info) => (info.num_pending, info.num_ack_pending),
            // Not created yet: the projector has not started; everything is pending.
            Err(_) => (last, 0),
        };
        rows.push(LagRow {
            projection: name,
            version,
            active: row.get(2),
            consumer: spec.name.clone(),
            stream: spec.stream.clone(),
            applied_sequence: u64::try_from(row.get::<_, i64>(3)).unwrap_or(0),
            stream_last_sequence: last,
            pending,
            ack_pending,
        });
    }
    Ok(rows)
}

fn render_lag(rows: &[LagRow]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:>7} {:>6} {:<10} {:>14} {:>14} {:>10} {:>12}",
        "PROJECTION",
        "VERSION",
        "ACTIVE",
        "STREAM",
        "APPLIED SEQ",
        "STREAM LAST",
        "PENDING",
        "ACK PENDING"
    );
    for row in rows {
        let _ = writeln!(
            out,
            "{:<16} {:>7} {:>6} {:<10} {:>14} {:>14} {:>10} {:>12}",
            row.projection,
            row.version,
            row.active,
            row.stream,
            row.applied_sequence,
            row.stream_last_sequence,
            row.pending,
            row.ack_pending
        );
    }
    out
}

#[derive(Debug, Serialize)]
struct StreamRow {
    name: String,
    messages: u64,
    bytes: u64,
    subjects: u64,
    first_sequence: u64,
    last_sequence: u64,
    consumers: Vec<ConsumerRow>,
}

#[derive(Debug, Serialize)]
struct ConsumerRow {
    name: String,
    pending: u64,
    ack_pending: usize,
    redelivered: usize,
    last_delivered_sequence: u64,
}

async fn streams_report(
    jetstream: &async_nats::jetstream::Context,
) -> anyhow::Result<Vec<StreamRow>> {
    let infos: Vec<async_nats::jetstream::stream::Info> = jetstream
        .streams()
        .try_collect()
        .await
        .context("listing streams")?;
    let mut rows = Vec::with_capacity(infos.len());
    for info in infos {
        let stream = jetstream
            .get_stream_no_info(&info.config.name)
            .await
            .with_context(|| format!("opening stream {}", info.config.name))?;
        let consumers: Vec<async_nats::jetstream::consumer::Info> = stream
            .consumers()
            .try_collect()
            .await
            .with_context(|| format!("listing consumers of {}", info.config.name))?;
        let mut consumer_rows: Vec<ConsumerRow> = consumers
            .into_iter()
            .map(|consumer| ConsumerRow {
                name: consumer.name,
                pending: consumer.num_pending,
                ack_pending: consumer.num_ack_pending,
                redelivered: consumer.num_redelivered,
                last_delivered_sequence: consumer.delivered.stream_sequence,
            })
            .collect();
        consumer_rows.sort_by(|left, right| left.name.cmp(&right.name));
        rows.push(StreamRow {
            name: info.config.name.clone(),
            messages: info.state.messages,
            bytes: info.state.bytes,
            subjects: info.state.subjects_count,
            first_sequence: info.state.first_sequence,
            last_sequence: info.state.last_sequence,
            consumers: consumer_rows,
        });
    }
    rows.sort_by(|left, right| left.name.cmp(&right.name));
    Ok(rows)
}

fn render_table(rows: &[StreamRow]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("no streams; run `jetim migrate` to create jetim's\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<16} {:>12} {:>14} {:>10} {:>12} {:>12} {:>9}",
        "STREAM", "MESSAGES", "BYTES", "SUBJECTS", "FIRST SEQ", "LAST SEQ", "CONSUMERS"
    );
    for row in rows {
        let _ = writeln!(
            out,
            "{:<16} {:>12} {:>14} {:>10} {:>12} {:>12} {:>9}",
            row.name,
            row.messages,
            row.bytes,
            row.subjects,
            row.first_sequence,
            row.last_sequence,
            row.consumers.len()
        );
    }
    let consumers: Vec<(&str, &ConsumerRow)> = rows
        .iter()
        .flat_map(|row| {
            row.consumers
                .iter()
                .map(move |consumer| (row.name.as_str(), consumer))
        })
        .collect();
    if !consumers.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<16} {:<28} {:>12} {:>12} {:>12} {:>14}",
            "STREAM", "CONSUMER", "PENDING", "ACK PENDING", "REDELIVERED", "LAST DELIVERED"
        );
        for (stream, consumer) in consumers {
            let _ = writeln!(
                out,
                "{:<16} {:<28} {:>12} {:>12} {:>12} {:>14}",
                stream,
                consumer.name,
                consumer.pending,
                consumer.ack_pending,
                consumer.redelivered,
                consumer.last_delivered_sequence
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_give_position_rate_and_time_left() {
        use jetim_readmodel::rebuild::{Phase, Progress};
        let mut progress = Progress {
            projection: "messages",
            phase: Phase::Filling,
            stream_sequence: 250_000,
            target: 1_000_000,
            events: 200_000,
            elapsed: std::time::Duration::from_secs(12),
        };
        assert_eq!(
            render_progress(&progress, 10.0),
            "messages: stream sequence 250000 of 1000000 (25.0%), 200000 events, 20000 events/s, about 30 s left"
        );
        progress.phase = Phase::Switching;
        assert_eq!(
            render_progress(&progress, 10.0),
            "messages: switching; caught up to the live position, stream sequence 250000"
        );
        progress.phase = Phase::Filling;
        progress.stream_sequence = 0;
        progress.events = 0;
        assert!(render_progress(&progress, 0.0).ends_with("about ? s left"));
    }

    #[test]
    fn the_table_lists_streams_and_their_consumers() {
        let rows = vec![StreamRow {
            name: "IM_CONV".into(),
            messages: 3,
            bytes: 900,
            subjects: 2,
            first_sequence: 1,
            last_sequence: 3,
            consumers: vec![ConsumerRow {
                name: "messages_v1".into(),
                pending: 1,
                ack_pending: 2,
                redelivered: 0,
                last_delivered_sequence: 2,
            }],
        }];
        let table = render_table(&rows);
        assert!(table.contains("IM_CONV"));
        assert!(table.contains("messages_v1"));
        let consumer_line = table.lines().last().unwrap();
        let figures: Vec<&str> = consumer_line.split_whitespace().collect();
        assert_eq!(figures, ["IM_CONV", "messages_v1", "1", "2", "0", "2"]);
    }
}
