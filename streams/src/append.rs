//! The append path: the only code in jetim that writes to a stream.
//!
//! A timeline append assigns the conversation's next seq and stores the event in one step:
//!
//! 1. Calls for one conversation are serialised inside the process (a lock per subject), so a
//!    single jetim never races itself; different conversations run in parallel.
//! 2. The writer knows the subject's last (stream sequence, seq), from its cache or, on a miss,
//!    from a direct get of the subject's last message and its `Im-Seq` header.
//! 3. It publishes the event with seq + 1, `Nats-Msg-Id` (the dedup id) and
//!    `Nats-Expected-Last-Subject-Sequence` (the stream sequence it believes is last). The
//!    JetStream ack makes the event durable; only then does the caller answer its client.
//! 4. If another process appended first, the server refuses with "wrong last sequence"; the
//!    writer re-reads the subject's last message and tries again with the next seq.
//! 5. If the dedup id was already stored, the server answers "duplicate" with the original
//!    stream sequence, and the writer returns the original seq. Nothing new is stored.
//!
//! So seqs per conversation run 1..n with no gap and no duplicate, whatever the number of
//! writers, and a resend inside the duplicate window never makes a second event.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage as Publish};
use jetim_schemas::event::{Event, TimelineEvent, encode};
use tokio::sync::Mutex;

use crate::escape::TokenError;
use crate::headers;
use crate::record::RecordedEvent;
use crate::subject::{CONVERSATION_STREAM, Subject, USER_STREAM};

/// How often a conflicting append is retried before giving up.
const DEFAULT_MAX_ATTEMPTS: u32 = 64;
/// The most events one atomic append may hold: the server's default batch limit.
pub const MAX_ATOMIC_BATCH: usize = 1000;
/// How many conversations' cursors the writer keeps before it forgets idle ones.
const DEFAULT_CURSOR_CAPACITY: usize = 100_000;

/// What a keyed append requires of its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Nothing: append whatever is there.
    Anything,
    /// The subject has no events yet (e.g. a registration).
    Empty,
    /// The subject's last event is at this stream sequence (optimistic concurrency on an
    /// aggregate that was loaded at that point).
    LastAt(u64),
}

impl Expect {
    /// The `Nats-Expected-Last-Subject-Sequence` this expectation publishes with, if any.
    fn last_subject_sequence(self) -> Option<u64> {
        match self {
            Self::Anything => None,
            Self::Empty => Some(0),
            Self::LastAt(sequence) => Some(sequence),
        }
    }
}

/// The result of a keyed append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The event's position in its stream.
    pub stream_sequence: u64,
    /// True when the dedup id was already stored; nothing was written.
    pub duplicate: bool,
}

/// The result of a timeline append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineAppend {
    /// The event's position in the stream.
    pub stream_sequence: u64,
    /// The conversation seq the event holds.
    pub seq: u64,
    /// True when the dedup id was already stored: `seq` and `stream_sequence` are the
    /// original's, and nothing was written.
    pub duplicate: bool,
}

/// Why an append did not store anything (or may not have).
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// An ID cannot form a subject.
    #[error("invalid ID: {0}")]
    InvalidId(#[from] TokenError),
    /// The event could not be serialised.
    #[error("event {kind} cannot be encoded: {error}")]
    Encode {
        /// The event kind.
        kind: &'static str,
        /// What serde said.
        error: serde_json::Error,
    },
    /// No stream holds the subject: the stream definitions were not applied.
    #[error("no stream holds subject {subject}; were the streams applied?")]
    NoStream {
        /// The subject.
        subject: String,
    },
    /// The server did not acknowledge in time. The event may or may not be stored; repeating
    /// the append with the same dedup id is safe.
    #[error("append to {subject} was not acknowledged in time")]
    TimedOut {
        /// The subject.
        subject: String,
    },
    /// The subject was not as [`Expect`] required: someone else wrote first. A domain
    /// answer for the caller (already registered, changed concurrently), not a failure.
    #[error("{subject} changed: it was not as the append expected")]
    Conflict {
        /// The subject.
        subject: String,
    },
    /// Other writers kept winning the race for this conversation.
    #[error("append to {subject} lost the race {attempts} times in a row")]
    Contended {
        /// The subject.
        subject: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The last event on a timeline has no readable `Im-Seq`: the log was written by
    /// something other than this append path.
    #[error("timeline {subject} is corrupt at stream sequence {stream_sequence}: {reason}")]
    CorruptTimeline {
        /// The subject.
        subject: String,
        /// The offending event.
        stream_sequence: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// An atomic append of nothing.
    #[error("an atomic append needs at least one event")]
    EmptyBatch,
    /// An atomic append of more events than one batch may hold.
    #[error("an atomic append to {subjects} holds {count} events, more than {MAX_ATOMIC_BATCH}")]
    BatchTooLarge {
        /// The subjects, summarised.
        subjects: String,
        /// How many events were given.
        count: usize,
    },
    /// Any other failure talking to NATS.
    #[error("append to {subject} failed: {error}")]
    Nats {
        /// The subject.
        subject: String,
        /// The client's error.
        error: String,
    },
}

impl AppendError {
    /// Whether repeating the same append (same dedup id) may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::TimedOut { .. } | Self::Contended { .. } | Self::Nats { .. }
        )
    }
}

