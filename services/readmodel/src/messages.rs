//! The messages projection, version 1: messages by seq, clientMsgID lookups, conversation
//! max seqs and users' conversation rows, from `im.conv.*.msg`.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use deadpool_postgres::Pool;
use jetim_schemas::event::Event as _;
use jetim_schemas::events::msg::{
    ConversationCleared, ConversationRead, MsgRevoked, MsgSent, MsgsDeleted, ReadMode,
};
use jetim_streams::RecordedEvent;
use jetim_streams::consume::{BatchHandler, DurableSpec, HandleError};
use jetim_streams::subject::{CONVERSATION_STREAM, ConversationKind, every_conversation};

use tokio_postgres::Row;

use crate::conversations::VISIBLE;
use crate::versions::{ChangeState, Log, record_changes};
use crate::{ReadModelError, projection};

/// The projection's name in the registry.
pub const NAME: &str = "messages";
/// The version this build writes and reads.
pub const VERSION: i32 = 1;

/// The durable consumer that feeds the projection.
pub fn consumer_spec() -> DurableSpec {
    let mut spec = DurableSpec::new(
        CONVERSATION_STREAM,
        &crate::projection::consumer_name(NAME, VERSION),
    );
    spec.filter_subjects = [
        ConversationKind::Timeline,
        ConversationKind::Read,
        ConversationKind::Revoke,
        ConversationKind::Delete,
    ]
    .into_iter()
    .map(every_conversation)
    .collect();
    // The projection reads most of IM_CONV (all but the groups' own events): under a backlog
    // the server's search through four filters delivered batches of about 260 events at
    // about 900 events a second where the unfiltered stream gives full batches
    // (`jetim bench chat` at 3,000/s: delivered 1,350/s, then 2,843/s and kept up).
    spec.filter_on_server = false;
    // A conversation's own rows (its max seq, its members' rows and read positions) are
    // written once per batch, so under load larger batches cost less per message: with 500
    // pairs chatting at 4,000 messages a second, batches of 500 left deliveries at p50 67 ms,
    // of 2,000 at 15 ms (`jetim bench chat`). A batch only fills when events wait, so a quiet
    // system still applies each event alone. A consumer made by an earlier build keeps its
    // limit of 500 unacknowledged events, and with it batches of 500.
    spec.batch_size = 2000;
    spec.busy_linger = BUSY_LINGER;
    spec
}

/// Batches start at least this far apart (see [`DurableSpec::busy_linger`]) unless the
/// projection is behind or hurried: so it applies at most 40 batches a second while nobody
/// waits on it, and an event that comes when the last batch began longer ago than this is
/// applied at once.
/// Nothing waits for this projection on a message's way to its recipients (pushes do not),
/// only the reads that catch up with it (a pull past what it has, a conversation lookup)
/// and the REST writes that wait to be readable. Those of the projection's own process
/// hurry it ([`jetim_streams::consume::Hurry`]), so its linger costs them nothing; those of
/// another process wait this much longer at most.
/// At 6,000 msg/s of chat, five runs each in turns, Postgres took 405–426 ms of CPU a
/// second with it against 502–612 without, the whole machine 1,797–1,878 ms against
/// 1,923–2,006. Until every batch counted (only those of 32 events or more did), each
/// message below about 1,300 msg/s was a batch of its own: at 1,000 msg/s, jetim,
/// nats-server and Postgres spent about twice the CPU they have spent since
/// (docs/performance.md).
pub const BUSY_LINGER: std::time::Duration = std::time::Duration::from_millis(25);

/// What batches of this projection split by to be applied side by side (see
/// [`crate::AnyProjection::partition_key`]): the conversation an event is about, as its
/// subject's token, without the prefix before the first `_`. A chat's message also writes
/// its members' rows of the `n_` twin (`si_a_b` writes `n_a_b`), so the two must share a
/// lane: a clear of the twin applied ahead of the message that makes its row would find none.
pub fn partition_key(event: &RecordedEvent) -> &str {
    let token = jetim_streams::subject::id_token(&event.subject).unwrap_or_default();
    token.split_once('_').map_or(token, |(_, rest)| rest)
}

/// The message a clientMsgID first became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original {
    /// Its seq.
    pub seq: u64,
    /// Its serverMsgID.
    pub server_msg_id: String,
    /// Its send time.
    pub send_time: i64,
}

/// The message that `client_msg_id` first became in `conversation_id`, if any.
pub async fn original(
    pool: &Pool,
    conversation_id: &str,
    client_msg_id: &str,
) -> Result<Option<Original>, ReadModelError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT seq, server_msg_id, send_time FROM messages_v1
             WHERE conversation_id = $1 AND client_msg_id = $2
             ORDER BY seq LIMIT 1",
            &[&conversation_id, &client_msg_id],
        )
        .await?;
    Ok(row.map(|row| Original {
        seq: u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
        server_msg_id: row.get(1),
        send_time: row.get(2),
    }))
}

/// The max seq of a conversation as a member sees it (`u`: their row, `s`: the
/// conversation's seqs): capped by the row's `max_seq` (set when they left a group) when it
/// is not 0.
const USER_MAX_SEQ: &str = "CASE WHEN u.max_seq > 0 THEN LEAST(coalesce(s.max_seq, 0), u.max_seq)
                                 ELSE coalesce(s.max_seq, 0) END";

/// The max seq of every conversation the user has, with each chat's `n_` twin and the
/// user's own `n_<user>_<user>`; conversations without messages are left out.
pub async fn max_seqs(pool: &Pool, user_id: &str) -> Result<BTreeMap<String, i64>, ReadModelError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT s.conversation_id, {USER_MAX_SEQ}
                 FROM user_conversations_v1 u
                 JOIN conversation_seqs_v1 s ON s.conversation_id = u.conversation_id
                 WHERE u.owner_user_id = $1 AND s.max_seq > 0
                   AND (u.hidden_through_seq IS NULL OR s.max_seq > u.hidden_through_seq)"
            ),
            &[&user_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1)))
        .collect())
}

/// Whether the user has a row for the conversation.
pub async fn has_conversation(
    pool: &Pool,
    user_id: &str,
    conversation_id: &str,
) -> Result<bool, ReadModelError> {
    let client = pool.get().await?;
    Ok(client
        .query_opt(
            "SELECT 1 FROM user_conversations_v1 WHERE owner_user_id = $1 AND conversation_id = $2",
            &[&user_id, &conversation_id],
        )
        .await?
        .is_some())
}

