//! Everything a send reads before it decides, in one round trip: the sender's and the
//! receiver's accounts, the receiver's setting on the conversation and what the receiver
//! thinks of the sender, the group and the sender's membership, and whether the clientMsgID
//! is already stored. One prepared statement instead of six separate queries: the send path
//! is the hottest path there is, and each query costs Postgres a parse, a plan and a round
//! trip.
//!
//! [`FactsReader`] goes one step further: the sends that wait for their facts at the same
//! time (because the reads before them are still running) are read together, in one
//! statement over arrays of keys, so under load a round trip, a socket write on each side
//! and the executor's set-up serve many sends. A send that finds nothing running is read
//! at once, alone.

use std::sync::{Arc, LazyLock};

use deadpool_postgres::Pool;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::ReadModelError;
use crate::messages::Original;

/// What to read the facts of.
#[derive(Debug, Clone, Copy)]
pub struct SendKeys<'a> {
    /// The sender.
    pub send_id: &'a str,
    /// The receiver of a single or notification chat; empty for groups.
    pub recv_id: &'a str,
    /// The group of a group chat; empty otherwise.
    pub group_id: &'a str,
    /// The conversation the message would go to.
    pub conversation_id: &'a str,
    /// The message's clientMsgID.
    pub client_msg_id: &'a str,
}

/// The facts, as the read model has them now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendFacts {
    /// The sender's appMangerLevel; `None` if the read model has no such user.
    pub sender_level: Option<i32>,
    /// The receiver's globalRecvMsgOpt; `None` if the read model has no such user.
    pub receiver_global_recv_opt: Option<i32>,
    /// The receiver's recvMsgOpt on the conversation, 0 without a visible row.
    pub receiver_conversation_recv_opt: i32,
    /// The receiver has the sender on their blacklist.
    pub receiver_blocks_sender: bool,
    /// The receiver has the sender as a friend.
    pub receiver_befriends_sender: bool,
    /// The group's status; `None` if there is no such group.
    pub group_status: Option<i32>,
    /// The sender's role in the group; `None` if not a member.
    pub sender_role: Option<i32>,
    /// Until when the sender is muted in the group (ms), 0 if not.
    pub sender_mute_end_time: i64,
    /// The message this clientMsgID already became in the conversation.
    pub original: Option<Original>,
}

/// The statement for a send that names a receiver, a group, or both (`[receiver][group]`;
/// a send naming neither reads the sender alone). A single chat does not look for a group
/// and a group chat does not look at a receiver: Postgres sets up every join of a statement
/// on each run, used or not, and this statement runs for every message.
static FACTS: LazyLock<[[String; 2]; 2]> = LazyLock::new(|| {
    [false, true].map(|receiver| [false, true].map(|group| facts_statement(receiver, group)))
});

fn facts_statement(receiver: bool, group: bool) -> String {
    let (receiver_columns, receiver_join) = if receiver {
        let columns = "receiver.global_recv_msg_opt,
         (SELECT u.recv_msg_opt FROM user_conversations_v1 u
            LEFT JOIN conversation_seqs_v1 s ON s.conversation_id = u.conversation_id
           WHERE u.owner_user_id = $2 AND u.conversation_id = $4 AND VISIBLE),
         EXISTS (SELECT 1 FROM blacks_v1
                  WHERE owner_user_id = $2 AND black_user_id = $1 AND NOT deleted),
         EXISTS (SELECT 1 FROM friends_v1
                  WHERE owner_user_id = $2 AND friend_user_id = $1 AND NOT deleted)"
            .replace("VISIBLE", crate::conversations::VISIBLE);
        (
            columns,
            "LEFT JOIN users_v1 receiver ON receiver.user_id = $2",
        )
    } else {
        ("NULL::int, NULL::int, false, false".to_owned(), "")
    };
    let (group_columns, group_joins) = if group {
        (
            "g.status, member.role_level, member.mute_end_time",
            "LEFT JOIN groups_v1 g ON g.group_id = $3
             LEFT JOIN group_members_v1 member ON member.group_id = $3 AND member.user_id = $1",
        )
    } else {
        ("NULL::int, NULL::int, NULL::bigint", "")
    };
    format!(
        "SELECT sender.app_manger_level, {receiver_columns}, {group_columns},
                o.seq, o.server_msg_id, o.send_time
         FROM (VALUES (1)) AS one (x)
         LEFT JOIN users_v1 sender ON sender.user_id = $1
         {receiver_join}
         {group_joins}
         LEFT JOIN LATERAL (
             SELECT m.seq, m.server_msg_id, m.send_time FROM messages_v1 m
              WHERE m.conversation_id = $4 AND m.client_msg_id = $5
              ORDER BY m.seq LIMIT 1) o ON true"
    )
}