/// The last event of a timeline subject, as the writer believes it to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Cursor {
    stream_sequence: u64,
    seq: u64,
}

type CursorSlot = Arc<Mutex<Option<Cursor>>>;

/// One lock and cached cursor per conversation, bounded: past the capacity, idle entries are
/// forgotten (the cursor is only a cache; the next append re-reads it from the stream).
struct Cursors {
    slots: StdMutex<HashMap<String, CursorSlot>>,
    capacity: usize,
}

impl Cursors {
    fn slot(&self, subject: &str) -> CursorSlot {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(slot) = slots.get(subject) {
            return Arc::clone(slot);
        }
        if slots.len() >= self.capacity {
            let mut to_forget = slots.len() / 2;
            // A slot held only by the map is idle: nobody is appending to it.
            slots.retain(|_, slot| {
                if to_forget > 0 && Arc::strong_count(slot) == 1 {
                    to_forget -= 1;
                    false
                } else {
                    true
                }
            });
        }
        Arc::clone(slots.entry(subject.to_owned()).or_default())
    }
}

/// Who caused an event: the user (or `system`), and the OpenIM operationID of their request
/// when there was one. A bare `&str` is an actor without an operationID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor<'a> {
    /// `Im-Actor`.
    pub user_id: &'a str,
    /// `Im-Operation`; left out when empty.
    pub operation_id: &'a str,
}

impl<'a> Actor<'a> {
    /// An actor acting in the request `operation_id`.
    pub fn with_operation(user_id: &'a str, operation_id: &'a str) -> Self {
        Self {
            user_id,
            operation_id,
        }
    }

    fn write(self, event_headers: &mut HeaderMap) {
        event_headers.insert(headers::ACTOR, self.user_id);
        if !self.operation_id.is_empty() {
            event_headers.insert(headers::OPERATION, self.operation_id);
        }
    }
}

impl<'a> From<&'a str> for Actor<'a> {
    fn from(user_id: &'a str) -> Self {
        Self {
            user_id,
            operation_id: "",
        }
    }
}

impl<'a> From<&'a String> for Actor<'a> {
    fn from(user_id: &'a String) -> Self {
        Self::from(user_id.as_str())
    }
}

/// An event's body and the headers every event carries: kind, version, actor, trace context.
fn encoded<E: Event>(
    event: &E,
    actor: Actor<'_>,
) -> Result<(bytes::Bytes, HeaderMap), AppendError> {
    let body = encode(event).map_err(|error| AppendError::Encode {
        kind: E::KIND,
        error,
    })?;
    let mut event_headers = HeaderMap::new();
    event_headers.insert(headers::EVENT, E::KIND);
    event_headers.insert(headers::EVENT_VERSION, E::VERSION.to_string().as_str());
    actor.write(&mut event_headers);
    headers::inject_trace_context(&mut event_headers);
    Ok((body.into(), event_headers))
}

/// Counts of what one [`EventLog`] has done since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendStats {
    /// Events stored.
    pub stored: u64,
    /// Appends answered as duplicates of a stored event.
    pub duplicates: u64,
    /// Attempts refused because another writer appended first.
    pub conflicts: u64,
}