/// A conversation's max seq (0 when it has no messages).
pub async fn max_seq(pool: &Pool, conversation_id: &str) -> Result<u64, ReadModelError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT max_seq FROM conversation_seqs_v1 WHERE conversation_id = $1",
            &[&conversation_id],
        )
        .await?;
    Ok(row.map_or(0, |row| u64::try_from(row.get::<_, i64>(0)).unwrap_or(0)))
}

/// For each conversation (all, or those named) with messages sent before `before` (ms) that
/// are still readable: the highest such seq.
pub async fn last_seqs_before(
    pool: &Pool,
    before: i64,
    conversation_ids: Option<&[String]>,
) -> Result<BTreeMap<String, u64>, ReadModelError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT m.conversation_id, max(m.seq)
             FROM messages_v1 m
             JOIN conversation_seqs_v1 s ON s.conversation_id = m.conversation_id
             WHERE m.send_time < $1 AND ($2::text[] IS NULL OR m.conversation_id = ANY($2))
             GROUP BY m.conversation_id, s.min_seq
             HAVING max(m.seq) >= s.min_seq",
            &[&before, &conversation_ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            (
                row.get::<_, String>(0),
                u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
            )
        })
        .collect())
}

/// A message as the read model holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The message as sent.
    pub message: MsgSent,
    /// Whether the peer has read it (single chats).
    pub is_read: bool,
    /// Its revocation, if it was revoked.
    pub revoked: Option<MsgRevoked>,
    /// Whether the viewer deleted it for themselves.
    pub hidden: bool,
}

/// A message from a row whose columns `first`, `first + 1`, `first + 2` are the body, `is_read`
/// and the revocation (both as text). A body this build cannot read is logged and left out,
/// so the seq reads as a placeholder instead of failing the whole read.
fn stored_message(row: &Row, first: usize, hidden: bool) -> Option<StoredMessage> {
    let body: String = row.get(first);
    let message = match serde_json::from_str::<MsgSent>(&body) {
        Ok(message) => message,
        Err(error) => {
            tracing::error!(%error, "a stored message body does not decode; reading it as missing");
            return None;
        }
    };
    let revoked = row.get::<_, Option<String>>(first + 2).and_then(|revoked| {
        match serde_json::from_str(&revoked) {
            Ok(revoked) => Some(revoked),
            Err(error) => {
                tracing::error!(%error, seq = message.seq, "a stored revocation does not decode");
                None
            }
        }
    });
    Some(StoredMessage {
        message,
        is_read: row.get(first + 1),
        revoked,
        hidden,
    })
}

/// Where a member's readable window starts in a conversation, and its max seq; `None` when
/// the user has no row for it.
pub async fn member_window(
    pool: &Pool,
    user_id: &str,
    conversation_id: &str,
) -> Result<Option<(u64, u64)>, ReadModelError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            &format!(
                "SELECT GREATEST(1, u.min_seq, coalesce(s.min_seq, 0)), {USER_MAX_SEQ}
                 FROM user_conversations_v1 u
                 LEFT JOIN conversation_seqs_v1 s ON s.conversation_id = u.conversation_id
                 WHERE u.owner_user_id = $1 AND u.conversation_id = $2"
            ),
            &[&user_id, &conversation_id],
        )
        .await?;
    Ok(row.map(|row| {
        let number = |index: usize| u64::try_from(row.get::<_, i64>(index)).unwrap_or(0);
        (number(0), number(1))
    }))
}

/// The messages of a conversation with seqs in `[begin, end]` as `viewer` sees them, by seq.
/// Messages deleted for everyone are left out (they read as placeholders).
pub async fn range(
    pool: &Pool,
    conversation_id: &str,
    begin: u64,
    end: u64,
    viewer: &str,
) -> Result<BTreeMap<u64, StoredMessage>, ReadModelError> {
    let client = pool.get().await?;
    let begin = i64::try_from(begin).unwrap_or(i64::MAX);
    let end = i64::try_from(end).unwrap_or(i64::MAX);
    let rows = client
        .query(
            "SELECT m.seq, m.body, m.is_read, m.revoked, h.seq IS NOT NULL
             FROM messages_v1 m
             LEFT JOIN hidden_messages_v1 h ON h.owner_user_id = $4
                  AND h.conversation_id = m.conversation_id AND h.seq = m.seq
             WHERE m.conversation_id = $1 AND m.seq BETWEEN $2 AND $3 AND NOT m.deleted
             ORDER BY m.seq",
            &[&conversation_id, &begin, &end, &viewer],
        )
        .await?;
    // The connection goes back before the bodies are decoded, which takes about as long as
    // the query for a page of 1,000: under a burst of pulls the pool's wait is the queue.
    drop(client);
    Ok(by_seq(&rows))
}

/// The messages of a conversation at exactly these seqs, as `viewer` sees them, by seq.
pub async fn at_seqs(
    pool: &Pool,
    conversation_id: &str,
    seqs: &[u64],
    viewer: &str,
) -> Result<BTreeMap<u64, StoredMessage>, ReadModelError> {
    let client = pool.get().await?;
    let seqs: Vec<i64> = seqs
        .iter()
        .map(|seq| i64::try_from(*seq).unwrap_or(i64::MAX))
        .collect();
    let rows = client
        .query(
            "SELECT m.seq, m.body, m.is_read, m.revoked, h.seq IS NOT NULL
             FROM messages_v1 m
             LEFT JOIN hidden_messages_v1 h ON h.owner_user_id = $3
                  AND h.conversation_id = m.conversation_id AND h.seq = m.seq
             WHERE m.conversation_id = $1 AND m.seq = ANY($2) AND NOT m.deleted",
            &[&conversation_id, &seqs, &viewer],
        )
        .await?;
    drop(client);
    Ok(by_seq(&rows))
}

/// Rows of (seq, body, is_read, revoked, hidden) as messages by seq.
fn by_seq(rows: &[Row]) -> BTreeMap<u64, StoredMessage> {
    rows.iter()
        .filter_map(|row| {
            let seq = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
            stored_message(row, 1, row.get(4)).map(|stored| (seq, stored))
        })
        .collect()
}

/// The newest message of each named conversation, in one query.
pub async fn last_messages(
    pool: &Pool,
    conversation_ids: &[String],
) -> Result<BTreeMap<String, StoredMessage>, ReadModelError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT m.conversation_id, m.body, m.is_read, m.revoked
             FROM conversation_seqs_v1 s
             JOIN messages_v1 m ON m.conversation_id = s.conversation_id AND m.seq = s.max_seq
             WHERE s.conversation_id = ANY($1) AND NOT m.deleted",
            &[&conversation_ids],
        )
        .await?;
    drop(client);
    Ok(rows
        .iter()
        .filter_map(|row| {
            stored_message(row, 1, false).map(|stored| (row.get::<_, String>(0), stored))
        })
        .collect())
}

