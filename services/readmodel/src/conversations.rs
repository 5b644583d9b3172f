//! The conversation_settings projection, version 1: owners' settings on their conversation
//! rows (`user_conversations_v1`), from `im.user.*.conversation`; and the queries the
//! `/conversation` routes make.

use std::collections::{BTreeMap, BTreeSet};

use deadpool_postgres::Pool;
use jetim_schemas::event::Event as _;
use jetim_schemas::events::conversation::{
    ConversationSet, ConversationsDeleted, DeletedConversation,
};
use jetim_streams::RecordedEvent;
use jetim_streams::consume::{BatchHandler, DurableSpec, HandleError};
use jetim_streams::subject::{USER_STREAM, UserKind, every_user};
use tokio_postgres::Row;

use crate::versions::{ChangeState, Log, record_changes};
use crate::{ReadModelError, projection};

/// The projection's name in the registry.
pub const NAME: &str = "conversation_settings";
/// The version this build writes and reads.
pub const VERSION: i32 = 1;

/// The durable consumer that feeds the projection.
pub fn consumer_spec() -> DurableSpec {
    let mut spec = DurableSpec::new(
        USER_STREAM,
        &crate::projection::consumer_name(NAME, VERSION),
    );
    spec.filter_subjects = vec![every_user(UserKind::Conversation)];
    spec
}

/// The condition that keeps rows hidden by `delete_conversations` out of an owner's lists,
/// over `user_conversations_v1 u` left-joined to `conversation_seqs_v1 s`.
pub(crate) const VISIBLE: &str =
    "(u.hidden_through_seq IS NULL OR coalesce(s.max_seq, 0) > u.hidden_through_seq)";

/// One conversation row with the owner's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRow {
    /// The owner.
    pub owner_user_id: String,
    /// The conversation.
    pub conversation_id: String,
    /// 1 single, 3 group, 4 notification.
    pub conversation_type: i32,
    /// The peer.
    pub user_id: String,
    /// The group.
    pub group_id: String,
    /// Receive option.
    pub recv_msg_opt: i32,
    /// Pinned.
    pub is_pinned: bool,
    /// Opaque client data.
    pub attached_info: String,
    /// Burn after reading.
    pub is_private_chat: bool,
    /// Mention state.
    pub group_at_type: i32,
    /// Opaque client data.
    pub ex: String,
    /// Seconds a private-chat message lives.
    pub burn_duration: i32,
    /// The owner's min seq.
    pub min_seq: i64,
    /// The owner's max seq cap (0: none).
    pub max_seq: i64,
    /// Destruction age, seconds.
    pub msg_destruct_time: i64,
    /// When destruction last ran, milliseconds.
    pub latest_msg_destruct_time: i64,
    /// Whether destruction is on.
    pub is_msg_destruct: bool,
}

const COLUMNS: &str = "owner_user_id, conversation_id, conversation_type, user_id, group_id,
    recv_msg_opt, is_pinned, attached_info, is_private_chat, group_at_type, ex, burn_duration,
    min_seq, max_seq, msg_destruct_time, latest_msg_destruct_time, is_msg_destruct";

/// [`COLUMNS`] of the row aliased `u`.
fn qualified_columns() -> String {
    COLUMNS
        .split(',')
        .map(|column| format!("u.{}", column.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<&Row> for ConversationRow {
    fn from(row: &Row) -> Self {
        Self {
            owner_user_id: row.get(0),
            conversation_id: row.get(1),
            conversation_type: row.get(2),
            user_id: row.get(3),
            group_id: row.get(4),
            recv_msg_opt: row.get(5),
            is_pinned: row.get(6),
            attached_info: row.get(7),
            is_private_chat: row.get(8),
            group_at_type: row.get(9),
            ex: row.get(10),
            burn_duration: row.get(11),
            min_seq: row.get(12),
            max_seq: row.get(13),
            msg_destruct_time: row.get(14),
            latest_msg_destruct_time: row.get(15),
            is_msg_destruct: row.get(16),
        }
    }
}

/// The owner's conversations (all, or those named), by conversation ID.
pub async fn list(
    pool: &Pool,
    owner_user_id: &str,
    conversation_ids: Option<&[String]>,
) -> Result<Vec<ConversationRow>, ReadModelError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM user_conversations_v1 u
                 LEFT JOIN conversation_seqs_v1 s ON s.conversation_id = u.conversation_id
                 WHERE u.owner_user_id = $1
                   AND ($2::text[] IS NULL OR u.conversation_id = ANY($2)) AND {VISIBLE}
                 ORDER BY u.conversation_id",
                qualified_columns()
            ),
            &[&owner_user_id, &conversation_ids],
        )
        .await?;
    Ok(rows.iter().map(ConversationRow::from).collect())
}