#[derive(Default)]
struct Counters {
    stored: AtomicU64,
    duplicates: AtomicU64,
    conflicts: AtomicU64,
}

/// The writer of jetim's event log.
pub struct EventLog {
    jetstream: jetstream::Context,
    conversations: jetstream::stream::Stream,
    users: jetstream::stream::Stream,
    cursors: Cursors,
    max_attempts: u32,
    counters: Counters,
    hurry: crate::consume::Hurry,
}

impl EventLog {
    /// Opens the log on a server where the streams were applied.
    pub async fn open(jetstream: jetstream::Context) -> Result<Self, AppendError> {
        let conversations = open_stream(&jetstream, CONVERSATION_STREAM, "im.conv.>").await?;
        let users = open_stream(&jetstream, USER_STREAM, "im.user.>").await?;
        Ok(Self {
            jetstream,
            conversations,
            users,
            cursors: Cursors {
                slots: StdMutex::default(),
                capacity: DEFAULT_CURSOR_CAPACITY,
            },
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            counters: Counters::default(),
            hurry: crate::consume::Hurry::default(),
        })
    }

    /// The wake-ups of this process' lingering consumers of the log: give them to the
    /// projections run beside this writer, so that what waits for them after an append can
    /// hurry them ([`crate::consume::Hurry`]).
    pub fn hurry(&self) -> &crate::consume::Hurry {
        &self.hurry
    }

    /// The NATS connection under the log, for core NATS publishes (delivery).
    pub fn nats(&self) -> async_nats::Client {
        self.jetstream.client()
    }

    /// What this writer has done since it was opened.
    pub fn stats(&self) -> AppendStats {
        AppendStats {
            stored: self.counters.stored.load(Ordering::Relaxed),
            duplicates: self.counters.duplicates.load(Ordering::Relaxed),
            conflicts: self.counters.conflicts.load(Ordering::Relaxed),
        }
    }

    /// Sets how many conversations' cursors are cached (at least 1).
    pub fn with_cursor_capacity(mut self, capacity: usize) -> Self {
        self.cursors.capacity = capacity.max(1);
        self
    }

    /// Appends `event` to the timeline of `conversation_id` with the conversation's next seq.
    ///
    /// `dedup_key` identifies the command (OpenIM's clientMsgID): a second append with the
    /// same key in the same conversation within the stream's duplicate window returns the
    /// first one's seq and stores nothing.
    #[tracing::instrument(skip_all, fields(conversation = conversation_id, event = E::KIND))]
    pub async fn append_to_timeline<E: TimelineEvent>(
        &self,
        conversation_id: &str,
        dedup_key: &str,
        actor: impl Into<Actor<'_>>,
        event: &E,
    ) -> Result<TimelineAppend, AppendError> {
        let actor = actor.into();
        let subject = Subject::timeline(conversation_id)?;
        let dedup_id = format!("{}:{dedup_key}", crate::escape::escape(conversation_id)?);
        let slot = self.cursors.slot(subject.as_str());
        let mut cursor = slot.lock().await;

        for attempt in 1..=self.max_attempts {
            let last = match *cursor {
                Some(last) => last,
                None => self.read_cursor(&subject).await?,
            };
            let seq = last.seq + 1;
            let mut sequenced = event.clone();
            sequenced.set_seq(seq);
            let (body, mut event_headers) = encoded(&sequenced, actor)?;
            event_headers.insert(headers::SEQ, seq.to_string().as_str());
            let publish = Publish::build()
                .payload(body)
                .headers(event_headers)
                .message_id(&dedup_id)
                .expected_last_subject_sequence(last.stream_sequence);

            match self.publish(&subject, publish).await {
                Ok(ack) if ack.duplicate => {
                    // The cursor stays: the duplicate did not move the subject's last event.
                    *cursor = Some(last);
                    let original = self.read(ack.sequence).await?;
                    let Some(original_seq) = original.seq else {
                        return Err(AppendError::CorruptTimeline {
                            subject: subject.to_string(),
                            stream_sequence: ack.sequence,
                            reason: "the original event has no Im-Seq header",
                        });
                    };
                    self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("jetim_append_duplicates_total", "stream" => CONVERSATION_STREAM)
                        .increment(1);
                    return Ok(TimelineAppend {
                        stream_sequence: ack.sequence,
                        seq: original_seq,
                        duplicate: true,
                    });
                }
                Ok(ack) => {
                    *cursor = Some(Cursor {
                        stream_sequence: ack.sequence,
                        seq,
                    });
                    self.counters.stored.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("jetim_appends_total", "stream" => CONVERSATION_STREAM)
                        .increment(1);
                    return Ok(TimelineAppend {
                        stream_sequence: ack.sequence,
                        seq,
                        duplicate: false,
                    });
                }
                Err(PublishFailure::WrongLastSequence) => {
                    *cursor = None;
                    self.counters.conflicts.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("jetim_append_conflicts_total", "stream" => CONVERSATION_STREAM)
                        .increment(1);
                    tracing::debug!(attempt, "another writer appended first; re-reading");
                    if attempt > 2 {
                        // Spread out writers that keep colliding.
                        tokio::time::sleep(Duration::from_millis(u64::from(attempt.min(20)))).await;
                    }
                }
                Err(failure) => {
                    // The event may or may not be stored: forget what we believe.
                    *cursor = None;
                    return Err(failure.into_error(&subject));
                }
            }
        }
        Err(AppendError::Contended {
            subject: subject.to_string(),
            attempts: self.max_attempts,
        })
    }