/// What [`search`] filters on; `None` matches anything.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    /// Sender.
    pub send_id: Option<String>,
    /// Receiver (single and notification sessions).
    pub recv_id: Option<String>,
    /// Content type.
    pub content_type: Option<i32>,
    /// Session type.
    pub session_type: Option<i32>,
    /// Sent within `[from, to)` milliseconds.
    pub sent_between: Option<(i64, i64)>,
}

/// Stored messages matching `filter`, newest first, and how many match in all. Messages
/// deleted for everyone are not found.
pub async fn search(
    pool: &Pool,
    filter: &MessageFilter,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<StoredMessage>), ReadModelError> {
    let client = pool.get().await?;
    let (from, to) = filter
        .sent_between
        .map_or((None, None), |(from, to)| (Some(from), Some(to)));
    // The body is the event's JSON as text, parsed here only for the rows the filters reach.
    // jsonb refuses `\u0000` (a NUL character, which a nickname or `ex` may hold), so it is
    // read as `\u0001`: wherever those six characters stand in valid JSON, the result is
    // valid JSON too (after an escaped backslash they are plain text either way).
    let field = |name: &str| format!("replace(body, '\\u0000', '\\u0001')::jsonb->>'{name}'");
    let condition = format!(
        "NOT deleted
        AND ($1::text IS NULL OR send_id = $1)
        AND ($2::text IS NULL OR {recv_id} = $2)
        AND ($3::int IS NULL OR content_type = $3)
        AND ($4::int IS NULL OR ({session_type})::int = $4)
        AND ($5::bigint IS NULL OR send_time >= $5)
        AND ($6::bigint IS NULL OR send_time < $6)",
        recv_id = field("recv_id"),
        session_type = field("session_type"),
    );
    let filters: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
        &filter.send_id,
        &filter.recv_id,
        &filter.content_type,
        &filter.session_type,
        &from,
        &to,
    ];
    let total: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM messages_v1 WHERE {condition}"),
            &filters,
        )
        .await?
        .get(0);
    let mut parameters = filters.to_vec();
    parameters.extend([
        &offset as &(dyn tokio_postgres::types::ToSql + Sync),
        &limit,
    ]);
    let rows = client
        .query(
            &format!(
                "SELECT body, is_read, revoked FROM messages_v1 WHERE {condition}
                 ORDER BY send_time DESC, conversation_id, seq DESC OFFSET $7 LIMIT $8"
            ),
            &parameters,
        )
        .await?;
    drop(client);
    let found = rows
        .iter()
        .filter_map(|row| stored_message(row, 0, false))
        .collect();
    Ok((total, found))
}

/// A member's read state in one conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqState {
    /// The conversation's max seq.
    pub max_seq: u64,
    /// The member's read position.
    pub has_read_seq: u64,
    /// When the newest message was sent, milliseconds.
    pub max_seq_time: i64,
}

/// Max seq, read position and last message time of the user's conversations (all of them,
/// or those named).
pub async fn seq_states(
    pool: &Pool,
    user_id: &str,
    conversation_ids: Option<&[String]>,
) -> Result<BTreeMap<String, SeqState>, ReadModelError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT u.conversation_id, {USER_MAX_SEQ}, coalesce(r.has_read_seq, 0),
                    coalesce(s.max_seq_time, 0)
             FROM user_conversations_v1 u
             LEFT JOIN conversation_seqs_v1 s ON s.conversation_id = u.conversation_id
             LEFT JOIN read_seqs_v1 r
                    ON r.owner_user_id = u.owner_user_id AND r.conversation_id = u.conversation_id
             WHERE u.owner_user_id = $1 AND ($2::text[] IS NULL OR u.conversation_id = ANY($2))
               AND {VISIBLE}"
            ),
            &[&user_id, &conversation_ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let number = |index: usize| u64::try_from(row.get::<_, i64>(index)).unwrap_or(0);
            (
                row.get::<_, String>(0),
                SeqState {
                    max_seq: number(1),
                    has_read_seq: number(2),
                    max_seq_time: row.get(3),
                },
            )
        })
        .collect())
}

/// A read position change folded over a batch, per (owner, conversation).
#[derive(Debug, Clone, Copy, Default)]
struct ReadFold {
    /// The value a `Set` in the batch fixed (later raises included).
    set: Option<u64>,
    /// The highest raise when no `Set` came.
    raise: u64,
    /// The stream sequence of the last event folded in.
    sequence: i64,
}

impl ReadFold {
    fn raise(&mut self, seq: u64, sequence: i64) {
        match &mut self.set {
            Some(value) => *value = (*value).max(seq),
            None => self.raise = self.raise.max(seq),
        }
        self.sequence = sequence;
    }

    fn set(&mut self, seq: u64, sequence: i64) {
        self.set = Some(seq);
        self.raise = 0;
        self.sequence = sequence;
    }
}

/// Applies `msg.sent` and `conversation.read` events.
pub struct MessagesProjection {
    pool: Pool,
    /// Batches of at least this many messages write them with `COPY`.
    copy_from: usize,
    /// Conversation rows (owner and conversation, see [`row_key`]) this projection has seen
    /// committed, at most [`ROWS_KEPT`]. Nothing deletes such a row (a delete hides it), so
    /// a batch need not ask Postgres to make one of these again: that `INSERT … ON CONFLICT
    /// DO NOTHING` of every member's rows was a tenth of the statements' time in a rebuild.
    made: HashSet<String>,
}

/// At most this many conversation rows are remembered as made (about 10 MB); past it the
/// set starts again empty.
const ROWS_KEPT: usize = 100_000;

/// An event's body as the text a message row stores. Bodies are JSON, so UTF-8, and checked
/// the fast way: `String::from_utf8_lossy` alone walks every byte through its replacement
/// loop (about 4% of jetim's CPU in a rebuild); only a body that fails the check goes
/// through it.
fn body_text(payload: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(payload) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(payload),
    }
}

/// The key of a conversation row in [`MessagesProjection::made`]. Postgres' text holds no
/// NUL, so the pair reads back unambiguously.
fn row_key(owner: &str, conversation: &str) -> String {
    format!("{owner}\0{conversation}")
}

