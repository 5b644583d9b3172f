//! A test event and a server with jetim's streams applied.

use jetim_common::testing::TestNats;
use jetim_schemas::event::{Event, TimelineEvent};
use jetim_streams::consume::Replay;
use jetim_streams::subject::{CONVERSATION_STREAM, Subject};
use serde::{Deserialize, Serialize};

/// A stand-in for a timeline event such as `msg.sent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Note {
    pub(crate) text: String,
    pub(crate) seq: u64,
}

impl Note {
    pub(crate) fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            seq: 0,
        }
    }
}

impl Event for Note {
    const KIND: &'static str = "test.note";
    const VERSION: u32 = 1;
}

impl TimelineEvent for Note {
    fn set_seq(&mut self, seq: u64) {
        self.seq = seq;
    }
}

/// A private server with the streams applied.
pub(crate) async fn server_with_streams() -> (TestNats, async_nats::jetstream::Context) {
    let nats = TestNats::start().await;
    let jetstream = nats.jetstream().await;
    jetim_streams::definitions::apply_all(&jetstream, 1)
        .await
        .expect("streams apply");
    (nats, jetstream)
}

/// Every event stored on a conversation's timeline, in stream order.
pub(crate) async fn timeline(
    jetstream: &async_nats::jetstream::Context,
    conversation_id: &str,
) -> Vec<jetim_streams::RecordedEvent> {
    let subject = Subject::timeline(conversation_id).unwrap();
    let mut replay = Replay::start(jetstream, CONVERSATION_STREAM, 1, vec![subject.to_string()])
        .await
        .unwrap();
    let mut events = Vec::new();
    while let Some(event) = replay.next().await {
        events.push(event.unwrap());
    }
    events
}

/// Asserts the timeline's seqs are exactly 1..=expected, in order, and bodies agree.
pub(crate) async fn assert_gapless(
    jetstream: &async_nats::jetstream::Context,
    conversation_id: &str,
    expected: u64,
) {
    let events = timeline(jetstream, conversation_id).await;
    let seqs: Vec<u64> = events.iter().map(|event| event.seq.unwrap()).collect();
    let wanted: Vec<u64> = (1..=expected).collect();
    assert_eq!(seqs.len(), wanted.len(), "{conversation_id}: event count");
    assert_eq!(seqs, wanted, "{conversation_id}: seqs must run 1..n");
    for event in &events {
        let note: Note = event.decode().unwrap();
        assert_eq!(Some(note.seq), event.seq, "body and Im-Seq header agree");
    }
}