    /// Appends `event` to a keyed (non-timeline) subject, if the subject is as `expect` says.
    ///
    /// `dedup_id`, when given, makes a repeat within the duplicate window a no-op that
    /// reports `duplicate`. A subject not as expected gives [`AppendError::Conflict`].
    #[tracing::instrument(skip_all, fields(subject = %subject, event = E::KIND))]
    pub async fn append<E: Event>(
        &self,
        subject: &Subject,
        actor: impl Into<Actor<'_>>,
        expect: Expect,
        dedup_id: Option<&str>,
        event: &E,
    ) -> Result<Appended, AppendError> {
        debug_assert!(
            !subject.is_timeline(),
            "timeline events take their seq from append_to_timeline"
        );
        let (body, event_headers) = encoded(event, actor.into())?;
        let mut publish = Publish::build().payload(body).headers(event_headers);
        if let Some(dedup_id) = dedup_id {
            publish = publish.message_id(dedup_id);
        }
        if let Some(sequence) = expect.last_subject_sequence() {
            publish = publish.expected_last_subject_sequence(sequence);
        }
        match self.publish(subject, publish).await {
            Ok(ack) => {
                self.counters
                    .stored
                    .fetch_add(u64::from(!ack.duplicate), Ordering::Relaxed);
                self.counters
                    .duplicates
                    .fetch_add(u64::from(ack.duplicate), Ordering::Relaxed);
                metrics::counter!("jetim_appends_total", "stream" => subject.stream()).increment(1);
                Ok(Appended {
                    stream_sequence: ack.sequence,
                    duplicate: ack.duplicate,
                })
            }
            Err(PublishFailure::WrongLastSequence) => Err(AppendError::Conflict {
                subject: subject.to_string(),
            }),
            Err(failure) => Err(failure.into_error(subject)),
        }
    }