/// A batch of at least this many messages writes them with `COPY` (a rebuild's always do,
/// a live batch while the projection catches up). `COPY` has no `ON CONFLICT`, so it is
/// the fast path for rows that are new, as nearly all are; when one is not (a batch
/// delivered again after its commit), the batch writes them again as below. Measured in
/// `psql`, 200,000 rows shaped like `jetim bench rebuild`'s into `messages_v1`:
/// `INSERT … FROM UNNEST … ON CONFLICT DO NOTHING` in batches of 5,000, 2.39–2.55 s;
/// the same without `ON CONFLICT`, 1.84–2.03 s; `COPY`, 1.45–1.64 s. Below this size the
/// statement goes in the batch's one pipeline instead, as `COPY` takes round trips of its
/// own.
pub const COPY_FROM: usize = 256;

impl MessagesProjection {
    /// A projection writing through `pool`.
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            copy_from: COPY_FROM,
            made: HashSet::new(),
        }
    }

    /// The same, writing batches of at least `messages` messages with `COPY` (tests use
    /// small batches).
    pub fn copying_from(mut self, messages: usize) -> Self {
        self.copy_from = messages.max(1);
        self
    }
}

/// New messages into `messages_v1`, in the columns' order of [`MESSAGE_TYPES`].
const COPY_MESSAGES: &str = "COPY messages_v1 (conversation_id, seq, client_msg_id, server_msg_id,
                                               send_id, send_time, content_type, body,
                                               stream_sequence)
                             FROM STDIN (FORMAT binary)";

/// The types of [`COPY_MESSAGES`]' columns.
const MESSAGE_TYPES: [tokio_postgres::types::Type; 9] = {
    use tokio_postgres::types::Type;
    [
        Type::TEXT,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::INT4,
        Type::TEXT,
        Type::INT8,
    ]
};

/// Writes `messages` with `COPY`, under a savepoint. Returns false, having written nothing,
/// when one of them is already there (the batch came again after its commit); the caller
/// then writes them with `ON CONFLICT DO NOTHING`.
///
/// The rows go in key order (conversation, then seq), not the log's: a batch holds a few
/// messages each of many conversations, and in the log's order each row's key goes to
/// another leaf of the primary key than the row before's. In key order the rows of a
/// conversation go into one leaf together. Measured in `psql`, 200,000 rows shaped like
/// `jetim bench rebuild`'s (1,000 conversations) into `messages_v1`: `COPY` in the log's
/// order 1.36–1.40 s, sorted within each 10,000, 0.88–0.90 s.
async fn copy_new_messages(
    transaction: &mut deadpool_postgres::Transaction<'_>,
    messages: &[(Sent<'_>, i64, Cow<'_, str>)],
) -> Result<bool, tokio_postgres::Error> {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    let savepoint = transaction.savepoint("copy_messages").await?;
    let copied = async {
        let statement = savepoint.prepare_cached(COPY_MESSAGES).await?;
        let sink = savepoint.copy_in(&statement).await?;
        let writer = BinaryCopyInWriter::new(sink, &MESSAGE_TYPES);
        futures::pin_mut!(writer);
        let mut in_key_order: Vec<_> = messages.iter().collect();
        in_key_order.sort_unstable_by(|(a, _, _), (b, _, _)| {
            (a.conversation_id.as_ref(), a.seq).cmp(&(b.conversation_id.as_ref(), b.seq))
        });
        for (message, sequence, body) in in_key_order {
            let seq = i64::try_from(message.seq).unwrap_or(i64::MAX);
            writer
                .as_mut()
                .write(&[
                    &message.conversation_id.as_ref(),
                    &seq,
                    &message.client_msg_id.as_ref(),
                    &message.server_msg_id.as_ref(),
                    &message.send_id.as_ref(),
                    &message.send_time,
                    &message.content_type,
                    &body.as_ref(),
                    sequence,
                ])
                .await?;
        }
        writer.finish().await
    }
    .await;
    match copied {
        Ok(_) => {
            savepoint.commit().await?;
            Ok(true)
        }
        Err(error) if error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            savepoint.rollback().await?;
            metrics::counter!("jetim_projection_copy_conflicts_total", "projection" => NAME)
                .increment(1);
            Ok(false)
        }
        Err(error) => Err(error),
    }
}

/// A conversation row to make: (owner, conversation, type, peer user, group).
type ConversationRow = (String, String, i32, String, String);

/// What the projection reads of a `msg.sent`, its strings borrowed from the event's body
/// where they hold no escape. Decoding the whole event made a string of each of its fields,
/// the content among them, for every message. The other fields are not checked here: a
/// body the append path could not have written, with these fields right and another one
/// wrong, is stored, and its reads log it and leave it out (`stored_message`).
#[derive(Debug, serde::Deserialize)]
struct Sent<'a> {
    #[serde(borrow)]
    conversation_id: Cow<'a, str>,
    seq: u64,
    #[serde(borrow)]
    server_msg_id: Cow<'a, str>,
    #[serde(borrow)]
    client_msg_id: Cow<'a, str>,
    #[serde(borrow)]
    send_id: Cow<'a, str>,
    #[serde(borrow)]
    recv_id: Cow<'a, str>,
    session_type: i32,
    content_type: i32,
    send_time: i64,
}

fn conversation_rows(message: &Sent<'_>) -> Vec<ConversationRow> {
    let conversation = &message.conversation_id;
    let twin = |id: &str| match id.split_once('_') {
        Some((_, rest)) => format!("n_{rest}"),
        None => format!("n_{id}"),
    };
    let mut rows = Vec::new();
    match message.session_type {
        1 => {
            for (owner, peer) in [
                (&message.send_id, &message.recv_id),
                (&message.recv_id, &message.send_id),
            ] {
                rows.push((
                    owner.to_string(),
                    conversation.to_string(),
                    1,
                    peer.to_string(),
                    String::new(),
                ));
                if !conversation.starts_with("n_") {
                    rows.push((
                        owner.to_string(),
                        twin(conversation),
                        1,
                        peer.to_string(),
                        String::new(),
                    ));
                }
            }
        }
        4 => {
            rows.push((
                message.recv_id.to_string(),
                conversation.to_string(),
                4,
                message.send_id.to_string(),
                String::new(),
            ));
        }
        _ => {}
    }
    rows
}

