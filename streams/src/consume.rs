//! Reading the log: durable pull consumers for projections, and ordered replay.
//!
//! A projection runs one durable pull consumer, `<projection>_v<N>`. [`run_durable`] fetches a
//! batch, hands it to the [`BatchHandler`], which applies it in one transaction and commits,
//! and only then acks. A transient failure naks the batch with a growing delay; an event the
//! handler can never apply ("poison") is set aside and the rest of the batch applied without
//! it; then the poison event is terminated, logged and counted, and stays in the stream for
//! inspection.
//!
//! The consumer allows no more unacknowledged messages than one batch, so a redelivered batch
//! comes back before anything newer and each read-model row sees its events in order. Its ack
//! policy is "all": one ack for the batch's last event acknowledges the batch (a consumer made
//! by an earlier build, with explicit acks, gets an ack per event).
//!
//! [`Replay`] reads a stream from a given sequence with an ordered consumer (no server state
//! kept) and ends when it has caught up: the tool for rebuilds and audits.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer};
use futures::StreamExt as _;
use tokio::sync::Notify;

use crate::headers;
use crate::record::RecordedEvent;

/// How long to wait after a failed fetch before asking again.
const FETCH_RETRY_DELAY: Duration = Duration::from_secs(1);

/// A failure to apply a batch.
#[derive(Debug)]
pub enum HandleError {
    /// Applying may succeed later (the database is down, a deadlock): redeliver the batch.
    Transient(Box<dyn std::error::Error + Send + Sync>),
    /// This event can never be applied: terminate it and redeliver the others.
    Poison {
        /// The stream sequence of the poison event.
        stream_sequence: u64,
        /// Why it cannot be applied.
        reason: String,
    },
}

impl HandleError {
    /// A failure that may pass ([`HandleError::Transient`]), such as Postgres' or its pool's.
    pub fn transient(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Transient(Box::new(error))
    }
}

/// Applies batches of events to a read model. Implementations must be idempotent: a batch
/// may be delivered again after a crash between commit and ack.
pub trait BatchHandler: Send {
    /// Applies `batch` (in stream order) in one transaction and commits it.
    fn apply(
        &mut self,
        batch: &[RecordedEvent],
    ) -> impl Future<Output = Result<(), HandleError>> + Send;
}

/// Where a durable consumer reads and how much at a time.
#[derive(Debug, Clone)]
pub struct DurableSpec {
    /// The stream to read.
    pub stream: String,
    /// The durable consumer name, `<projection>_v<N>`.
    pub name: String,
    /// The subjects to read; empty for all.
    pub filter_subjects: Vec<String>,
    /// Whether the server applies `filter_subjects` (the consumer is made with them), or the
    /// consumer reads the whole stream and the runner drops, acknowledged, what they do not
    /// match. With several filters and a backlog, nats-server 2.14 hands a fetch a few
    /// hundred events after a long search where it hands an unfiltered one a full batch at
    /// once: for a projection that reads most of its stream, filtering here is faster.
    pub filter_on_server: bool,
    /// The most events per batch.
    pub batch_size: usize,
    /// How long a fetch waits for an event when none is waiting.
    pub fetch_wait: Duration,
    /// How long the server waits for an ack before redelivering.
    pub ack_wait: Duration,
    /// The least time from the start of one batch's fetch to the next one's (zero: none).
    /// A batch that took everything there was makes the next fetch wait out the rest of it,
    /// so that a projection whose events come faster than one a linger applies fewer, larger
    /// batches (each batch costs its statements, its commit and its ack, whatever its size).
    /// A backlog is read as fast as it can be, and an event that comes when the last batch
    /// began longer than a linger ago is applied at once.
    pub busy_linger: Duration,
}

impl DurableSpec {
    /// A spec with jetim's defaults: batches of 500, 200 ms fetch wait, 60 s ack wait.
    pub fn new(stream: &str, name: &str) -> Self {
        Self {
            stream: stream.to_owned(),
            name: name.to_owned(),
            filter_subjects: Vec::new(),
            filter_on_server: true,
            batch_size: 500,
            fetch_wait: Duration::from_millis(200),
            ack_wait: Duration::from_secs(60),
            busy_linger: Duration::ZERO,
        }
    }