/// A page of the owner's conversations, newest message first, and how many there are.
pub async fn page(
    pool: &Pool,
    owner_user_id: &str,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<ConversationRow>), ReadModelError> {
    let client = pool.get().await?;
    let total: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM user_conversations_v1 u
                 LEFT JOIN conversation_seqs_v1 s ON s.conversation_id = u.conversation_id
                 WHERE u.owner_user_id = $1 AND {VISIBLE}"
            ),
            &[&owner_user_id],
        )
        .await?
        .get(0);
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM user_conversations_v1 u
                 LEFT JOIN conversation_seqs_v1 s ON s.conversation_id = u.conversation_id
                 WHERE u.owner_user_id = $1 AND {VISIBLE}
                 ORDER BY coalesce(s.max_seq_time, 0) DESC, u.conversation_id
                 OFFSET $2 LIMIT $3",
                qualified_columns()
            ),
            &[&owner_user_id, &offset, &limit],
        )
        .await?;
    Ok((total, rows.iter().map(ConversationRow::from).collect()))
}

/// Applies `conversation.set` events.
pub struct ConversationSettingsProjection {
    pool: Pool,
}

impl ConversationSettingsProjection {
    /// A projection writing through `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

/// One row's changes in a batch: a delete (and its stream sequence) and the settings set
/// after it (or without one).
#[derive(Default)]
struct RowFold {
    deleted: Option<(DeletedConversation, i64)>,
    set: Option<(ConversationSet, i64)>,
}

impl BatchHandler for ConversationSettingsProjection {
    async fn apply(&mut self, batch: &[RecordedEvent]) -> Result<(), HandleError> {
        let mut rows: BTreeMap<(String, String), RowFold> = BTreeMap::new();
        let mut last_sequence = 0;
        for event in batch {
            last_sequence = last_sequence.max(event.stream_sequence);
            let poison = |error: jetim_schemas::event::DecodeError| HandleError::Poison {
                stream_sequence: event.stream_sequence,
                reason: error.to_string(),
            };
            let sequence = i64::try_from(event.stream_sequence).unwrap_or(i64::MAX);
            if event.kind == ConversationsDeleted::KIND {
                let deletion: ConversationsDeleted = event.decode().map_err(poison)?;
                for deleted in deletion.conversations {
                    // A delete drops the settings folded before it.
                    rows.insert(
                        (
                            deletion.owner_user_id.clone(),
                            deleted.conversation_id.clone(),
                        ),
                        RowFold {
                            deleted: Some((deleted, sequence)),
                            set: None,
                        },
                    );
                }
                continue;
            }
            if event.kind != ConversationSet::KIND {
                continue;
            }
            let change: ConversationSet = event.decode().map_err(poison)?;
            let key = (change.owner_user_id.clone(), change.conversation_id.clone());
            match &mut rows.entry(key).or_default().set {
                Some((earlier, last)) => {
                    earlier.merge(change);
                    *last = sequence;
                }
                empty @ None => *empty = Some((change, sequence)),
            }
        }
        let mut client = self.pool.get().await.map_err(HandleError::transient)?;
        let transaction = client.transaction().await.map_err(HandleError::transient)?;
        let mut log: BTreeMap<(String, String), ChangeState> = BTreeMap::new();
        let deletes: Vec<(&str, &(DeletedConversation, i64))> = rows
            .iter()
            .filter_map(|((owner, _), fold)| {
                fold.deleted
                    .as_ref()
                    .map(|deleted| (owner.as_str(), deleted))
            })
            .collect();
        if !deletes.is_empty() {
            let owners: Vec<&str> = deletes.iter().map(|(owner, _)| *owner).collect();
            let text = |pick: fn(&DeletedConversation) -> &str| -> Vec<&str> {
                deletes
                    .iter()
                    .map(|(_, (deleted, _))| pick(deleted))
                    .collect()
            };
            let ids = text(|deleted| &deleted.conversation_id);
            let peers = text(|deleted| &deleted.user_id);
            let groups = text(|deleted| &deleted.group_id);
            let types: Vec<i32> = deletes
                .iter()
                .map(|(_, (deleted, _))| deleted.conversation_type)
                .collect();
            let through: Vec<i64> = deletes
                .iter()
                .map(|(_, (deleted, _))| i64::try_from(deleted.through_seq).unwrap_or(i64::MAX))
                .collect();
            let sequences: Vec<i64> = deletes.iter().map(|(_, (_, sequence))| *sequence).collect();
            // The row goes back to defaults, as a row OpenIM makes again would be. A row the
            // messages projection has not made yet is made here, hidden, so the delete holds
            // whichever projection runs ahead.
            let hidden = transaction
                .query(
                    "INSERT INTO user_conversations_v1 AS c
                         (owner_user_id, conversation_id, conversation_type, user_id, group_id,
                          hidden_through_seq, settings_sequence)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::int[], $4::text[],
                                          $5::text[], $6::bigint[], $7::bigint[])
                     ON CONFLICT (owner_user_id, conversation_id) DO UPDATE SET
                         recv_msg_opt = 0, is_pinned = false, attached_info = '',
                         is_private_chat = false, group_at_type = 0, ex = '', burn_duration = 0,
                         msg_destruct_time = 0, is_msg_destruct = false,
                         hidden_through_seq = EXCLUDED.hidden_through_seq,
                         settings_sequence = EXCLUDED.settings_sequence
                     WHERE c.settings_sequence < EXCLUDED.settings_sequence
                     RETURNING c.owner_user_id, c.conversation_id",
                    &[&owners, &ids, &types, &peers, &groups, &through, &sequences],
                )
                .await
                .map_err(HandleError::transient)?;
            for row in &hidden {
                log.insert((row.get(0), row.get(1)), ChangeState::Delete);
            }
        }
        let folded: BTreeMap<(String, String), (ConversationSet, i64)> = rows
            .into_iter()
            .filter_map(|(key, fold)| fold.set.map(|set| (key, set)))
            .collect();
        if !folded.is_empty() {
            let changes: Vec<&(ConversationSet, i64)> = folded.values().collect();
            let text = |pick: fn(&ConversationSet) -> &str| -> Vec<&str> {
                changes.iter().map(|(change, _)| pick(change)).collect()
            };
            let owners = text(|change| &change.owner_user_id);
            let ids = text(|change| &change.conversation_id);
            let peers = text(|change| &change.user_id);
            let groups = text(|change| &change.group_id);
            let types: Vec<i32> = changes
                .iter()
                .map(|(change, _)| change.conversation_type)
                .collect();
            let recv: Vec<Option<i32>> = changes
                .iter()
                .map(|(change, _)| change.recv_msg_opt)
                .collect();
            let pinned: Vec<Option<bool>> =
                changes.iter().map(|(change, _)| change.is_pinned).collect();
            let attached: Vec<Option<&str>> = changes
                .iter()
                .map(|(change, _)| change.attached_info.as_deref())
                .collect();
            let private: Vec<Option<bool>> = changes
                .iter()
                .map(|(change, _)| change.is_private_chat)
                .collect();
            let at_type: Vec<Option<i32>> = changes
                .iter()
                .map(|(change, _)| change.group_at_type)
                .collect();
            let exes: Vec<Option<&str>> = changes
                .iter()
                .map(|(change, _)| change.ex.as_deref())
                .collect();
            let burn: Vec<Option<i32>> = changes
                .iter()
                .map(|(change, _)| change.burn_duration)
                .collect();
            let destruct_time: Vec<Option<i64>> = changes
                .iter()
                .map(|(change, _)| change.msg_destruct_time)
                .collect();
            let destruct: Vec<Option<bool>> = changes
                .iter()
                .map(|(change, _)| change.is_msg_destruct)
                .collect();
            let sequences: Vec<i64> = changes.iter().map(|(_, sequence)| *sequence).collect();
            // Rows hidden by a delete come back as new ones.
            let hidden: BTreeSet<(String, String)> = transaction
                .query(
                    "SELECT c.owner_user_id, c.conversation_id FROM user_conversations_v1 c
                     JOIN UNNEST($1::text[], $2::text[]) AS v(o, i)
                       ON c.owner_user_id = v.o AND c.conversation_id = v.i
                     WHERE c.hidden_through_seq IS NOT NULL",
                    &[&owners, &ids],
                )
                .await
                .map_err(HandleError::transient)?
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect();
            // Rows that do not exist yet are made with defaults (their settings follow).
            let inserted = transaction
                .query(
                    "INSERT INTO user_conversations_v1
                         (owner_user_id, conversation_id, conversation_type, user_id, group_id)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::int[], $4::text[],
                                          $5::text[])
                     ON CONFLICT DO NOTHING
                     RETURNING owner_user_id, conversation_id",
                    &[&owners, &ids, &types, &peers, &groups],
                )
                .await
                .map_err(HandleError::transient)?;
            // Then each change sets only what it names.
            let updated = transaction
                .query(
                    "UPDATE user_conversations_v1 AS c SET
                         recv_msg_opt = coalesce(v.r, c.recv_msg_opt),
                         is_pinned = coalesce(v.pin, c.is_pinned),
                         attached_info = coalesce(v.a, c.attached_info),
                         is_private_chat = coalesce(v.pr, c.is_private_chat),
                         group_at_type = coalesce(v.at, c.group_at_type),
                         ex = coalesce(v.e, c.ex),
                         burn_duration = coalesce(v.b, c.burn_duration),
                         msg_destruct_time = coalesce(v.dt, c.msg_destruct_time),
                         is_msg_destruct = coalesce(v.d, c.is_msg_destruct),
                         hidden_through_seq = NULL,
                         settings_sequence = v.s
                     FROM UNNEST($1::text[], $2::text[], $3::int[], $4::bool[], $5::text[],
                                 $6::bool[], $7::int[], $8::text[], $9::int[], $10::bigint[],
                                 $11::bool[], $12::bigint[])
                          AS v(o, i, r, pin, a, pr, at, e, b, dt, d, s)
                     WHERE c.owner_user_id = v.o AND c.conversation_id = v.i
                       AND c.settings_sequence < v.s
                     RETURNING c.owner_user_id, c.conversation_id",
                    &[
                        &owners,
                        &ids,
                        &recv,
                        &pinned,
                        &attached,
                        &private,
                        &at_type,
                        &exes,
                        &burn,
                        &destruct_time,
                        &destruct,
                        &sequences,
                    ],
                )
                .await
                .map_err(HandleError::transient)?;
            // A row made (or brought back) here reports as inserted; others as updated.
            for row in &inserted {
                log.insert((row.get(0), row.get(1)), ChangeState::Insert);
            }
            for row in &updated {
                let key: (String, String) = (row.get(0), row.get(1));
                let state = if hidden.contains(&key) || log.contains_key(&key) {
                    ChangeState::Insert
                } else {
                    ChangeState::Update
                };
                log.insert(key, state);
            }
        }
        let changes: Vec<(String, String, ChangeState)> = log
            .into_iter()
            .map(|((owner, id), state)| (owner, id, state))
            .collect();
        record_changes(&transaction, Log::Conversations, &changes)
            .await
            .map_err(HandleError::transient)?;
        projection::advance(&transaction, NAME, VERSION, last_sequence)
            .await
            .map_err(HandleError::transient)?;
        transaction.commit().await.map_err(HandleError::transient)
    }
}