impl BatchHandler for MessagesProjection {
    async fn apply(&mut self, batch: &[RecordedEvent]) -> Result<(), HandleError> {
        let mut messages: Vec<(Sent<'_>, i64, Cow<'_, str>)> = Vec::with_capacity(batch.len());
        let mut reads: BTreeMap<(String, String), ReadFold> = BTreeMap::new();
        // Peer messages marked read: (conversation, reader, first seq, last seq).
        let mut marked: Vec<(String, String, i64, i64)> = Vec::new();
        // Revocations: (conversation, seq, event body).
        let mut revoked: Vec<(String, i64, String)> = Vec::new();
        // Deletions: (owner, conversation, seq) hidden for one; (conversation, seq) for all.
        let mut hidden: Vec<(String, String, i64)> = Vec::new();
        let mut deleted: Vec<(String, i64)> = Vec::new();
        // Clears: (owner, conversation, min seq) for one; (conversation, min seq) for all.
        let mut cleared_for: Vec<(String, String, i64)> = Vec::new();
        let mut cleared_all: Vec<(String, i64)> = Vec::new();
        let mut last_sequence = 0;
        for event in batch {
            last_sequence = last_sequence.max(event.stream_sequence);
            let sequence = i64::try_from(event.stream_sequence).unwrap_or(i64::MAX);
            let poison = |error: jetim_schemas::event::DecodeError| HandleError::Poison {
                stream_sequence: event.stream_sequence,
                reason: error.to_string(),
            };
            if event.kind == MsgSent::KIND {
                let message: Sent<'_> = event.decode_part::<MsgSent, _>().map_err(poison)?;
                // A sender has read what they sent.
                reads
                    .entry((
                        message.send_id.to_string(),
                        message.conversation_id.to_string(),
                    ))
                    .or_default()
                    .raise(message.seq, sequence);
                messages.push((message, sequence, body_text(&event.payload)));
            } else if event.kind == MsgsDeleted::KIND {
                let deletion: MsgsDeleted = event.decode().map_err(poison)?;
                for seq in deletion.seqs {
                    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
                    if deletion.for_everyone {
                        deleted.push((deletion.conversation_id.clone(), seq));
                    } else {
                        hidden.push((
                            deletion.user_id.clone(),
                            deletion.conversation_id.clone(),
                            seq,
                        ));
                    }
                }
            } else if event.kind == ConversationCleared::KIND {
                let clear: ConversationCleared = event.decode().map_err(poison)?;
                let min_seq = i64::try_from(clear.min_seq).unwrap_or(i64::MAX);
                // The one who cleared has read everything that was there (an admin's purge
                // by age names no member).
                if !clear.user_id.is_empty() {
                    reads
                        .entry((clear.user_id.clone(), clear.conversation_id.clone()))
                        .or_default()
                        .raise(clear.min_seq.saturating_sub(1), sequence);
                }
                if clear.for_everyone {
                    cleared_all.push((clear.conversation_id, min_seq));
                } else {
                    cleared_for.push((clear.user_id, clear.conversation_id, min_seq));
                }
            } else if event.kind == MsgRevoked::KIND {
                let revoke: MsgRevoked = event.decode().map_err(poison)?;
                revoked.push((
                    revoke.conversation_id,
                    i64::try_from(revoke.seq).unwrap_or(i64::MAX),
                    body_text(&event.payload).into_owned(),
                ));
            } else if event.kind == ConversationRead::KIND {
                let read: ConversationRead = event.decode().map_err(poison)?;
                let fold = reads
                    .entry((read.user_id.clone(), read.conversation_id.clone()))
                    .or_default();
                match read.mode {
                    ReadMode::Raise => fold.raise(read.has_read_seq, sequence),
                    ReadMode::Set => fold.set(read.has_read_seq, sequence),
                }
                if read.conversation_id.starts_with("si_") {
                    let to_i64 = |seq: u64| i64::try_from(seq).unwrap_or(i64::MAX);
                    if read.has_read_seq > read.from_seq && read.mode == ReadMode::Raise {
                        marked.push((
                            read.conversation_id.clone(),
                            read.user_id.clone(),
                            to_i64(read.from_seq + 1),
                            to_i64(read.has_read_seq),
                        ));
                    }
                    for seq in &read.seqs {
                        marked.push((
                            read.conversation_id.clone(),
                            read.user_id.clone(),
                            to_i64(*seq),
                            to_i64(*seq),
                        ));
                    }
                }
            }
        }
        // Each conversation's newest message in the batch: (seq, send time).
        let mut maxima: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for (message, _, _) in &messages {
            let seq = i64::try_from(message.seq).unwrap_or(i64::MAX);
            let entry = maxima
                .entry(message.conversation_id.as_ref())
                .or_insert((seq, message.send_time));
            if seq >= entry.0 {
                *entry = (seq, message.send_time);
            }
        }
        // A message's conversation rows follow from its conversation, session type, sender
        // and receiver, which most messages of a batch share with an earlier one: only the
        // first of each makes rows (made and sorted for every message, they were a fifth of
        // the rebuild's own CPU).
        let mut row_sources: HashSet<(&str, i32, &str, &str)> = HashSet::new();
        let rows: BTreeSet<ConversationRow> = messages
            .iter()
            .filter(|(message, _, _)| {
                row_sources.insert((
                    message.conversation_id.as_ref(),
                    message.session_type,
                    message.send_id.as_ref(),
                    message.recv_id.as_ref(),
                ))
            })
            .flat_map(|(message, _, _)| conversation_rows(message))
            .collect();

        // The rows not seen committed before, with their keys in `made`.
        let unknown: Vec<(&ConversationRow, String)> = rows
            .iter()
            .map(|row| (row, row_key(&row.0, &row.1)))
            .filter(|(_, key)| !self.made.contains(key))
            .collect();

        let mut client = self.pool.get().await.map_err(HandleError::transient)?;
        let mut transaction = client.transaction().await.map_err(HandleError::transient)?;
        let copied = messages.len() >= self.copy_from
            && copy_new_messages(&mut transaction, &messages)
                .await
                .map_err(HandleError::transient)?;

        // Every other write goes out in one pipeline, in the order below (later statements
        // see the rows of earlier ones); the version-log entries they call for follow it.
        let mut pipeline = crate::Pipeline::default();
        // Indexes into the pipeline's results: rows brought back (new or no longer hidden)
        // and rows whose owner cleared them.
        let mut restored = Vec::new();
        let mut cleared = None;
        if !messages.is_empty() && !copied {
            let conversations: Vec<&str> = messages
                .iter()
                .map(|(m, _, _)| m.conversation_id.as_ref())
                .collect();
            let seqs: Vec<i64> = messages
                .iter()
                .map(|(m, _, _)| i64::try_from(m.seq).unwrap_or(i64::MAX))
                .collect();
            let client_msg_ids: Vec<&str> = messages
                .iter()
                .map(|(m, _, _)| m.client_msg_id.as_ref())
                .collect();
            let server_msg_ids: Vec<&str> = messages
                .iter()
                .map(|(m, _, _)| m.server_msg_id.as_ref())
                .collect();
            let senders: Vec<&str> = messages
                .iter()
                .map(|(m, _, _)| m.send_id.as_ref())
                .collect();
            let send_times: Vec<i64> = messages.iter().map(|(m, _, _)| m.send_time).collect();
            let content_types: Vec<i32> = messages.iter().map(|(m, _, _)| m.content_type).collect();
            let bodies: Vec<&str> = messages.iter().map(|(_, _, body)| body.as_ref()).collect();
            let sequences: Vec<i64> = messages.iter().map(|(_, sequence, _)| *sequence).collect();
            // The body goes in as the log holds it. A clientMsgID is looked up through this
            // table's index on it, its lowest seq being the message it first became: a later
            // one (impossible through the send path, but the log is the authority) keeps
            // its own row and seq.
            pipeline.push(
                "INSERT INTO messages_v1 (conversation_id, seq, client_msg_id, server_msg_id,
                                          send_id, send_time, content_type, body,
                                          stream_sequence)
                 SELECT c, s, cm, sm, si, st, ct, b, ss
                 FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                             $6::bigint[], $7::int[], $8::text[], $9::bigint[])
                      AS v(c, s, cm, sm, si, st, ct, b, ss)
                 ON CONFLICT (conversation_id, seq) DO NOTHING",
                crate::parameters![
                    conversations,
                    seqs,
                    client_msg_ids,
                    server_msg_ids,
                    senders,
                    send_times,
                    content_types,
                    bodies,
                    sequences,
                ],
            );
        }
        if !messages.is_empty() {
            let ids: Vec<&str> = maxima.keys().copied().collect();
            let max_seqs: Vec<i64> = maxima.values().map(|(seq, _)| *seq).collect();
            let times: Vec<i64> = maxima.values().map(|(_, time)| *time).collect();
            pipeline.push(
                "INSERT INTO conversation_seqs_v1 AS s (conversation_id, max_seq, max_seq_time)
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[])
                 ON CONFLICT (conversation_id) DO UPDATE SET
                     max_seq = EXCLUDED.max_seq, max_seq_time = EXCLUDED.max_seq_time
                 WHERE s.max_seq < EXCLUDED.max_seq",
                crate::parameters![ids, max_seqs, times],
            );

            if !unknown.is_empty() {
                let owners: Vec<&str> = unknown.iter().map(|(row, _)| row.0.as_str()).collect();
                let ids: Vec<&str> = unknown.iter().map(|(row, _)| row.1.as_str()).collect();
                let types: Vec<i32> = unknown.iter().map(|(row, _)| row.2).collect();
                let peers: Vec<&str> = unknown.iter().map(|(row, _)| row.3.as_str()).collect();
                let groups: Vec<&str> = unknown.iter().map(|(row, _)| row.4.as_str()).collect();
                restored.push(pipeline.push(
                    "INSERT INTO user_conversations_v1
                         (owner_user_id, conversation_id, conversation_type, user_id, group_id)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::int[], $4::text[],
                                          $5::text[])
                     ON CONFLICT DO NOTHING
                     RETURNING owner_user_id, conversation_id",
                    crate::parameters![owners, ids, types, peers, groups],
                ));
            }
            if !rows.is_empty() {
                // A row its owner deleted comes back with the first message after the
                // delete (the conversation's newest in the batch). Only hidden rows are
                // looked at, through their partial index.
                let newest: Vec<(&str, &str, i64)> = rows
                    .iter()
                    .filter_map(|row| {
                        let (seq, _) = maxima.get(row.1.as_str())?;
                        Some((row.0.as_str(), row.1.as_str(), *seq))
                    })
                    .collect();
                let owners: Vec<&str> = newest.iter().map(|row| row.0).collect();
                let ids: Vec<&str> = newest.iter().map(|row| row.1).collect();
                let seqs: Vec<i64> = newest.iter().map(|row| row.2).collect();
                restored.push(pipeline.push(
                    "UPDATE user_conversations_v1 AS u SET hidden_through_seq = NULL
                     FROM UNNEST($1::text[], $2::text[], $3::bigint[]) AS v(o, i, s)
                     WHERE u.owner_user_id = v.o AND u.conversation_id = v.i
                       AND u.hidden_through_seq IS NOT NULL AND u.hidden_through_seq < v.s
                     RETURNING u.owner_user_id, u.conversation_id",
                    crate::parameters![owners, ids, seqs],
                ));
            }

            // A group conversation a member deleted comes back with the group's next message
            // too; the rows themselves are the groups projection's (made on joining).
            let mut groups_newest: BTreeMap<&str, i64> = BTreeMap::new();
            for (message, _, _) in &messages {
                if message.session_type == 3 && message.conversation_id.starts_with("sg_") {
                    let seq = i64::try_from(message.seq).unwrap_or(i64::MAX);
                    let entry = groups_newest
                        .entry(message.conversation_id.as_ref())
                        .or_default();
                    *entry = (*entry).max(seq);
                }
            }
            if !groups_newest.is_empty() {
                let ids: Vec<&str> = groups_newest.keys().copied().collect();
                let seqs: Vec<i64> = groups_newest.values().copied().collect();
                restored.push(pipeline.push(
                    "UPDATE user_conversations_v1 AS u SET hidden_through_seq = NULL
                     FROM UNNEST($1::text[], $2::bigint[]) AS v(i, s)
                     WHERE u.conversation_id = v.i
                       AND u.hidden_through_seq IS NOT NULL AND u.hidden_through_seq < v.s
                       AND (u.max_seq = 0 OR u.max_seq >= v.s)
                     RETURNING u.owner_user_id, u.conversation_id",
                    crate::parameters![ids, seqs],
                ));
            }
        }

        for setting in [true, false] {
            let chosen: Vec<(&(String, String), &ReadFold)> = reads
                .iter()
                .filter(|(_, fold)| fold.set.is_some() == setting)
                .collect();
            if chosen.is_empty() {
                continue;
            }
            let owners: Vec<&str> = chosen
                .iter()
                .map(|((owner, _), _)| owner.as_str())
                .collect();
            let ids: Vec<&str> = chosen.iter().map(|((_, id), _)| id.as_str()).collect();
            let values: Vec<i64> = chosen
                .iter()
                .map(|(_, fold)| i64::try_from(fold.set.unwrap_or(fold.raise)).unwrap_or(i64::MAX))
                .collect();
            let sequences: Vec<i64> = chosen.iter().map(|(_, fold)| fold.sequence).collect();
            // A set replaces the position; a raise never lowers it.
            pipeline.push(
                "INSERT INTO read_seqs_v1 AS r (owner_user_id, conversation_id,
                                                has_read_seq, stream_sequence)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[])
                 ON CONFLICT (owner_user_id, conversation_id) DO UPDATE SET
                     has_read_seq = CASE WHEN $5::boolean THEN EXCLUDED.has_read_seq
                         ELSE GREATEST(r.has_read_seq, EXCLUDED.has_read_seq) END,
                     stream_sequence = EXCLUDED.stream_sequence
                 WHERE r.stream_sequence < EXCLUDED.stream_sequence",
                crate::parameters![owners, ids, values, sequences, setting],
            );
        }

        if !revoked.is_empty() {
            let ids: Vec<&str> = revoked.iter().map(|revoke| revoke.0.as_str()).collect();
            let seqs: Vec<i64> = revoked.iter().map(|revoke| revoke.1).collect();
            let bodies: Vec<&str> = revoked.iter().map(|revoke| revoke.2.as_str()).collect();
            // The first revocation of a message is the one that counts.
            pipeline.push(
                "UPDATE messages_v1 AS m SET revoked = v.body
                 FROM (SELECT DISTINCT ON (c, s) c, s, b
                       FROM UNNEST($1::text[], $2::bigint[], $3::text[])
                            WITH ORDINALITY AS u(c, s, b, n)
                       ORDER BY c, s, n) AS v(conversation_id, seq, body)
                 WHERE m.conversation_id = v.conversation_id AND m.seq = v.seq
                   AND m.revoked IS NULL",
                crate::parameters![ids, seqs, bodies],
            );
        }

        if !hidden.is_empty() {
            let owners: Vec<&str> = hidden.iter().map(|entry| entry.0.as_str()).collect();
            let ids: Vec<&str> = hidden.iter().map(|entry| entry.1.as_str()).collect();
            let seqs: Vec<i64> = hidden.iter().map(|entry| entry.2).collect();
            pipeline.push(
                "INSERT INTO hidden_messages_v1 (owner_user_id, conversation_id, seq)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[])
                 ON CONFLICT DO NOTHING",
                crate::parameters![owners, ids, seqs],
            );
        }
        if !deleted.is_empty() {
            let ids: Vec<&str> = deleted.iter().map(|entry| entry.0.as_str()).collect();
            let seqs: Vec<i64> = deleted.iter().map(|entry| entry.1).collect();
            pipeline.push(
                "UPDATE messages_v1 AS m SET deleted = true
                 FROM UNNEST($1::text[], $2::bigint[]) AS v(conversation_id, seq)
                 WHERE m.conversation_id = v.conversation_id AND m.seq = v.seq",
                crate::parameters![ids, seqs],
            );
        }
        if !cleared_all.is_empty() {
            let ids: Vec<&str> = cleared_all.iter().map(|entry| entry.0.as_str()).collect();
            let minima: Vec<i64> = cleared_all.iter().map(|entry| entry.1).collect();
            pipeline.push(
                "UPDATE conversation_seqs_v1 AS s SET min_seq = GREATEST(s.min_seq, v.min_seq)
                 FROM (SELECT c, max(m) FROM UNNEST($1::text[], $2::bigint[]) AS u(c, m)
                       GROUP BY c) AS v(conversation_id, min_seq)
                 WHERE s.conversation_id = v.conversation_id",
                crate::parameters![ids, minima],
            );
        }
        if !cleared_for.is_empty() {
            let owners: Vec<&str> = cleared_for.iter().map(|entry| entry.0.as_str()).collect();
            let ids: Vec<&str> = cleared_for.iter().map(|entry| entry.1.as_str()).collect();
            let minima: Vec<i64> = cleared_for.iter().map(|entry| entry.2).collect();
            cleared = Some(pipeline.push(
                "UPDATE user_conversations_v1 AS u SET min_seq = v.min_seq
                 FROM (SELECT o, c, max(m) FROM UNNEST($1::text[], $2::text[], $3::bigint[])
                           AS x(o, c, m) GROUP BY o, c) AS v(owner_user_id, conversation_id, min_seq)
                 WHERE u.owner_user_id = v.owner_user_id
                   AND u.conversation_id = v.conversation_id AND u.min_seq < v.min_seq
                 RETURNING u.owner_user_id, u.conversation_id",
                crate::parameters![owners, ids, minima],
            ));
        }

        if !marked.is_empty() {
            let ids: Vec<&str> = marked.iter().map(|mark| mark.0.as_str()).collect();
            let readers: Vec<&str> = marked.iter().map(|mark| mark.1.as_str()).collect();
            let firsts: Vec<i64> = marked.iter().map(|mark| mark.2).collect();
            let lasts: Vec<i64> = marked.iter().map(|mark| mark.3).collect();
            pipeline.push(
                "UPDATE messages_v1 AS m SET is_read = true
                 FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[])
                      AS v(conversation_id, reader, first_seq, last_seq)
                 WHERE m.conversation_id = v.conversation_id AND m.send_id <> v.reader
                   AND m.seq BETWEEN v.first_seq AND v.last_seq AND NOT m.is_read",
                crate::parameters![ids, readers, firsts, lasts],
            );
        }
        pipeline.push(
            projection::ADVANCE,
            crate::parameters![
                NAME,
                VERSION,
                i64::try_from(last_sequence).unwrap_or(i64::MAX)
            ],
        );

        let results = pipeline
            .run(&transaction)
            .await
            .map_err(HandleError::transient)?;
        // The conversations log: rows that appeared or came back, then rows cleared (the last
        // change of a row in the batch is the one recorded).
        let changed = |index: usize, state: ChangeState| {
            results[index]
                .iter()
                .map(move |row| (row.get(0), row.get(1), state))
        };
        let changes: Vec<(String, String, ChangeState)> = restored
            .iter()
            .flat_map(|index| changed(*index, ChangeState::Insert))
            .chain(
                cleared
                    .into_iter()
                    .flat_map(|index| changed(index, ChangeState::Update)),
            )
            .collect();
        record_changes(&transaction, Log::Conversations, &changes)
            .await
            .map_err(HandleError::transient)?;
        transaction.commit().await.map_err(HandleError::transient)?;
        if self.made.len() + unknown.len() > ROWS_KEPT {
            self.made.clear();
        }
        self.made.extend(unknown.into_iter().map(|(_, key)| key));
        Ok(())
    }
}