    /// The filters the consumer is made with.
    fn server_filters(&self) -> Vec<String> {
        if self.filter_on_server {
            self.filter_subjects.clone()
        } else {
            Vec::new()
        }
    }

    /// Whether the projection reads an event on `subject`.
    pub fn reads(&self, subject: &str) -> bool {
        self.filter_subjects.is_empty()
            || self
                .filter_subjects
                .iter()
                .any(|filter| crate::subject::matches(filter, subject))
    }

    fn consumer_config(&self) -> consumer::pull::Config {
        let batch_size = i64::try_from(self.batch_size).unwrap_or(i64::MAX);
        consumer::pull::Config {
            durable_name: Some(self.name.clone()),
            name: Some(self.name.clone()),
            description: Some(format!("jetim projection {}", self.name)),
            filter_subjects: self.server_filters(),
            ack_policy: consumer::AckPolicy::All,
            ack_wait: self.ack_wait,
            max_ack_pending: batch_size,
            max_deliver: -1,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        }
    }
}

/// Why a consumer stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// The consumer could not be created or read.
    #[error("consumer {consumer} on {stream}: {error}")]
    Nats {
        /// The stream.
        stream: String,
        /// The consumer.
        consumer: String,
        /// The client's error.
        error: String,
    },
}

/// The nak delay after the `delivered`-th failed delivery: 250 ms doubling to 30 s.
pub fn redelivery_delay(delivered: i64) -> Duration {
    let exponent = u32::try_from(delivered.saturating_sub(1).clamp(0, 7)).unwrap_or(7);
    Duration::from_millis(250 * 2u64.pow(exponent)).min(Duration::from_secs(30))
}

/// Wake-ups for the durable consumers of this process that linger between batches (see
/// [`DurableSpec::busy_linger`]). Whoever waits for such a consumer to apply an event (a
/// write that waits until it can be read back, a read that catches up) hurries it: its
/// linger ends at once, or, if it is applying a batch, its next one does not begin. So a
/// linger saves batches while nobody waits on them, and costs no one a wait (a hurry that
/// turns out not to be needed costs a batch more at most). Hurrying a consumer that does
/// not run in this process does nothing; one in another process lingers on.
#[derive(Clone, Default)]
pub struct Hurry {
    consumers: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl Hurry {
    /// Hurries the durable consumer `name` (`<projection>_v<N>`) if it runs here.
    pub fn hurry(&self, name: &str) {
        let consumers = self
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(wake) = consumers.get(name) {
            wake.notify_one();
        }
    }

    /// What consumer `name` lingers on.
    fn register(&self, name: &str) -> Arc<Notify> {
        let mut consumers = self
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(consumers.entry(name.to_owned()).or_default())
    }
}

impl std::fmt::Debug for Hurry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let consumers = self
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        formatter.debug_set().entries(consumers.keys()).finish()
    }
}

