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
    }
    Ok(())
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