/// Activity in a time range, for `/statistics/user/active` and `/statistics/group/active`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    /// Messages sent in the range.
    pub msg_count: i64,
    /// Distinct senders, or groups.
    pub active_count: i64,
    /// Messages per UTC day (`YYYY-MM-DD`).
    pub date_count: std::collections::BTreeMap<String, i64>,
    /// The requested page of (sender or group ID, messages), by count.
    pub ranked: Vec<(String, i64)>,
}

/// Messages with user content (content types below 1000, so not notifications) with a send
/// time in `[start, end)` milliseconds, in single chats and, with `groups`, group chats;
/// senders by count, ascending or descending, `offset`/`limit` of them.
pub async fn active_senders(
    pool: &Pool,
    range: (i64, i64),
    groups: bool,
    ascending: bool,
    (offset, limit): (i64, i64),
) -> Result<Activity, ReadModelError> {
    let scope = if groups {
        "(starts_with(conversation_id, 'si_') OR starts_with(conversation_id, 'sg_'))"
    } else {
        "starts_with(conversation_id, 'si_')"
    };
    activity(pool, range, scope, "send_id", ascending, (offset, limit)).await
}

/// As [`active_senders`], ranking the groups whose chats had messages.
pub async fn active_groups(
    pool: &Pool,
    range: (i64, i64),
    ascending: bool,
    (offset, limit): (i64, i64),
) -> Result<Activity, ReadModelError> {
    activity(
        pool,
        range,
        "starts_with(conversation_id, 'sg_')",
        "substr(conversation_id, 4)",
        ascending,
        (offset, limit),
    )
    .await
}