/// Reads the facts of a send.
pub async fn read(pool: &Pool, keys: SendKeys<'_>) -> Result<SendFacts, ReadModelError> {
    let client = pool.get().await?;
    let sql = &FACTS[usize::from(!keys.recv_id.is_empty())][usize::from(!keys.group_id.is_empty())];
    // Typed, since a statement need not use every key.
    let statement = client
        .prepare_typed_cached(sql, &[tokio_postgres::types::Type::TEXT; 5])
        .await?;
    let row = client
        .query_one(
            &statement,
            &[
                &keys.send_id,
                &keys.recv_id,
                &keys.group_id,
                &keys.conversation_id,
                &keys.client_msg_id,
            ],
        )
        .await?;
    Ok(facts_of(&row, 0))
}

/// The facts in `row`, from column `first` on, in the order the statements select them.
fn facts_of(row: &tokio_postgres::Row, first: usize) -> SendFacts {
    let original = row.get::<_, Option<i64>>(first + 8).map(|seq| Original {
        seq: u64::try_from(seq).unwrap_or(0),
        server_msg_id: row.get(first + 9),
        send_time: row.get(first + 10),
    });
    SendFacts {
        sender_level: row.get(first),
        receiver_global_recv_opt: row.get(first + 1),
        receiver_conversation_recv_opt: row.get::<_, Option<i32>>(first + 2).unwrap_or(0),
        receiver_blocks_sender: row.get(first + 3),
        receiver_befriends_sender: row.get(first + 4),
        group_status: row.get(first + 5),
        sender_role: row.get(first + 6),
        sender_mute_end_time: row.get::<_, Option<i64>>(first + 7).unwrap_or(0),
        original,
    }
}

/// The facts of many sends at once: the keys as arrays, one row per send with its
/// position first. An empty receiver or group is looked up as none, as the statements for
/// one send leave it out.
///
/// Every lookup is a subquery per send, which Postgres runs as a probe of the table's key.
/// As joins, the plan it keeps for the statement hashed whole tables: with 1,000 users (the
/// chat bench) it read all of `users_v1` twice for every few sends, and the statement cost
/// about 50 µs of execution a send against 41 µs for a send read alone.
static MANY_FACTS: LazyLock<String> = LazyLock::new(|| {
    "SELECT k.i,
            (SELECT app_manger_level FROM users_v1 WHERE user_id = k.send_id),
            (SELECT global_recv_msg_opt FROM users_v1
              WHERE k.recv_id <> '' AND user_id = k.recv_id),
            (SELECT u.recv_msg_opt FROM user_conversations_v1 u
               LEFT JOIN conversation_seqs_v1 s ON s.conversation_id = u.conversation_id
              WHERE k.recv_id <> '' AND u.owner_user_id = k.recv_id
                AND u.conversation_id = k.conversation_id AND VISIBLE),
            k.recv_id <> '' AND coalesce((SELECT NOT deleted FROM blacks_v1
                WHERE owner_user_id = k.recv_id AND black_user_id = k.send_id), false),
            k.recv_id <> '' AND coalesce((SELECT NOT deleted FROM friends_v1
                WHERE owner_user_id = k.recv_id AND friend_user_id = k.send_id), false),
            (SELECT status FROM groups_v1 WHERE k.group_id <> '' AND group_id = k.group_id),
            member.role_level, member.mute_end_time,
            o.seq, o.server_msg_id, o.send_time
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
          WITH ORDINALITY AS k (send_id, recv_id, group_id, conversation_id, client_msg_id, i)
     LEFT JOIN LATERAL (
         SELECT role_level, mute_end_time FROM group_members_v1
          WHERE k.group_id <> '' AND group_id = k.group_id AND user_id = k.send_id
          LIMIT 1) member ON true
     LEFT JOIN LATERAL (
         SELECT m.seq, m.server_msg_id, m.send_time FROM messages_v1 m
          WHERE m.conversation_id = k.conversation_id AND m.client_msg_id = k.client_msg_id
          ORDER BY m.seq LIMIT 1) o ON true"
        .replace("VISIBLE", crate::conversations::VISIBLE)
});

/// Reads the facts of several sends in one statement, in the order of `keys`.
pub async fn read_many(pool: &Pool, keys: &[OwnedKeys]) -> Result<Vec<SendFacts>, ReadModelError> {
    let client = pool.get().await?;
    let statement = client.prepare_cached(&MANY_FACTS).await?;
    let column = |key: fn(&OwnedKeys) -> &str| keys.iter().map(key).collect::<Vec<&str>>();
    let rows = client
        .query(
            &statement,
            &[
                &column(|keys| &keys.send_id),
                &column(|keys| &keys.recv_id),
                &column(|keys| &keys.group_id),
                &column(|keys| &keys.conversation_id),
                &column(|keys| &keys.client_msg_id),
            ],
        )
        .await?;
    let mut facts = vec![SendFacts::default(); keys.len()];
    for row in &rows {
        let position = usize::try_from(row.get::<_, i64>(0) - 1).unwrap_or(usize::MAX);
        if let Some(slot) = facts.get_mut(position) {
            *slot = facts_of(row, 1);
        }
    }
    debug_assert_eq!(rows.len(), keys.len(), "a row for every send");
    Ok(facts)
}

