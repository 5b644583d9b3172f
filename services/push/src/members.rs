//! Group members for fan-out, in memory: a group message is pushed to every member without a
//! query per message.
//!
//! An entry is loaded from the groups read model on first use, with the stream sequence of
//! the last group event the read model had applied, and is then kept fresh by the same
//! events: an ordered consumer on `im.conv.*.group` applies each membership change to a
//! cached group whose entry is older than the event. An entry loaded while the feed had
//! already passed a newer event of that group is used once and not kept (the read model was
//! behind), so the cache never holds a list older than what the feed has seen. The cache is
//! bounded (least recently used groups go first) and is never the only copy of anything.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt as _;
use hashlink::LruCache;
use jetim_common::shutdown::CancellationToken;
use jetim_readmodel::groups;
use jetim_schemas::event::Event as _;
use jetim_schemas::events::group::{
    GroupApplicationHandled, GroupCreated, GroupDismissed, MembersJoined, MembersLeft,
};
use jetim_streams::RecordedEvent;
use jetim_streams::consume::record_of;
use jetim_streams::subject::{CONVERSATION_STREAM, ConversationKind, every_conversation};

/// How long to wait before re-opening the feed after NATS failed.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// A change to a group's members, as the cache needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipChange {
    /// The group starts with these members.
    Created(Vec<String>),
    /// These users joined.
    Joined(Vec<String>),
    /// These users left.
    Left(Vec<String>),
    /// Everyone left.
    Dismissed,
}

/// The group and membership change an event makes, if it changes members.
pub fn membership_change(event: &RecordedEvent) -> Option<(String, MembershipChange)> {
    let ids = |members: &[jetim_schemas::events::group::NewMember]| {
        members
            .iter()
            .map(|member| member.user_id.clone())
            .collect()
    };
    let kind = event.kind.as_str();
    let decoded = if kind == GroupCreated::KIND {
        event.decode::<GroupCreated>().map(|created| {
            (
                created.group_id,
                MembershipChange::Created(ids(&created.members)),
            )
        })
    } else if kind == MembersJoined::KIND {
        event.decode::<MembersJoined>().map(|joined| {
            (
                joined.group_id,
                MembershipChange::Joined(ids(&joined.members)),
            )
        })
    } else if kind == GroupApplicationHandled::KIND {
        match event.decode::<GroupApplicationHandled>() {
            Ok(handled) => {
                let member = handled.member?;
                Ok((
                    handled.group_id,
                    MembershipChange::Joined(vec![member.user_id]),
                ))
            }
            Err(error) => Err(error),
        }
    } else if kind == MembersLeft::KIND {
        event
            .decode::<MembersLeft>()
            .map(|left| (left.group_id, MembershipChange::Left(left.user_ids)))
    } else if kind == GroupDismissed::KIND {
        event
            .decode::<GroupDismissed>()
            .map(|dismissed| (dismissed.group_id, MembershipChange::Dismissed))
    } else {
        return None;
    };
    match decoded {
        Ok(change) => Some(change),
        Err(error) => {
            tracing::error!(stream_sequence = event.stream_sequence, %error, "group event does not decode");
            None
        }
    }
}

struct Entry {
    as_of: u64,
    members: Arc<Vec<String>>,
}

struct Inner {
    entries: LruCache<String, Entry>,
    /// The newest group event the feed has seen, per group (recent ones).
    seen: LruCache<String, u64>,
}

/// The member cache.
#[derive(Clone)]
pub struct MemberCache {
    inner: Arc<Mutex<Inner>>,
    db: deadpool_postgres::Pool,
}

impl MemberCache {
    /// An empty cache of at most `capacity` groups, loading from `db`.
    pub fn new(db: deadpool_postgres::Pool, capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                entries: LruCache::new(capacity.max(1)),
                seen: LruCache::new(capacity.max(1).saturating_mul(4)),
            })),
            db,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The group's members (empty if the group does not exist).
    pub async fn members(
        &self,
        group_id: &str,
    ) -> Result<Arc<Vec<String>>, jetim_readmodel::ReadModelError> {
        if let Some(entry) = self.lock().entries.get(group_id) {
            metrics::counter!("jetim_push_member_cache_total", "result" => "hit").increment(1);
            return Ok(Arc::clone(&entry.members));
        }
        metrics::counter!("jetim_push_member_cache_total", "result" => "miss").increment(1);
        let Some((as_of, members)) = groups::member_ids_as_of(&self.db, group_id).await? else {
            return Ok(Arc::new(Vec::new()));
        };
        let members = Arc::new(members);
        let mut inner = self.lock();
        let behind = inner.seen.get(group_id).is_some_and(|seen| *seen > as_of);
        if !behind {
            inner.entries.insert(
                group_id.to_owned(),
                Entry {
                    as_of,
                    members: Arc::clone(&members),
                },
            );
        }
        Ok(members)
    }

    /// Applies a membership change at `stream_sequence` to the group's entry, if cached and
    /// older.
    pub fn apply(&self, group_id: &str, stream_sequence: u64, change: MembershipChange) {
        let mut inner = self.lock();
        let seen = inner.seen.get(group_id).copied().unwrap_or(0);
        inner
            .seen
            .insert(group_id.to_owned(), seen.max(stream_sequence));
        let Some(entry) = inner.entries.get_mut(group_id) else {
            return;
        };
        if entry.as_of >= stream_sequence {
            return;
        }
        entry.as_of = stream_sequence;
        let members = Arc::make_mut(&mut entry.members);
        match change {
            MembershipChange::Created(users) => *members = users,
            MembershipChange::Joined(users) => {
                for user in users {
                    if !members.contains(&user) {
                        members.push(user);
                    }
                }
            }
            MembershipChange::Left(users) => members.retain(|member| !users.contains(member)),
            MembershipChange::Dismissed => members.clear(),
        }
    }

    /// Keeps the cache fresh from the group events until `shutdown`. The feed starts at the
    /// events appended from now on; what is cached is loaded after it started.
    pub async fn follow(self, jetstream: jetstream::Context, shutdown: CancellationToken) {
        let mut start = consumer::DeliverPolicy::New;
        loop {
            let config = consumer::pull::OrderedConfig {
                filter_subject: every_conversation(ConversationKind::Group),
                deliver_policy: start,
                ..Default::default()
            };
            let messages = match jetstream.get_stream_no_info(CONVERSATION_STREAM).await {
                Ok(stream) => match stream.create_consumer(config).await {
                    Ok(consumer) => consumer.messages().await.map_err(|error| error.to_string()),
                    Err(error) => Err(error.to_string()),
                },
                Err(error) => Err(error.to_string()),
            };
            let mut messages = match messages {
                Ok(messages) => messages,
                Err(error) => {
                    tracing::warn!(%error, "group member feed unavailable; retrying");
                    // Whatever happened meanwhile is not known: start afresh.
                    self.clear();
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(RETRY_DELAY) => continue,
                    }
                }
            };
            loop {
                let next = tokio::select! {
                    () = shutdown.cancelled() => return,
                    next = messages.next() => next,
                };
                match next {
                    Some(Ok(message)) => {
                        let record = record_of(&message);
                        if let Some((group_id, change)) = membership_change(&record) {
                            self.apply(&group_id, record.stream_sequence, change);
                        }
                        start = consumer::DeliverPolicy::ByStartSequence {
                            start_sequence: record.stream_sequence + 1,
                        };
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, "group member feed interrupted; reopening");
                        break;
                    }
                    None => break,
                }
            }
        }
    }

    fn clear(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.seen.clear();
    }
}
