//! Seq sync, the read side every client runs after connecting and on a gap: max seqs (WS 1001,
//! `/msg/newest_seq`), pulls by range (1002, `/msg/pull_msg_by_seq`), pulls by seq (1005),
//! read and max seqs (1006, `/msg/get_conversations_has_read_and_max_seq`) and last messages
//! (1007). Answers are the protobuf messages the gateway sends; the REST routes render the
//! same values as JSON.
//!
//! A user reads only conversations they have a row for, within their readable window
//! (nothing below their own or the conversation's cleared min seq). Upstream skips these
//! checks on 1005, 1007 and `n_` pulls; jetim applies them everywhere.
//!
//! A message is pushed as soon as it is stored, so a client may pull it (or a message
//! before it, to fill a gap) before the messages projection shows it. A pull that asks past
//! what the read model has, or for a conversation the user has no row for yet, waits for
//! the projections to apply what the log holds of that conversation ([`CatchUp`]) and reads
//! again.

use std::collections::BTreeMap;
use std::time::Duration;

use deadpool_postgres::Pool;
use jetim_readmodel::{ReadModelError, conversations, groups, messages, projection};
use jetim_schemas::openim::msg::{
    GetConversationsHasReadAndMaxSeqResp, GetLastMessageResp, GetSeqMessageReq, GetSeqMessageResp,
    Seqs,
};
use jetim_schemas::openim::sdkws::{
    GetMaxSeqResp, MsgData, PullMessageBySeqsReq, PullMessageBySeqsResp, PullMsgs,
};
use jetim_streams::append::EventLog;
use jetim_streams::subject::{ConversationKind, Subject};
use tokio::time::Instant;

use crate::Rejection;
use crate::conversation::{
    IdMembers, SessionType, chat_conversation_id, is_notification_conversation, members_by_id,
};
use crate::revoke::as_pulled;

/// The most ranges (or conversations) one pull may name.
pub const MAX_RANGES: usize = 100;
/// The most messages one range (or one conversation of a 1005 pull) returns.
pub const MAX_NUM: i64 = 1000;
/// The most conversations a 1006 or 1007 request may name.
pub const MAX_CONVERSATIONS: usize = 1000;

/// Why a sync request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The request is refused (1001 for malformed ones).
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The read model failed.
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
}

/// The longest one request waits for the read model to show what the log holds.
pub const CATCH_UP_WAIT: Duration = Duration::from_secs(2);
/// The most conversations one request waits for; past these it answers from what it has.
const CATCH_UP_CONVERSATIONS: usize = 100;

/// Brings the read model up to the log for one request: a read that finds less than the
/// client knows of (a seq past the conversation's max, a conversation the user has no row
/// for) calls [`CatchUp::wait`] for that conversation and, when it waited, reads again; a
/// read that must always be current calls it before reading, and [`CatchUp::moved`] after.
///
/// It waits for the projections that make what such a read needs to have applied the last
/// event of the conversation's timeline (the messages projection), and for a group, of the
/// group's own log (the groups projection makes its members' rows). Each is one request for
/// the subject's last event (to the stream's leader, as a replica may be behind), and a
/// wait as long as that projection's lag: nothing at all for a conversation with no events.
/// The waits of one request end together, at most [`CATCH_UP_WAIT`] after the first began.
/// A conversation whose ID shows the reader is not in it ([`members_by_id`]) is not looked
/// up, so a read of someone else's chat takes as long whether it exists or not. (A group's
/// conversation is looked up for anyone: only the read model knows its members, and a
/// group's ID is no secret.)
pub struct CatchUp<'a> {
    log: &'a EventLog,
    pool: &'a Pool,
    user_id: &'a str,
    deadline: Option<Instant>,
    conversations: usize,
    /// What was waited for: a subject, the projection that applies it, and its last event.
    awaited: Vec<(Subject, &'static str, i32, u64)>,
}

impl<'a> CatchUp<'a> {
    /// For one request of `user_id`.
    pub fn new(log: &'a EventLog, pool: &'a Pool, user_id: &'a str) -> Self {
        Self {
            log,
            pool,
            user_id,
            deadline: None,
            conversations: 0,
            awaited: Vec::new(),
        }
    }