    /// Appends every event of `events`, each onto its subject if the subject is as its
    /// [`Expect`] says, as one JetStream atomic batch: the stream stores all of them or none.
    ///
    /// The events land at consecutive stream sequences; the reply holds the last one. If any
    /// subject is not as expected the answer is [`AppendError::Conflict`] naming the subjects
    /// of the batch, and nothing is stored. At most [`MAX_ATOMIC_BATCH`] events; the stream
    /// must allow atomic publishing (`allow_atomic`).
    #[tracing::instrument(skip_all, fields(events = events.len(), event = E::KIND))]
    pub async fn append_atomically<E: Event>(
        &self,
        actor: impl Into<Actor<'_>>,
        events: &[(Subject, Expect, E)],
    ) -> Result<Appended, AppendError> {
        let actor = actor.into();
        let Some(((commit_subject, commit_expect, commit_event), rest)) = events.split_last()
        else {
            return Err(AppendError::EmptyBatch);
        };
        let describe = || match rest.len() {
            0 => commit_subject.to_string(),
            more => format!("{} and {more} more", events[0].0),
        };
        if events.len() > MAX_ATOMIC_BATCH {
            return Err(AppendError::BatchTooLarge {
                subjects: describe(),
                count: events.len(),
            });
        }
        debug_assert!(
            events.iter().all(|(subject, _, _)| !subject.is_timeline()),
            "timeline events take their seq one by one"
        );
        let batch_id = nuid::next().to_string();
        let batch_member = |index: usize, expect: Expect, event: &E| {
            let (body, mut event_headers) = encoded(event, actor)?;
            if let Some(sequence) = expect.last_subject_sequence() {
                event_headers.insert(
                    headers::EXPECTED_LAST_SUBJECT_SEQUENCE,
                    sequence.to_string().as_str(),
                );
            }
            event_headers.insert(headers::BATCH_ID, batch_id.as_str());
            event_headers.insert(headers::BATCH_SEQUENCE, (index + 1).to_string().as_str());
            Ok::<_, AppendError>((body, event_headers))
        };

        // Only the commit is answered; the server holds the others until it arrives on this
        // same connection, after them.
        let client = self.jetstream.client();
        for (index, (subject, expect, event)) in rest.iter().enumerate() {
            let (body, event_headers) = batch_member(index, *expect, event)?;
            client
                .publish_with_headers(subject.to_string(), event_headers, body)
                .await
                .map_err(|error| AppendError::Nats {
                    subject: subject.to_string(),
                    error: error.to_string(),
                })?;
        }
        let (body, mut event_headers) = batch_member(rest.len(), *commit_expect, commit_event)?;
        event_headers.insert(headers::BATCH_COMMIT, "1");
        let publish = Publish::build().payload(body).headers(event_headers);
        match self.publish(commit_subject, publish).await {
            Ok(ack) => {
                let count = events.len() as u64;
                self.counters.stored.fetch_add(count, Ordering::Relaxed);
                metrics::counter!("jetim_appends_total", "stream" => commit_subject.stream())
                    .increment(count);
                Ok(Appended {
                    stream_sequence: ack.sequence,
                    duplicate: false,
                })
            }
            Err(PublishFailure::WrongLastSequence) => Err(AppendError::Conflict {
                subject: describe(),
            }),
            Err(failure) => Err(failure.into_error_for(describe())),
        }
    }

    /// The last event stored on `subject`, if any.
    pub async fn last_event(
        &self,
        subject: &Subject,
    ) -> Result<Option<RecordedEvent>, AppendError> {
        self.direct_get(subject, true).await
    }