/// Runs a durable consumer until `shutdown` completes. Returns after the batch in hand is
/// finished, so nothing is left half-applied. Fails only if the consumer cannot be created;
/// later fetch failures (a NATS restart) are logged and retried. Its linger, if it has one,
/// ends early when someone hurries it through `hurry`.
pub async fn run_durable<H: BatchHandler>(
    jetstream: &jetstream::Context,
    spec: &DurableSpec,
    handler: &mut H,
    hurry: &Hurry,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ConsumeError> {
    let nats_error = |error: &dyn std::fmt::Display| ConsumeError::Nats {
        stream: spec.stream.clone(),
        consumer: spec.name.clone(),
        error: error.to_string(),
    };
    let stream = jetstream
        .get_stream_no_info(&spec.stream)
        .await
        .map_err(|error| nats_error(&error))?;
    let mut consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(&spec.name, spec.consumer_config())
        .await
        .map_err(|error| nats_error(&error))?;
    let filters = spec.server_filters();
    if !same_filters(&consumer.cached_info().config, &filters) {
        // Made by a build that filtered elsewhere: the server keeps its position.
        tracing::info!(consumer = %spec.name, ?filters, "updating the consumer's filters");
        let mut config = consumer.cached_info().config.clone();
        config.filter_subject = String::new();
        config.filter_subjects = filters;
        let _: consumer::Consumer<consumer::Config> = stream
            .update_consumer(config)
            .await
            .map_err(|error| nats_error(&error))?;
        consumer = stream
            .get_consumer(&spec.name)
            .await
            .map_err(|error| nats_error(&error))?;
    }
    let ack_all = consumer.cached_info().config.ack_policy == consumer::AckPolicy::All;
    let nats = jetstream.client();
    tokio::pin!(shutdown);

    let hurried = hurry.register(&spec.name);
    let mut busy_until: Option<tokio::time::Instant> = None;
    loop {
        if let Some(until) = busy_until.take() {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep_until(until) => {}
                () = hurried.notified() => {}
            }
        }
        let fetching = tokio::time::Instant::now();
        // What is there now, up to a batch, without waiting; when nothing is, wait (up to
        // `fetch_wait`) for the first event and apply it at once. A batch fills under load and
        // an event that arrives alone is applied within a round trip, not after `fetch_wait`
        // (read-your-writes and pushes wait on it).
        let mut batch = Vec::with_capacity(spec.batch_size);
        for waiting in [false, true] {
            let request = if waiting {
                consumer
                    .batch()
                    .max_messages(1)
                    .expires(spec.fetch_wait)
                    .messages()
                    .await
            } else {
                // The server answers at once; the expiry only bounds a request it lost
                // (a restart).
                consumer
                    .fetch()
                    .max_messages(spec.batch_size)
                    .expires(spec.fetch_wait)
                    .messages()
                    .await
            };
            let fetched = tokio::select! {
                () = &mut shutdown => return Ok(()),
                fetched = collect(spec, request) => fetched,
            };
            match fetched {
                Ok(messages) => batch = messages,
                Err(error) => {
                    // NATS is restarting or the connection is re-establishing: nothing is
                    // lost, the un-acked events stay with the consumer. Wait and ask again.
                    tracing::warn!(consumer = %spec.name, %error, "fetch failed; retrying");
                    tokio::select! {
                        () = &mut shutdown => return Ok(()),
                        () = tokio::time::sleep(FETCH_RETRY_DELAY) => {}
                    }
                    break;
                }
            }
            if !batch.is_empty() {
                break;
            }
        }
        if batch.is_empty() {
            continue;
        }
        // Not behind: the server held nothing more for the consumer after the batch's last
        // event, so the next fetch waits out the linger (with a backlog, it goes at once).
        let caught_up = batch
            .last()
            .and_then(|message| message.info().ok())
            .is_some_and(|info| info.pending == 0);
        if caught_up && !spec.busy_linger.is_zero() {
            busy_until = Some(fetching + spec.busy_linger);
        }
        handle_batch(spec, handler, batch, ack_all, &nats).await;
    }
}

/// Whether a consumer made with `config` filters as `filters` say.
fn same_filters(config: &consumer::Config, filters: &[String]) -> bool {
    let mut made: Vec<&str> = config.filter_subjects.iter().map(String::as_str).collect();
    if !config.filter_subject.is_empty() {
        made.push(&config.filter_subject);
    }
    let mut wanted: Vec<&str> = filters.iter().map(String::as_str).collect();
    made.sort_unstable();
    wanted.sort_unstable();
    made == wanted
}

/// The messages a pull request delivers, until it ends (its batch is full, it expired, or
/// nothing was waiting).
async fn collect(
    spec: &DurableSpec,
    request: Result<consumer::pull::Batch, consumer::pull::BatchError>,
) -> Result<Vec<jetstream::Message>, consumer::pull::BatchError> {
    let mut messages = request?;
    let mut batch = Vec::new();
    while let Some(message) = messages.next().await {
        match message {
            Ok(message) => batch.push(message),
            Err(error) => {
                tracing::warn!(consumer = %spec.name, %error, "fetch interrupted");
                break;
            }
        }
    }
    Ok(batch)
}