    /// Waits until the read model shows every event of `conversation_id` stored so far;
    /// `true` if the conversation has events the caller may not have seen and should read
    /// again. A failure to tell only ends the wait: the caller answers with what it has.
    pub async fn wait(&mut self, conversation_id: &str) -> bool {
        if self.conversations >= CATCH_UP_CONVERSATIONS
            || self
                .deadline
                .is_some_and(|deadline| Instant::now() >= deadline)
        {
            return false;
        }
        let (group, twin) = match members_by_id(self.user_id, conversation_id) {
            IdMembers::Outside => return false,
            IdMembers::Pair => (None, false),
            IdMembers::Group(group) => (Some(group), false),
            IdMembers::GroupTwin(group) => (Some(group), true),
        };
        let Ok(timeline) = Subject::timeline(conversation_id) else {
            // Not an ID the log could hold.
            return false;
        };
        self.conversations += 1;
        let deadline = *self
            .deadline
            .get_or_insert_with(|| Instant::now() + CATCH_UP_WAIT);
        // What to wait for: the group's log (its members' rows) in the groups projection,
        // the timeline in the messages projection. The group's log is read first: a twin
        // whose group has none is a pair the reader is not in.
        let mut lasts = Vec::new();
        if let Some(group) = group {
            let group_log = Subject::conversation(
                &chat_conversation_id(SessionType::Group, "", "", group),
                ConversationKind::Group,
            );
            let last = match &group_log {
                Ok(subject) => self.last_sequence(subject).await,
                Err(_) => None,
            };
            match (group_log, last) {
                (Ok(subject), Some(last)) => {
                    lasts.push((subject, groups::NAME, groups::VERSION, last));
                }
                _ if twin => return false,
                _ => {}
            }
        }
        if let Some(last) = self.last_sequence(&timeline).await {
            lasts.push((timeline, messages::NAME, messages::VERSION, last));
        }
        for (_, name, version, last) in &lasts {
            self.applied(name, *version, *last, deadline).await;
        }
        let waited = !lasts.is_empty();
        self.awaited.extend(lasts);
        waited
    }

    /// After the caller read again: whether a subject waited for has had events stored
    /// since. If so, this waits for the projections to apply those too and returns `true`,
    /// and the caller reads once more. A client pushed such an event may already have asked
    /// again, and the JS SDK keeps whichever answer for a conversation comes last, so an
    /// answer must not be older than the pushes that went out while it was read.
    pub async fn moved(&mut self) -> bool {
        let Some(deadline) = self.deadline.filter(|deadline| Instant::now() < *deadline) else {
            return false;
        };
        let mut moved = false;
        for index in 0..self.awaited.len() {
            let (subject, name, version, last) = &self.awaited[index];
            let (name, version, last) = (*name, *version, *last);
            let Some(now) = self.last_sequence(subject).await.filter(|now| *now > last) else {
                continue;
            };
            self.applied(name, version, now, deadline).await;
            self.awaited[index].3 = now;
            moved = true;
        }
        moved
    }