/// [`SendKeys`] that own their strings, to wait in a [`FactsReader`]'s queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedKeys {
    /// The sender.
    pub send_id: String,
    /// The receiver; empty for groups.
    pub recv_id: String,
    /// The group; empty otherwise.
    pub group_id: String,
    /// The conversation.
    pub conversation_id: String,
    /// The clientMsgID.
    pub client_msg_id: String,
}

impl From<SendKeys<'_>> for OwnedKeys {
    fn from(keys: SendKeys<'_>) -> Self {
        Self {
            send_id: keys.send_id.to_owned(),
            recv_id: keys.recv_id.to_owned(),
            group_id: keys.group_id.to_owned(),
            conversation_id: keys.conversation_id.to_owned(),
            client_msg_id: keys.client_msg_id.to_owned(),
        }
    }
}

impl OwnedKeys {
    /// The keys, borrowed.
    pub fn borrowed(&self) -> SendKeys<'_> {
        SendKeys {
            send_id: &self.send_id,
            recv_id: &self.recv_id,
            group_id: &self.group_id,
            conversation_id: &self.conversation_id,
            client_msg_id: &self.client_msg_id,
        }
    }
}

/// At most this many reads of facts run at once; sends that come while they run wait, and
/// go together in the next one. The statement's own work is a few index probes a send; what
/// a read costs beyond that (a round trip, a wake-up on each side, the executor's set-up) is
/// paid once for all that waited.
///
/// One: with two, each read took half the waiting sends (about 12 a statement at 10,000
/// msg/s), and at that rate the send path's latency was lower with one read at a time
/// (p99 send→deliver 18–25 ms against 27–65 ms, five runs each in turns; see
/// docs/performance.md). A send that finds no read running still goes at once.
const READS_AT_ONCE: usize = 1;

/// At most this many sends are read in one statement.
const MOST_IN_ONE_READ: usize = 256;

/// A send waiting for its facts.
struct Waiting {
    keys: OwnedKeys,
    reply: oneshot::Sender<Result<SendFacts, ReadModelError>>,
}

/// Reads the facts of sends, together when they wait together (see the module's doc). Cheap
/// to clone; the clones share the queue. Its task ends when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct FactsReader {
    queue: mpsc::UnboundedSender<Waiting>,
}

impl FactsReader {
    /// A reader on `pool`. Must be made inside a tokio runtime (it starts its task).
    pub fn new(pool: Pool) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(read_as_they_come(pool, waiting));
        Self { queue }
    }

    /// The facts of one send, as [`read`] gives them.
    pub async fn read(&self, keys: SendKeys<'_>) -> Result<SendFacts, ReadModelError> {
        let (reply, answer) = oneshot::channel();
        let waiting = Waiting {
            keys: keys.into(),
            reply,
        };
        if self.queue.send(waiting).is_err() {
            return Err(ReadModelError::Pool(deadpool_postgres::PoolError::Closed));
        }
        answer.await.unwrap_or(Err(ReadModelError::Pool(
            deadpool_postgres::PoolError::Closed,
        )))
    }
}

/// Takes the waiting sends as a read can start: alone when nothing runs, the more of them
/// together the longer the reads before them take.
async fn read_as_they_come(pool: Pool, mut waiting: mpsc::UnboundedReceiver<Waiting>) {
    let reads = Arc::new(Semaphore::new(READS_AT_ONCE));
    while let Some(first) = waiting.recv().await {
        let Ok(permit) = Arc::clone(&reads).acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MOST_IN_ONE_READ {
            match waiting.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            answer(&pool, batch).await;
            drop(permit);
        });
    }
}

/// Reads and answers a batch of sends. If the statement for all of them fails, each is read
/// alone, so each gets its own answer.
async fn answer(pool: &Pool, mut batch: Vec<Waiting>) {
    #[allow(clippy::cast_precision_loss)]
    metrics::histogram!("jetim_send_facts_batch_sends").record(batch.len() as f64);
    if batch.len() == 1
        && let Some(alone) = batch.pop()
    {
        let facts = read(pool, alone.keys.borrowed()).await;
        let _ = alone.reply.send(facts);
        return;
    }
    let (keys, replies): (Vec<OwnedKeys>, Vec<_>) = batch
        .into_iter()
        .map(|waiting| (waiting.keys, waiting.reply))
        .unzip();
    match read_many(pool, &keys).await {
        Ok(facts) => {
            for (reply, facts) in replies.into_iter().zip(facts) {
                let _ = reply.send(Ok(facts));
            }
        }
        Err(error) => {
            tracing::warn!(%error, sends = keys.len(), "reading the facts of sends together failed; reading each alone");
            for (keys, reply) in keys.iter().zip(replies) {
                let _ = reply.send(read(pool, keys.borrowed()).await);
            }
        }
    }
}
