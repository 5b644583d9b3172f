//! The contract every stored event follows.
//!
//! An event is a plain serde struct stored as the JSON body of one JetStream message. Its kind
//! (`msg.sent`) and version travel in the `Im-Event` and `Im-Event-Version` headers, so an
//! operator can filter on them with `nats stream view` without reading bodies. A schema change
//! adds a version (a new struct, or a new `VERSION` with fields that old readers can default);
//! a stored event is never rewritten, so every version ever written must stay decodable.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A type that is stored in the event log.
pub trait Event: Serialize + DeserializeOwned + Send + Sync {
    /// The event kind, dotted lower case (`msg.sent`); written to the `Im-Event` header.
    const KIND: &'static str;
    /// The schema version of this struct; written to the `Im-Event-Version` header.
    const VERSION: u32;
}

/// An event on a conversation timeline (`im.conv.<id>.msg`), which carries the conversation
/// seq the append path assigns. The appender calls [`TimelineEvent::set_seq`] before writing,
/// once per attempt, so the stored body and the `Im-Seq` header always agree.
pub trait TimelineEvent: Event + Clone {
    /// Stores the seq assigned to this event.
    fn set_seq(&mut self, seq: u64);
}

/// Why a stored body could not be read as the expected event.
#[derive(Debug)]
pub enum DecodeError {
    /// The `Im-Event` header names another kind.
    WrongKind {
        /// The kind the reader expected.
        expected: &'static str,
        /// The kind the header names.
        found: String,
    },
    /// The version is newer than this build knows.
    UnknownVersion {
        /// The event kind.
        kind: &'static str,
        /// The version the header names.
        found: u32,
    },
    /// The body is not valid JSON for the struct.
    Body(serde_json::Error),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::WrongKind { expected, found } => {
                write!(formatter, "expected event {expected}, found {found}")
            }
            Self::UnknownVersion { kind, found } => {
                write!(formatter, "event {kind} has unknown version {found}")
            }
            Self::Body(error) => write!(formatter, "event body is not valid: {error}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes a stored body, checking its kind and version against `E`.
pub fn decode<E: Event>(kind: &str, version: u32, body: &[u8]) -> Result<E, DecodeError> {
    decode_part::<E, E>(kind, version, body)
}

/// Decodes the part of a stored `E` that `P` names (a struct with some of `E`'s fields),
/// checking kind and version as [`decode`] does. `P` may borrow its strings from `body`,
/// so a consumer that needs a few fields of many events allocates none of the others.
pub fn decode_part<'a, E: Event, P: serde::Deserialize<'a>>(
    kind: &str,
    version: u32,
    body: &'a [u8],
) -> Result<P, DecodeError> {
    if kind != E::KIND {
        return Err(DecodeError::WrongKind {
            expected: E::KIND,
            found: kind.to_owned(),
        });
    }
    if version > E::VERSION {
        return Err(DecodeError::UnknownVersion {
            kind: E::KIND,
            found: version,
        });
    }
    serde_json::from_slice(body).map_err(DecodeError::Body)
}

/// Encodes an event body as JSON.
pub fn encode<E: Event>(event: &E) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(event)
}