async fn handle_batch<H: BatchHandler>(
    spec: &DurableSpec,
    handler: &mut H,
    mut batch: Vec<jetstream::Message>,
    ack_all: bool,
    nats: &async_nats::Client,
) {
    let mut records: Vec<RecordedEvent> = batch
        .iter_mut()
        .filter(|message| spec.filter_on_server || spec.reads(&message.subject))
        .map(take_record)
        .collect();
    let span = tracing::info_span!("apply_batch", consumer = %spec.name, events = records.len());
    if let Some(first) = records.first() {
        headers::follow_trace_context(&span, &first.headers);
    }
    // A poison event is set aside and the rest applied again at once, so that nothing is
    // terminated or acknowledged before everything around it is applied: under the "all" ack
    // policy a terminated event acknowledges the ones before it too.
    let mut poisoned = Vec::new();
    let started = std::time::Instant::now();
    let outcome = loop {
        if records.is_empty() {
            break Ok(());
        }
        let applied = tracing::Instrument::instrument(handler.apply(&records), span.clone()).await;
        match applied {
            Err(HandleError::Poison {
                stream_sequence,
                reason,
            }) if records
                .iter()
                .any(|record| record.stream_sequence == stream_sequence) =>
            {
                tracing::error!(
                    consumer = %spec.name,
                    stream_sequence,
                    %reason,
                    "poison event terminated; it stays in the stream for inspection"
                );
                metrics::counter!("jetim_projection_poison_total", "consumer" => spec.name.clone())
                    .increment(1);
                records.retain(|record| record.stream_sequence != stream_sequence);
                poisoned.push(stream_sequence);
            }
            Err(HandleError::Poison {
                stream_sequence, ..
            }) => {
                break Err(format!(
                    "the handler named event {stream_sequence} as poison, which is not in the batch"
                )
                .into());
            }
            Err(HandleError::Transient(error)) => break Err(error),
            Ok(()) => break Ok(()),
        }
    };
    match outcome {
        Ok(()) => {
            let (terminated, applied): (Vec<_>, Vec<_>) = batch.iter().partition(|message| {
                message
                    .info()
                    .is_ok_and(|info| poisoned.contains(&info.stream_sequence))
            });
            for message in terminated {
                acknowledge(spec, message, AckKind::Term).await;
            }
            let acked = if ack_all {
                &applied[applied.len().saturating_sub(1)..]
            } else {
                &applied[..]
            };
            for message in acked {
                acknowledge(spec, message, AckKind::Ack).await;
            }
            metrics::counter!("jetim_projection_events_total", "consumer" => spec.name.clone())
                .increment(records.len() as u64);
            // Events over batches is the mean batch: under load a projection that applies
            // many small batches pays each one's statements and commit again.
            metrics::counter!("jetim_projection_batches_total", "consumer" => spec.name.clone())
                .increment(1);
            metrics::histogram!("jetim_projection_apply_seconds", "consumer" => spec.name.clone())
                .record(started.elapsed().as_secs_f64());
            if let Some(last) = records.last() {
                let subject = crate::subject::projection_applied(&spec.name);
                let position = last.stream_sequence.to_string();
                if let Err(error) = nats.publish(subject, position.into()).await {
                    tracing::debug!(consumer = %spec.name, %error, "position not announced");
                }
            }
            // What the server still holds for this consumer after the batch's last event:
            // the projection's lag, free with every delivery.
            if let Some(info) = batch.last().and_then(|message| message.info().ok()) {
                #[allow(clippy::cast_precision_loss)]
                metrics::gauge!("jetim_projection_lag_events", "consumer" => spec.name.clone())
                    .set(info.pending as f64);
            }
        }
        Err(error) => {
            let delivered = batch
                .first()
                .and_then(|message| message.info().ok())
                .map_or(1, |info| info.delivered);
            let delay = redelivery_delay(delivered);
            tracing::warn!(consumer = %spec.name, %error, delivered, ?delay, "batch failed; redelivering");
            metrics::counter!("jetim_projection_retries_total", "consumer" => spec.name.clone())
                .increment(1);
            for message in &batch {
                acknowledge(spec, message, AckKind::Nak(Some(delay))).await;
            }
        }
    }
}

async fn acknowledge(spec: &DurableSpec, message: &jetstream::Message, kind: AckKind) {
    // A lost ack means a redelivery, which idempotent handlers absorb; it is logged, not fatal.
    if let Err(error) = message.ack_with(kind).await {
        tracing::warn!(consumer = %spec.name, %error, "ack not sent");
    }
}

