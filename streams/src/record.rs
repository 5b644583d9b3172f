//! A stored event as read back from a stream.

use async_nats::HeaderMap;
use bytes::Bytes;
use jetim_schemas::event::{DecodeError, Event, decode, decode_part};

use crate::headers;

/// One event read from a stream, with the metadata its headers carry.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    /// The stream sequence: the event's position in its stream, and the version a read-model
    /// row records so it can ignore redeliveries.
    pub stream_sequence: u64,
    /// The subject it was stored under.
    pub subject: String,
    /// `Im-Event`, empty when missing.
    pub kind: String,
    /// `Im-Event-Version`, 0 when missing.
    pub version: u32,
    /// `Im-Actor`, empty when missing.
    pub actor: String,
    /// `Im-Seq`, on timeline events.
    pub seq: Option<u64>,
    /// When the server stored it, in milliseconds since the Unix epoch.
    pub stored_at_ms: i64,
    /// Every header, including the trace context.
    pub headers: HeaderMap,
    /// The JSON body.
    pub payload: Bytes,
}

impl RecordedEvent {
    /// Builds a record from the parts every way of reading a message provides.
    pub fn from_parts(
        stream_sequence: u64,
        subject: String,
        headers: HeaderMap,
        payload: Bytes,
        stored_at: time::OffsetDateTime,
    ) -> Self {
        let stored_at_ms =
            i64::try_from(stored_at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
        Self {
            stream_sequence,
            kind: headers::text(&headers, headers::EVENT)
                .unwrap_or_default()
                .to_owned(),
            version: headers::number(&headers, headers::EVENT_VERSION)
                .and_then(|version| u32::try_from(version).ok())
                .unwrap_or(0),
            actor: headers::text(&headers, headers::ACTOR)
                .unwrap_or_default()
                .to_owned(),
            seq: headers::number(&headers, headers::SEQ),
            subject,
            stored_at_ms,
            headers,
            payload,
        }
    }

    /// Decodes the body as `E`, checking kind and version.
    pub fn decode<E: Event>(&self) -> Result<E, DecodeError> {
        decode(&self.kind, self.version, &self.payload)
    }

    /// Decodes the part of an `E` that `P` names, borrowing from the body where it can
    /// ([`decode_part`]).
    pub fn decode_part<'a, E: Event, P: serde::Deserialize<'a>>(
        &'a self,
    ) -> Result<P, DecodeError> {
        decode_part::<E, P>(&self.kind, self.version, &self.payload)
    }

    /// The record as one JSON object, for audit output readable without jetim.
    pub fn to_audit_json(&self) -> serde_json::Value {
        let body =
            serde_json::from_slice::<serde_json::Value>(&self.payload).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&self.payload).into_owned())
            });
        serde_json::json!({
            "stream_sequence": self.stream_sequence,
            "subject": self.subject,
            "event": self.kind,
            "version": self.version,
            "actor": self.actor,
            "seq": self.seq,
            "stored_at_ms": self.stored_at_ms,
            "data": body,
        })
    }
}

impl From<async_nats::jetstream::message::StreamMessage> for RecordedEvent {
    fn from(message: async_nats::jetstream::message::StreamMessage) -> Self {
        Self::from_parts(
            message.sequence,
            message.subject.to_string(),
            message.headers,
            message.payload,
            message.time,
        )
    }
}
