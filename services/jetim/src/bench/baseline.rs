//! Baselines measured in the same run as the scenario, with the same payload: what the NATS
//! server under jetim does with no jetim in the way.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use futures::StreamExt as _;

use super::Figure;

const RAW_STREAM: &str = "BENCH_RAW";

/// A timeline event's body as jetim stores it: a text message of `text_bytes` bytes.
pub(crate) fn event_body(text_bytes: usize) -> anyhow::Result<bytes::Bytes> {
    let event = super::rebuild::message(0, 0, &"x".repeat(text_bytes));
    Ok(jetim_schemas::event::encode(&event)?.into())
}

/// jetim's ceiling: appends to a stream set up like `IM_CONV`, each expecting its
/// subject's last sequence and carrying a dedup ID, as jetim appends, `in_flight` at once
/// over `subjects` subjects.
pub(crate) async fn raw_append(
    jetstream: &jetstream::Context,
    body: bytes::Bytes,
    messages: u64,
    subjects: usize,
    in_flight: usize,
) -> anyhow::Result<Figure> {
    let template = jetstream
        .get_stream(jetim_streams::subject::CONVERSATION_STREAM)
        .await
        .context("IM_CONV, as the template of the baseline's stream")?
        .cached_info()
        .config
        .clone();
    let _ = jetstream.delete_stream(RAW_STREAM).await;
    jetstream
        .create_stream(stream::Config {
            name: RAW_STREAM.to_owned(),
            subjects: vec!["bench.raw.>".to_owned()],
            description: Some("jetim bench: the raw-append baseline; deleted after".to_owned()),
            ..template
        })
        .await
        .context("creating the baseline stream")?;
    let next = Arc::new(AtomicU64::new(0));
    let in_flight = in_flight.clamp(1, subjects.max(1));
    let started = Instant::now();
    let workers: Vec<_> = (0..in_flight)
        .map(|worker| {
            let (jetstream, next, body) = (jetstream.clone(), Arc::clone(&next), body.clone());
            // Each worker owns every `in_flight`-th subject, so each subject has one writer
            // and its expected sequence is known.
            let mut last: Vec<(String, u64)> = (worker..subjects)
                .step_by(in_flight)
                .map(|subject| (format!("bench.raw.c{subject}"), 0))
                .collect();
            tokio::spawn(async move {
                let mut turn = 0;
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= messages {
                        return anyhow::Ok(());
                    }
                    let owned = last.len();
                    let (subject, expected) = &mut last[turn % owned];
                    turn += 1;
                    let mut headers = HeaderMap::new();
                    headers.insert("Nats-Msg-Id", format!("raw-{index}").as_str());
                    headers.insert(
                        "Nats-Expected-Last-Subject-Sequence",
                        expected.to_string().as_str(),
                    );
                    let ack = jetstream
                        .publish_with_headers(subject.clone(), headers, body.clone())
                        .await?
                        .await?;
                    *expected = ack.sequence;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    let figure = Figure::new(
        "raw JetStream append (expected seq + dedup)",
        messages,
        started.elapsed(),
    );
    jetstream.delete_stream(RAW_STREAM).await?;
    Ok(figure)
}

/// Core NATS: `messages` publishes of `body`, counted by one subscriber.
pub(crate) async fn core_publish(
    client: &async_nats::Client,
    body: bytes::Bytes,
    messages: u64,
    subjects: usize,
) -> anyhow::Result<Figure> {
    let mut subscription = client.subscribe("bench.core.>").await?;
    client.flush().await?;
    let counted = tokio::spawn(async move {
        let (mut count, mut last) = (0_u64, Instant::now());
        while count < messages {
            match tokio::time::timeout(Duration::from_secs(5), subscription.next()).await {
                Ok(Some(_)) => {
                    count += 1;
                    last = Instant::now();
                }
                _ => break,
            }
        }
        (count, last)
    });
    let names: Vec<String> = (0..subjects.max(1))
        .map(|subject| format!("bench.core.c{subject}"))
        .collect();
    let started = Instant::now();
    for index in 0..messages {
        client
            .publish(names[index as usize % names.len()].clone(), body.clone())
            .await?;
    }
    client.flush().await?;
    let (received, finished) = counted.await?;
    Ok(Figure::new(
        "core NATS publish → subscriber",
        received,
        finished.saturating_duration_since(started),
    ))
}
