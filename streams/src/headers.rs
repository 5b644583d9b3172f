//! Header names on stored events, and the trace context that travels with them.

use async_nats::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The event kind, e.g. `msg.sent`.
pub const EVENT: &str = "Im-Event";
/// The event schema version.
pub const EVENT_VERSION: &str = "Im-Event-Version";
/// The conversation seq, on timeline events only.
pub const SEQ: &str = "Im-Seq";
/// The user (or `system`) who caused the event.
pub const ACTOR: &str = "Im-Actor";
/// The OpenIM operationID of the request that caused the event (the 2001 push carries it
/// back to the sender, whose SDK matches its own messages by it).
pub const OPERATION: &str = "Im-Operation";
/// On a delivery: the message's clientMsgID.
pub const CLIENT_MSG_ID: &str = "Im-Client-Msg-Id";
/// On a delivery: the message's sender.
pub const SENDER: &str = "Im-Sender";
/// JetStream's deduplication id.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// JetStream's optimistic concurrency on a subject: its last stored stream sequence (0 for
/// none).
pub const EXPECTED_LAST_SUBJECT_SEQUENCE: &str = "Nats-Expected-Last-Subject-Sequence";
/// An atomic batch's id, on each of its messages.
pub const BATCH_ID: &str = "Nats-Batch-Id";
/// A message's place in its atomic batch, from 1.
pub const BATCH_SEQUENCE: &str = "Nats-Batch-Sequence";
/// On the last message of an atomic batch: store the batch.
pub const BATCH_COMMIT: &str = "Nats-Batch-Commit";

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|value| value.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

/// Writes the current span's trace context (`traceparent`, `tracestate`) into `headers`,
/// using the globally installed propagator (W3C trace context once telemetry is set up).
pub fn inject_trace_context(headers: &mut HeaderMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers));
    });
}

/// Makes `span` a child of the trace context carried in `headers`, if any.
pub fn follow_trace_context(span: &tracing::Span, headers: &HeaderMap) {
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    });
    // Fails only when the span is disabled, in which case there is nothing to link.
    let _ = span.set_parent(parent);
}

/// Reads a header as text.
pub fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|value| value.as_str())
}

/// Reads a header as an unsigned number.
pub fn number(headers: &HeaderMap, name: &str) -> Option<u64> {
    text(headers, name)?.trim().parse().ok()
}