/// The record of a message a consumer delivered, its headers taken out of the message
/// instead of copied (a copy of the header map was about 8% of a rebuild's own CPU). What
/// is left of the message still acknowledges it.
pub fn take_record(message: &mut jetstream::Message) -> RecordedEvent {
    take_record_and_pending(message).0
}

/// [`take_record`], and how many messages the consumer had still to deliver after this one
/// (`None` when the message carries no delivery metadata). The metadata is parsed once for
/// both: in a rebuild, parsing it was about 3% of jetim's CPU.
fn take_record_and_pending(message: &mut jetstream::Message) -> (RecordedEvent, Option<u64>) {
    let delivery = Delivery::of(message);
    let headers = message.message.headers.take().unwrap_or_default();
    (record_with(message, headers, &delivery), delivery.pending)
}

/// The record of a message a consumer delivered.
pub fn record_of(message: &jetstream::Message) -> RecordedEvent {
    let headers = message.headers.clone().unwrap_or_default();
    record_with(message, headers, &Delivery::of(message))
}

/// What a delivered message's reply subject says of it.
struct Delivery {
    stream_sequence: u64,
    stored_at: time::OffsetDateTime,
    /// Messages the consumer had still to deliver after this one.
    pending: Option<u64>,
}

impl Delivery {
    /// Zero, the epoch and `None` for a message without delivery metadata.
    fn of(message: &jetstream::Message) -> Self {
        message.info().map_or(
            Self {
                stream_sequence: 0,
                stored_at: time::OffsetDateTime::UNIX_EPOCH,
                pending: None,
            },
            |info| Self {
                stream_sequence: info.stream_sequence,
                stored_at: info.published,
                pending: Some(info.pending),
            },
        )
    }
}

/// The record of `message` with `headers`, delivered as `delivery` says.
fn record_with(
    message: &jetstream::Message,
    headers: async_nats::HeaderMap,
    delivery: &Delivery,
) -> RecordedEvent {
    RecordedEvent::from_parts(
        delivery.stream_sequence,
        message.subject.to_string(),
        headers,
        message.payload.clone(),
        delivery.stored_at,
    )
}

/// An ordered read of a stream from a sequence to the end as it was when the read began.
pub struct Replay {
    messages: Option<consumer::pull::Ordered>,
    stream: String,
}

impl Replay {
    /// Starts reading `stream` at `start_sequence` (1 for the beginning), limited to
    /// `filter_subjects` (empty for all).
    pub async fn start(
        jetstream: &jetstream::Context,
        stream: &str,
        start_sequence: u64,
        filter_subjects: Vec<String>,
    ) -> Result<Self, ConsumeError> {
        let nats_error = |error: &dyn std::fmt::Display| ConsumeError::Nats {
            stream: stream.to_owned(),
            consumer: "ordered replay".to_owned(),
            error: error.to_string(),
        };
        let handle = jetstream
            .get_stream_no_info(stream)
            .await
            .map_err(|error| nats_error(&error))?;
        let mut ordered = handle
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: start_sequence.max(1),
                },
                filter_subjects,
                ..Default::default()
            })
            .await
            .map_err(|error| nats_error(&error))?;
        let pending = ordered
            .info()
            .await
            .map_err(|error| nats_error(&error))?
            .num_pending;
        let messages = if pending == 0 {
            None
        } else {
            Some(
                ordered
                    .messages()
                    .await
                    .map_err(|error| nats_error(&error))?,
            )
        };
        Ok(Self {
            messages,
            stream: stream.to_owned(),
        })
    }

    /// The next event, or `None` once the replay has caught up.
    pub async fn next(&mut self) -> Option<Result<RecordedEvent, ConsumeError>> {
        let messages = self.messages.as_mut()?;
        let mut message = match messages.next().await? {
            Ok(message) => message,
            Err(error) => {
                self.messages = None;
                return Some(Err(ConsumeError::Nats {
                    stream: self.stream.clone(),
                    consumer: "ordered replay".to_owned(),
                    error: error.to_string(),
                }));
            }
        };
        let (record, pending) = take_record_and_pending(&mut message);
        if pending.is_none_or(|pending| pending == 0) {
            self.messages = None;
        }
        Some(Ok(record))
    }
}
