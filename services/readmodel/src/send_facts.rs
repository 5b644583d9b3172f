//! Everything a send reads before it decides, in one round trip: the sender's and the
//! receiver's accounts, the receiver's setting on the conversation and what the receiver
//! thinks of the sender, the group and the sender's membership, and whether the clientMsgID
//! is already stored. One prepared statement instead of six separate queries: the send path
//! is the hottest path there is, and each query costs Postgres a parse, a plan and a round
//! trip.

use std::sync::LazyLock;

use deadpool_postgres::Pool;

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
             SELECT m.seq, m.server_msg_id, m.send_time
               FROM client_msg_ids_v1 c
               JOIN messages_v1 m ON m.conversation_id = c.conversation_id AND m.seq = c.seq
              WHERE c.conversation_id = $4 AND c.client_msg_id = $5) o ON true"
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
    let original = row.get::<_, Option<i64>>(8).map(|seq| Original {
        seq: u64::try_from(seq).unwrap_or(0),
        server_msg_id: row.get(9),
        send_time: row.get(10),
    });
    Ok(SendFacts {
        sender_level: row.get(0),
        receiver_global_recv_opt: row.get(1),
        receiver_conversation_recv_opt: row.get::<_, Option<i32>>(2).unwrap_or(0),
        receiver_blocks_sender: row.get(3),
        receiver_befriends_sender: row.get(4),
        group_status: row.get(5),
        sender_role: row.get(6),
        sender_mute_end_time: row.get::<_, Option<i64>>(7).unwrap_or(0),
        original,
    })
}