    /// The stream sequence of the last event stored on `subject`, if any, as the stream's
    /// leader has it. A direct get ([`EventLog::last_event`]) may be answered by a replica
    /// that is behind, which a reader waiting for everything stored so far cannot use.
    pub async fn last_sequence_at_leader(
        &self,
        subject: &Subject,
    ) -> Result<Option<u64>, AppendError> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        let stream = self.stream_of(subject);
        match stream
            .get_last_raw_message_by_subject(subject.as_str())
            .await
        {
            Ok(message) => Ok(Some(message.sequence)),
            Err(error) if matches!(error.kind(), LastRawMessageErrorKind::NoMessageFound) => {
                Ok(None)
            }
            Err(error) => Err(AppendError::Nats {
                subject: subject.to_string(),
                error: error.to_string(),
            }),
        }
    }

    /// The stream that holds `subject`.
    fn stream_of(&self, subject: &Subject) -> &jetstream::stream::Stream {
        if subject.stream() == USER_STREAM {
            &self.users
        } else {
            &self.conversations
        }
    }

    /// The first event stored on `subject`, if any (e.g. a user's registration).
    pub async fn first_event(
        &self,
        subject: &Subject,
    ) -> Result<Option<RecordedEvent>, AppendError> {
        self.direct_get(subject, false).await
    }

    async fn direct_get(
        &self,
        subject: &Subject,
        last: bool,
    ) -> Result<Option<RecordedEvent>, AppendError> {
        use async_nats::jetstream::stream::DirectGetErrorKind;
        let stream = self.stream_of(subject);
        let found = if last {
            stream.direct_get_last_for_subject(subject.as_str()).await
        } else {
            stream.direct_get_first_for_subject(subject.as_str()).await
        };
        match found {
            Ok(message) => Ok(Some(RecordedEvent::from(message))),
            Err(error) if matches!(error.kind(), DirectGetErrorKind::NotFound) => Ok(None),
            Err(error) => Err(AppendError::Nats {
                subject: subject.to_string(),
                error: error.to_string(),
            }),
        }
    }

    /// Reads one event of the conversation stream by its stream sequence.
    pub async fn read(&self, stream_sequence: u64) -> Result<RecordedEvent, AppendError> {
        self.conversations
            .direct_get(stream_sequence)
            .await
            .map(RecordedEvent::from)
            .map_err(|error| AppendError::Nats {
                subject: format!("{CONVERSATION_STREAM} sequence {stream_sequence}"),
                error: error.to_string(),
            })
    }

    /// The last (stream sequence, seq) of a timeline, or zeros for an empty one.
    async fn read_cursor(&self, subject: &Subject) -> Result<Cursor, AppendError> {
        use async_nats::jetstream::stream::DirectGetErrorKind;
        match self
            .conversations
            .direct_get_last_for_subject(subject.as_str())
            .await
        {
            Ok(message) => {
                let record = RecordedEvent::from(message);
                let seq = record.seq.ok_or_else(|| AppendError::CorruptTimeline {
                    subject: subject.to_string(),
                    stream_sequence: record.stream_sequence,
                    reason: "the last event has no Im-Seq header",
                })?;
                Ok(Cursor {
                    stream_sequence: record.stream_sequence,
                    seq,
                })
            }
            Err(error) if matches!(error.kind(), DirectGetErrorKind::NotFound) => {
                Ok(Cursor::default())
            }
            Err(error) => Err(AppendError::Nats {
                subject: subject.to_string(),
                error: error.to_string(),
            }),
        }
    }

    async fn publish(
        &self,
        subject: &Subject,
        publish: Publish,
    ) -> Result<jetstream::publish::PublishAck, PublishFailure> {
        let ack_future = self
            .jetstream
            .send_publish(subject.to_string(), publish)
            .await
            .map_err(PublishFailure::from)?;
        ack_future.await.map_err(PublishFailure::from)
    }
}

async fn open_stream(
    jetstream: &jetstream::Context,
    name: &str,
    subjects: &str,
) -> Result<jetstream::stream::Stream, AppendError> {
    match jetstream.get_stream(name).await {
        Ok(stream) => Ok(stream),
        Err(error) if is_stream_not_found(&error) => Err(AppendError::NoStream {
            subject: format!("{subjects} (stream {name})"),
        }),
        Err(error) => Err(AppendError::Nats {
            subject: name.to_owned(),
            error: error.to_string(),
        }),
    }
}

fn is_stream_not_found(error: &jetstream::context::GetStreamError) -> bool {
    matches!(
        error.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(ref js_error)
            if js_error.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

enum PublishFailure {
    WrongLastSequence,
    NoStream,
    TimedOut,
    Other(String),
}

impl From<jetstream::context::PublishError> for PublishFailure {
    fn from(error: jetstream::context::PublishError) -> Self {
        match error.kind() {
            PublishErrorKind::WrongLastSequence => Self::WrongLastSequence,
            PublishErrorKind::StreamNotFound => Self::NoStream,
            PublishErrorKind::TimedOut => Self::TimedOut,
            _ => Self::Other(error.to_string()),
        }
    }
}

impl PublishFailure {
    fn into_error(self, subject: &Subject) -> AppendError {
        self.into_error_for(subject.to_string())
    }

    fn into_error_for(self, subject: String) -> AppendError {
        match self {
            Self::WrongLastSequence => AppendError::Contended {
                subject,
                attempts: 1,
            },
            Self::NoStream => AppendError::NoStream { subject },
            Self::TimedOut => AppendError::TimedOut { subject },
            Self::Other(error) => AppendError::Nats { subject, error },
        }
    }
}