    /// Waits until projection `name` has applied `last`, at most until `deadline`.
    async fn applied(&self, name: &'static str, version: i32, last: u64, deadline: Instant) {
        let started = Instant::now();
        let left = deadline.saturating_duration_since(started);
        let outcome = match projection::wait_for(
            self.pool,
            self.log.hurry(),
            name,
            version,
            last,
            left,
        )
        .await
        {
            Ok(true) => "caught_up",
            Ok(false) => {
                tracing::warn!(
                    projection = name,
                    stream_sequence = last,
                    "the projection did not catch up in time; answering with what it has"
                );
                "timed_out"
            }
            Err(error) => {
                tracing::warn!(%error, projection = name, "cannot tell whether the projection caught up");
                "failed"
            }
        };
        metrics::histogram!("jetim_sync_catch_up_seconds", "projection" => name, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
    }

    /// The stream sequence of the last event on `subject`, if there is one and it can be
    /// read; asked of the stream's leader, as a replica may be behind.
    async fn last_sequence(&self, subject: &Subject) -> Option<u64> {
        match self.log.last_sequence_at_leader(subject).await {
            Ok(last) => last,
            Err(error) => {
                tracing::warn!(%error, %subject, "cannot tell what the log holds; answering from the read model");
                None
            }
        }
    }
}

fn invalid(reason: String) -> SyncError {
    SyncError::Rejected(Rejection::Invalid(reason))
}

fn seq_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// A placeholder for a seq whose message is not there: `{seq, status: 4}`.
pub fn placeholder(seq: u64) -> MsgData {
    MsgData {
        seq: seq_i64(seq),
        status: 4,
        ..MsgData::default()
    }
}

/// The max seq of each of the user's conversations that has messages.
pub async fn newest_seqs(pool: &Pool, user_id: &str) -> Result<GetMaxSeqResp, SyncError> {
    Ok(GetMaxSeqResp {
        max_seqs: messages::max_seqs(pool, user_id).await?,
        min_seqs: BTreeMap::new(),
    })
}

/// Where `pulled` goes in a reply: chat conversations under `msgs`, `n_` ones under
/// `notificationMsgs`.
fn file(
    msgs: &mut BTreeMap<String, PullMsgs>,
    notification_msgs: &mut BTreeMap<String, PullMsgs>,
    conversation_id: &str,
    pulled: PullMsgs,
) {
    if is_notification_conversation(conversation_id) {
        notification_msgs.insert(conversation_id.to_owned(), pulled);
    } else {
        msgs.insert(conversation_id.to_owned(), pulled);
    }
}

fn check_order(order: i32) -> Result<bool, SyncError> {
    match order {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(invalid(format!("order {other} is not 0 or 1"))),
    }
}

/// Messages by seq range: per range, only conversations the user has; the range clamped to
/// their window; the newest `num` seqs of it; a placeholder for a seq without a message.
pub async fn pull_by_ranges(
    pool: &Pool,
    log: &EventLog,
    user_id: &str,
    request: &PullMessageBySeqsReq,
) -> Result<PullMessageBySeqsResp, SyncError> {
    if request.seq_ranges.len() > MAX_RANGES {
        return Err(invalid(format!(
            "seqRanges has {} ranges; at most {MAX_RANGES}",
            request.seq_ranges.len()
        )));
    }
    let descending = check_order(request.order)?;
    for range in &request.seq_ranges {
        if range.conversation_id.is_empty() {
            return Err(invalid("seqRanges.conversationID is empty".to_owned()));
        }
        if !(1..=MAX_NUM).contains(&range.num) {
            return Err(invalid(format!(
                "seqRanges.num {} for {} is not between 1 and {MAX_NUM}",
                range.num, range.conversation_id
            )));
        }
        if range.begin > range.end || range.begin < 0 {
            return Err(invalid(format!(
                "seqRanges for {} runs backwards or below 0 ({} .. {})",
                range.conversation_id, range.begin, range.end
            )));
        }
    }
    let mut reply = PullMessageBySeqsResp::default();
    let mut catch_up = CatchUp::new(log, pool, user_id);
    for range in &request.seq_ranges {
        let asked_begin = u64::try_from(range.begin).unwrap_or(0);
        let asked_end = u64::try_from(range.end).unwrap_or(0);
        let mut window = messages::member_window(pool, user_id, &range.conversation_id).await?;
        if window.is_none_or(|(_, max)| max < asked_end)
            && catch_up.wait(&range.conversation_id).await
        {
            window = messages::member_window(pool, user_id, &range.conversation_id).await?;
        }
        let Some((window_start, max)) = window else {
            continue;
        };
        if max == 0 {
            continue;
        }
        let begin = asked_begin.max(window_start);
        let end = asked_end.min(max);
        if end < begin {
            continue;
        }
        let num = u64::try_from(range.num).unwrap_or(1);
        let begin = begin.max(end.saturating_sub(num - 1));
        let found = messages::range(pool, &range.conversation_id, begin, end, user_id).await?;
        let mut pulled: Vec<MsgData> = (begin..=end)
            .map(|seq| found.get(&seq).map_or_else(|| placeholder(seq), as_pulled))
            .collect();
        let is_end = if descending {
            pulled.reverse();
            asked_begin <= window_start
        } else {
            max <= asked_end
        };
        file(
            &mut reply.msgs,
            &mut reply.notification_msgs,
            &range.conversation_id,
            PullMsgs {
                msgs: pulled,
                is_end,
                end_seq: 0,
            },
        );
    }
    Ok(reply)
}

/// Messages by seq (WS 1005): every named conversation is answered, empty when the user has
/// no row for it; seqs inside the user's window return the message or a placeholder, seqs
/// outside are dropped, and asking past an end of the window says so with `isEnd`/`endSeq`.
pub async fn pull_by_seqs(
    pool: &Pool,
    log: &EventLog,
    user_id: &str,
    request: &GetSeqMessageReq,
) -> Result<GetSeqMessageResp, SyncError> {
    if request.conversations.len() > MAX_RANGES {
        return Err(invalid(format!(
            "conversations has {} entries; at most {MAX_RANGES}",
            request.conversations.len()
        )));
    }
    let descending = check_order(request.order)?;
    for conversation in &request.conversations {
        if conversation.conversation_id.is_empty() {
            return Err(invalid("conversations.conversationID is empty".to_owned()));
        }
        if i64::try_from(conversation.seqs.len()).unwrap_or(i64::MAX) > MAX_NUM {
            return Err(invalid(format!(
                "conversations.seqs for {} names {} seqs; at most {MAX_NUM}",
                conversation.conversation_id,
                conversation.seqs.len()
            )));
        }
    }
    let mut reply = GetSeqMessageResp::default();
    let mut catch_up = CatchUp::new(log, pool, user_id);
    for conversation in &request.conversations {
        let mut pulled = PullMsgs::default();
        let highest = conversation.seqs.iter().copied().max().unwrap_or(0);
        let highest = u64::try_from(highest).unwrap_or(0);
        let mut window =
            messages::member_window(pool, user_id, &conversation.conversation_id).await?;
        if window.is_none_or(|(_, max)| max < highest)
            && catch_up.wait(&conversation.conversation_id).await
        {
            window = messages::member_window(pool, user_id, &conversation.conversation_id).await?;
        }
        if let Some((start, max)) = window {
            let mut inside: Vec<u64> = Vec::new();
            for &seq in &conversation.seqs {
                let seq = u64::try_from(seq).unwrap_or(0);
                if seq < start {
                    if descending {
                        pulled.is_end = true;
                        pulled.end_seq = seq_i64(start);
                    }
                } else if seq > max {
                    if !descending {
                        pulled.is_end = true;
                        pulled.end_seq = seq_i64(max);
                    }
                } else {
                    inside.push(seq);
                }
            }
            inside.sort_unstable();
            inside.dedup();
            if !inside.is_empty() {
                let found =
                    messages::at_seqs(pool, &conversation.conversation_id, &inside, user_id)
                        .await?;
                pulled.msgs = inside
                    .iter()
                    .map(|seq| found.get(seq).map_or_else(|| placeholder(*seq), as_pulled))
                    .collect();
                if descending {
                    pulled.msgs.reverse();
                }
            }
        }
        file(
            &mut reply.msgs,
            &mut reply.notification_msgs,
            &conversation.conversation_id,
            pulled,
        );
    }
    Ok(reply)
}

fn check_conversation_ids(conversation_ids: &[String]) -> Result<(), SyncError> {
    if conversation_ids.len() > MAX_CONVERSATIONS {
        return Err(invalid(format!(
            "conversationIDs has {} IDs; at most {MAX_CONVERSATIONS}",
            conversation_ids.len()
        )));
    }
    if conversation_ids.iter().any(String::is_empty) {
        return Err(invalid("conversationIDs holds an empty ID".to_owned()));
    }
    Ok(())
}

/// Max seq, read position and last message time of the user's conversations (all, or those
/// named), and their pinned conversations when asked.
pub async fn read_and_max_seqs(
    pool: &Pool,
    user_id: &str,
    conversation_ids: &[String],
    return_pinned: bool,
) -> Result<GetConversationsHasReadAndMaxSeqResp, SyncError> {
    check_conversation_ids(conversation_ids)?;
    let named = (!conversation_ids.is_empty()).then_some(conversation_ids);
    let states = messages::seq_states(pool, user_id, named).await?;
    let pinned_conversation_ids = if return_pinned {
        conversations::list(pool, user_id, None)
            .await?
            .into_iter()
            .filter(|row| row.is_pinned)
            .map(|row| row.conversation_id)
            .collect()
    } else {
        Vec::new()
    };
    Ok(GetConversationsHasReadAndMaxSeqResp {
        seqs: states
            .into_iter()
            .map(|(conversation_id, state)| {
                (
                    conversation_id,
                    Seqs {
                        max_seq: seq_i64(state.max_seq),
                        has_read_seq: seq_i64(state.has_read_seq),
                        max_seq_time: state.max_seq_time,
                    },
                )
            })
            .collect(),
        pinned_conversation_i_ds: pinned_conversation_ids,
    })
}

/// The newest message the user can read in each named conversation, as they see it;
/// conversations without one are left out.
pub async fn last_messages(
    pool: &Pool,
    user_id: &str,
    conversation_ids: &[String],
) -> Result<GetLastMessageResp, SyncError> {
    check_conversation_ids(conversation_ids)?;
    let mut reply = GetLastMessageResp::default();
    for conversation_id in conversation_ids {
        let Some((start, max)) = messages::member_window(pool, user_id, conversation_id).await?
        else {
            continue;
        };
        if max == 0 || max < start {
            continue;
        }
        let found = messages::at_seqs(pool, conversation_id, &[max], user_id).await?;
        let last = found.get(&max).map_or_else(|| placeholder(max), as_pulled);
        reply.msgs.insert(conversation_id.clone(), last);
    }
    Ok(reply)
}