async fn activity(
    pool: &Pool,
    (start, end): (i64, i64),
    scope: &str,
    key: &str,
    ascending: bool,
    (offset, limit): (i64, i64),
) -> Result<Activity, ReadModelError> {
    let client = pool.get().await?;
    let matching = format!(
        "FROM messages_v1
         WHERE send_time >= $1 AND send_time < $2 AND {scope} AND content_type < 1000"
    );
    let totals = client
        .query_one(
            &format!("SELECT count(*), count(DISTINCT {key}) {matching}"),
            &[&start, &end],
        )
        .await?;
    let dates = client
        .query(
            &format!(
                "SELECT to_char(to_timestamp(send_time / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
                        count(*) {matching} GROUP BY 1"
            ),
            &[&start, &end],
        )
        .await?;
    let order = if ascending { "ASC" } else { "DESC" };
    let ranked = client
        .query(
            &format!(
                "SELECT {key} AS k, count(*) AS sent {matching}
                 GROUP BY k ORDER BY sent {order}, k OFFSET $3 LIMIT $4"
            ),
            &[&start, &end, &offset, &limit],
        )
        .await?;
    Ok(Activity {
        msg_count: totals.get(0),
        active_count: totals.get(1),
        date_count: dates
            .iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1)))
            .collect(),
        ranked: ranked
            .iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1)))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_stored_as_it_is_and_bytes_that_are_not_utf8_as_replacements() {
        let body = r#"{"content":"héllo 👋"}"#;
        assert!(matches!(body_text(body.as_bytes()), Cow::Borrowed(text) if text == body));
        let broken = b"{\"content\":\"a\xff\xfeb\"}";
        assert_eq!(body_text(broken), "{\"content\":\"a\u{FFFD}\u{FFFD}b\"}");
    }

    fn event_on(subject: String) -> RecordedEvent {
        RecordedEvent {
            stream_sequence: 1,
            subject,
            kind: String::new(),
            version: 1,
            actor: String::new(),
            seq: None,
            stored_at_ms: 0,
            headers: async_nats::HeaderMap::new(),
            payload: Default::default(),
        }
    }

    #[test]
    fn the_part_of_a_message_read_is_what_the_whole_event_says() {
        // Escapes in the IDs make owned strings, the rest are borrowed.
        let whole = MsgSent {
            conversation_id: "si_a\"b_c".into(),
            seq: 7,
            server_msg_id: "s1".into(),
            client_msg_id: "c\\1\u{0}".into(),
            send_id: "a\"b".into(),
            recv_id: "c".into(),
            group_id: String::new(),
            sender_platform_id: 5,
            sender_nickname: "Ann \u{1F600}".into(),
            sender_face_url: String::new(),
            session_type: 1,
            msg_from: 100,
            content_type: 101,
            content: r#"{"content":"say \"hi\""}"#.into(),
            send_time: 9,
            create_time: 8,
            options: [("history".to_owned(), false)].into(),
            offline_push: None,
            at_user_ids: vec!["c".into()],
            attached_info: String::new(),
            ex: "x".into(),
        };
        let mut event = event_on("im.conv.si_a_c.msg".into());
        event.kind = MsgSent::KIND.into();
        event.payload = jetim_schemas::event::encode(&whole).unwrap().into();
        let part: Sent<'_> = event.decode_part::<MsgSent, _>().unwrap();
        assert_eq!(
            (
                part.conversation_id.as_ref(),
                part.seq,
                part.server_msg_id.as_ref(),
                part.client_msg_id.as_ref(),
                part.send_id.as_ref(),
                part.recv_id.as_ref(),
                part.session_type,
                part.content_type,
                part.send_time,
            ),
            (
                whole.conversation_id.as_str(),
                whole.seq,
                whole.server_msg_id.as_str(),
                whole.client_msg_id.as_str(),
                whole.send_id.as_str(),
                whole.recv_id.as_str(),
                whole.session_type,
                whole.content_type,
                whole.send_time,
            )
        );
        assert!(matches!(part.recv_id, Cow::Borrowed(_)));
        // Kind and version are checked as for the whole event.
        event.version = MsgSent::VERSION + 1;
        assert!(event.decode_part::<MsgSent, Sent<'_>>().is_err());
        event.version = MsgSent::VERSION;
        event.kind = "msg.revoked".into();
        assert!(event.decode_part::<MsgSent, Sent<'_>>().is_err());
    }

    #[test]
    fn a_chat_and_its_twin_share_a_partition_and_other_chats_do_not() {
        let key = |conversation_id: &str, kind: ConversationKind| {
            let subject = jetim_streams::subject::Subject::conversation(conversation_id, kind);
            partition_key(&event_on(subject.unwrap().as_str().to_owned())).to_owned()
        };
        let chat = key("si_ann_bo", ConversationKind::Timeline);
        assert_eq!(chat, "ann_bo");
        assert_eq!(key("n_ann_bo", ConversationKind::Delete), chat);
        assert_ne!(key("si_ann_cy", ConversationKind::Timeline), chat);
        assert_eq!(key("sg_team", ConversationKind::Read), "team");
        assert_eq!(
            key("plain", ConversationKind::Timeline),
            "plain",
            "no prefix: the whole token"
        );
        assert_eq!(
            partition_key(&event_on("not a stored subject".to_owned())),
            ""
        );
    }
}
