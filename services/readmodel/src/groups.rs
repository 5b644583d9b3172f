//! The groups projection, version 1: groups (`groups_v1`), members (`group_members_v1`), join
//! applications (`group_requests_v1`), the joined-group and member version logs, and the
//! members' rows and readable windows in the group's conversations (`user_conversations_v1`).
//!
//! Every event of a group is on its one subject, so the group row's stream sequence guards
//! the whole group: an event at or below it is skipped. Group events are commands people
//! make, far rarer than messages; each is applied with a few set-based statements (a
//! thousand invited members are one statement), in the batch's one transaction, and the
//! version-log changes of the whole batch are recorded together at the end.

use std::collections::BTreeMap;

use deadpool_postgres::{GenericClient, Pool};
use jetim_schemas::event::{DecodeError, Event as _};
use jetim_schemas::events::group::{
    GroupApplicationHandled, GroupApplied, GroupCreated, GroupDismissed, GroupInfoSet, GroupMuted,
    MemberMuted, MembersInfoSet, MembersJoined, MembersLeft, NewMember, OwnerTransferred, role,
    status,
};
use jetim_streams::RecordedEvent;
use jetim_streams::consume::{BatchHandler, DurableSpec, HandleError};
use jetim_streams::subject::{
    CONVERSATION_STREAM, ConversationKind, USER_STREAM, UserKind, every_conversation, every_user,
};
use tokio_postgres::Row;

use crate::versions::{ChangeState, GROUP_ITSELF, Log, SORT_MARKER, record_changes};
use crate::{ReadModelError, projection};

/// The projection's name in the registry.
pub const NAME: &str = "groups";
/// The version this build writes and reads.
pub const VERSION: i32 = 1;

/// The durable consumer that feeds the projection.
pub fn consumer_spec() -> DurableSpec {
    let mut spec = DurableSpec::new(
        CONVERSATION_STREAM,
        &crate::projection::consumer_name(NAME, VERSION),
    );
    spec.filter_subjects = vec![every_conversation(ConversationKind::Group)];
    spec
}

/// The chat conversation of a group.
pub fn chat_conversation_id(group_id: &str) -> String {
    format!("sg_{group_id}")
}

/// The notification conversation of a group.
pub fn notification_conversation_id(group_id: &str) -> String {
    format!("n_{group_id}")
}

/// Version-log changes: (owner, element, change).
type LogChanges = Vec<(String, String, ChangeState)>;

/// What a batch changed in the version logs.
#[derive(Default)]
struct Logs {
    joined: LogChanges,
    members: LogChanges,
    conversations: LogChanges,
}

impl Logs {
    fn members(&mut self, group_id: &str, user_ids: &[String], change: ChangeState) {
        self.members.extend(
            user_ids
                .iter()
                .map(|user| (group_id.to_owned(), user.clone(), change)),
        );
    }

    fn joined(&mut self, group_id: &str, user_ids: &[String], change: ChangeState) {
        self.joined.extend(
            user_ids
                .iter()
                .map(|user| (user.clone(), group_id.to_owned(), change)),
        );
    }

    fn group_itself(&mut self, group_id: &str) {
        self.members.push((
            group_id.to_owned(),
            GROUP_ITSELF.to_owned(),
            ChangeState::Update,
        ));
    }

    fn order(&mut self, group_id: &str) {
        self.members.push((
            group_id.to_owned(),
            SORT_MARKER.to_owned(),
            ChangeState::Update,
        ));
    }
}

fn sequence_of(event: &RecordedEvent) -> i64 {
    i64::try_from(event.stream_sequence).unwrap_or(i64::MAX)
}

/// Moves the group's stream sequence to `sequence`; false when the group is missing or
/// already past it (a replay).
async fn advance_group(
    client: &impl GenericClient,
    group_id: &str,
    sequence: i64,
) -> Result<bool, tokio_postgres::Error> {
    Ok(client
        .execute(
            "UPDATE groups_v1 SET stream_sequence = $2
             WHERE group_id = $1 AND stream_sequence < $2",
            &[&group_id, &sequence],
        )
        .await?
        == 1)
}

/// Decodes an event of an existing group and moves the group's stream sequence to it;
/// `None` when the group is missing or already past the event (a replay).
async fn advanced<T: jetim_schemas::event::Event>(
    client: &impl GenericClient,
    event: &RecordedEvent,
    group_of: impl Fn(&T) -> &String,
) -> Result<Option<T>, HandleError> {
    let decoded: T = event
        .decode()
        .map_err(|error: DecodeError| HandleError::Poison {
            stream_sequence: event.stream_sequence,
            reason: error.to_string(),
        })?;
    let moved = advance_group(client, group_of(&decoded), sequence_of(event))
        .await
        .map_err(HandleError::transient)?;
    Ok(moved.then_some(decoded))
}

async fn add_members(
    client: &impl GenericClient,
    logs: &mut Logs,
    group_id: &str,
    operator: &str,
    members: &[NewMember],
    join_time: i64,
    history_from_seq: Option<u64>,
) -> Result<(), tokio_postgres::Error> {
    if members.is_empty() {
        return Ok(());
    }
    let users: Vec<&str> = members.iter().map(|m| m.user_id.as_str()).collect();
    let roles: Vec<i32> = members.iter().map(|m| m.role_level).collect();
    let sources: Vec<i32> = members.iter().map(|m| m.join_source).collect();
    let inviters: Vec<&str> = members.iter().map(|m| m.inviter_user_id.as_str()).collect();
    let added = client
        .query(
            "INSERT INTO group_members_v1 (group_id, user_id, nickname, face_url, role_level,
                 join_time, join_source, inviter_user_id, operator_user_id, mute_end_time, ex)
             SELECT $1, u, '', '', r, $5, s, i, $6, 0, ''
             FROM UNNEST($2::text[], $3::int[], $4::int[], $7::text[]) AS v(u, r, s, i)
             ON CONFLICT (group_id, user_id) DO NOTHING
             RETURNING user_id",
            &[
                &group_id, &users, &roles, &sources, &join_time, &operator, &inviters,
            ],
        )
        .await?;
    let added: Vec<String> = added.iter().map(|row| row.get(0)).collect();
    logs.members(group_id, &added, ChangeState::Insert);
    logs.joined(group_id, &added, ChangeState::Insert);

    // Their rows in the group's two conversations: made, or reopened with no cap.
    let min_seq = history_from_seq.map_or(0, |seq| i64::try_from(seq).unwrap_or(i64::MAX));
    let conversations = [
        chat_conversation_id(group_id),
        notification_conversation_id(group_id),
    ];
    let mut owners = Vec::new();
    let mut ids = Vec::new();
    for user in &added {
        for conversation in &conversations {
            owners.push(user.as_str());
            ids.push(conversation.as_str());
        }
    }
    let rows = client
        .query(
            "INSERT INTO user_conversations_v1 AS c
                 (owner_user_id, conversation_id, conversation_type, user_id, group_id, min_seq)
             SELECT o, i, 3, '', $3, CASE WHEN i = $5 THEN $4::bigint ELSE 0::bigint END
             FROM UNNEST($1::text[], $2::text[]) AS v(o, i)
             ON CONFLICT (owner_user_id, conversation_id) DO UPDATE SET
                 max_seq = 0, min_seq = GREATEST(c.min_seq, EXCLUDED.min_seq)
             RETURNING owner_user_id, conversation_id, xmax = 0",
            &[&owners, &ids, &group_id, &min_seq, &conversations[0]],
        )
        .await?;
    logs.conversations.extend(rows.iter().map(|row| {
        let inserted: bool = row.get(2);
        let change = if inserted {
            ChangeState::Insert
        } else {
            ChangeState::Update
        };
        (row.get(0), row.get(1), change)
    }));
    Ok(())
}

async fn remove_members(
    client: &impl GenericClient,
    logs: &mut Logs,
    group_id: &str,
    user_ids: Option<&[String]>,
    max_seq: u64,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let removed = client
        .query(
            "DELETE FROM group_members_v1
             WHERE group_id = $1 AND ($2::text[] IS NULL OR user_id = ANY($2))
             RETURNING user_id",
            &[&group_id, &user_ids],
        )
        .await?;
    let removed: Vec<String> = removed.iter().map(|row| row.get(0)).collect();
    logs.members(group_id, &removed, ChangeState::Delete);
    logs.joined(group_id, &removed, ChangeState::Delete);
    let cap = i64::try_from(max_seq).unwrap_or(i64::MAX);
    let chat = chat_conversation_id(group_id);
    let capped = client
        .query(
            "UPDATE user_conversations_v1 SET max_seq = $3
             WHERE conversation_id = $1 AND owner_user_id = ANY($2)
             RETURNING owner_user_id",
            &[&chat, &removed, &cap],
        )
        .await?;
    logs.conversations.extend(
        capped
            .iter()
            .map(|row| (row.get(0), chat.clone(), ChangeState::Update)),
    );
    Ok(removed)
}

async fn apply_event(
    client: &impl GenericClient,
    logs: &mut Logs,
    event: &RecordedEvent,
) -> Result<(), HandleError> {
    let sequence = sequence_of(event);
    let poison = |error: DecodeError| HandleError::Poison {
        stream_sequence: event.stream_sequence,
        reason: error.to_string(),
    };
    let kind = event.kind.as_str();
    if kind == GroupCreated::KIND {
        let created: GroupCreated = event.decode().map_err(poison)?;
        let owner = created
            .members
            .iter()
            .find(|member| member.role_level == role::OWNER)
            .map_or(created.creator_user_id.as_str(), |member| {
                member.user_id.as_str()
            });
        let profile = &created.profile;
        let inserted = client
            .execute(
                "INSERT INTO groups_v1 (group_id, group_name, face_url, notification,
                     introduction, ex, owner_user_id, creator_user_id, group_type, status,
                     need_verification, look_member_info, apply_member_friend, create_time,
                     notification_update_time, notification_user_id, stream_sequence)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11, $12, $13::bigint,
                         CASE WHEN $4 = '' THEN 0::bigint ELSE $13::bigint END,
                         CASE WHEN $4 = '' THEN '' ELSE $8 END, $14)
                 ON CONFLICT (group_id) DO NOTHING",
                &[
                    &created.group_id,
                    &profile.name,
                    &profile.face_url,
                    &profile.notification,
                    &profile.introduction,
                    &profile.ex,
                    &owner,
                    &created.creator_user_id,
                    &created.group_type,
                    &profile.need_verification,
                    &profile.look_member_info,
                    &profile.apply_member_friend,
                    &created.create_time,
                    &sequence,
                ],
            )
            .await
            .map_err(HandleError::transient)?;
        if inserted == 0 {
            return Ok(());
        }
        add_members(
            client,
            logs,
            &created.group_id,
            &created.creator_user_id,
            &created.members,
            created.create_time,
            None,
        )
        .await
        .map_err(HandleError::transient)?;
        return Ok(());
    }

    // Every other event changes an existing group, at most once.
    let group_id: String = match kind {
        k if k == GroupInfoSet::KIND => {
            let Some(set) = advanced::<GroupInfoSet>(client, event, |e| &e.group_id).await? else {
                return Ok(());
            };
            client
                .execute(
                    "UPDATE groups_v1 SET
                         group_name = coalesce($2, group_name),
                         face_url = coalesce($3, face_url),
                         notification = coalesce($4, notification),
                         introduction = coalesce($5, introduction),
                         ex = coalesce($6, ex),
                         need_verification = coalesce($7, need_verification),
                         look_member_info = coalesce($8, look_member_info),
                         apply_member_friend = coalesce($9, apply_member_friend),
                         notification_update_time = CASE WHEN $4::text IS NULL
                             THEN notification_update_time ELSE $10 END,
                         notification_user_id = CASE WHEN $4::text IS NULL
                             THEN notification_user_id ELSE $11 END
                     WHERE group_id = $1",
                    &[
                        &set.group_id,
                        &set.name,
                        &set.face_url,
                        &set.notification,
                        &set.introduction,
                        &set.ex,
                        &set.need_verification,
                        &set.look_member_info,
                        &set.apply_member_friend,
                        &set.time,
                        &set.operator_user_id,
                    ],
                )
                .await
                .map_err(HandleError::transient)?;
            set.group_id
        }
        k if k == MembersJoined::KIND => {
            let Some(joined) = advanced::<MembersJoined>(client, event, |e| &e.group_id).await?
            else {
                return Ok(());
            };
            add_members(
                client,
                logs,
                &joined.group_id,
                &joined.operator_user_id,
                &joined.members,
                joined.join_time,
                joined.history_from_seq,
            )
            .await
            .map_err(HandleError::transient)?;
            joined.group_id
        }
        k if k == MembersLeft::KIND => {
            let Some(left) = advanced::<MembersLeft>(client, event, |e| &e.group_id).await? else {
                return Ok(());
            };
            remove_members(
                client,
                logs,
                &left.group_id,
                Some(&left.user_ids),
                left.max_seq,
            )
            .await
            .map_err(HandleError::transient)?;
            left.group_id
        }
        k if k == GroupApplied::KIND => {
            let Some(applied) = advanced::<GroupApplied>(client, event, |e| &e.group_id).await?
            else {
                return Ok(());
            };
            client
                .execute(
                    "INSERT INTO group_requests_v1 (group_id, user_id, req_msg, join_source,
                         inviter_user_id, ex, req_time, handle_result, handled_msg,
                         handle_user_id, handle_time)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 0, '', '', 0)
                     ON CONFLICT (group_id, user_id) DO UPDATE SET
                         req_msg = EXCLUDED.req_msg, join_source = EXCLUDED.join_source,
                         inviter_user_id = EXCLUDED.inviter_user_id, ex = EXCLUDED.ex,
                         req_time = EXCLUDED.req_time, handle_result = 0, handled_msg = '',
                         handle_user_id = '', handle_time = 0",
                    &[
                        &applied.group_id,
                        &applied.user_id,
                        &applied.req_msg,
                        &applied.join_source,
                        &applied.inviter_user_id,
                        &applied.ex,
                        &applied.req_time,
                    ],
                )
                .await
                .map_err(HandleError::transient)?;
            return Ok(());
        }
        k if k == GroupApplicationHandled::KIND => {
            let Some(handled) =
                advanced::<GroupApplicationHandled>(client, event, |e| &e.group_id).await?
            else {
                return Ok(());
            };
            client
                .execute(
                    "UPDATE group_requests_v1 SET handle_result = $3, handled_msg = $4,
                         handle_user_id = $5, handle_time = $6
                     WHERE group_id = $1 AND user_id = $2",
                    &[
                        &handled.group_id,
                        &handled.user_id,
                        &handled.handle_result,
                        &handled.handled_msg,
                        &handled.handler_user_id,
                        &handled.handle_time,
                    ],
                )
                .await
                .map_err(HandleError::transient)?;
            if let Some(member) = &handled.member {
                add_members(
                    client,
                    logs,
                    &handled.group_id,
                    &handled.handler_user_id,
                    std::slice::from_ref(member),
                    handled.handle_time,
                    handled.history_from_seq,
                )
                .await
                .map_err(HandleError::transient)?;
            }
            handled.group_id
        }
        k if k == OwnerTransferred::KIND => {
            let Some(transferred) =
                advanced::<OwnerTransferred>(client, event, |e| &e.group_id).await?
            else {
                return Ok(());
            };
            client
                .execute(
                    "UPDATE groups_v1 SET owner_user_id = $2 WHERE group_id = $1",
                    &[&transferred.group_id, &transferred.new_owner_user_id],
                )
                .await
                .map_err(HandleError::transient)?;
            client
                .execute(
                    "UPDATE group_members_v1 SET
                         role_level = CASE WHEN user_id = $2 THEN $4::int ELSE $5::int END,
                         mute_end_time = CASE WHEN user_id = $2 THEN 0 ELSE mute_end_time END
                     WHERE group_id = $1 AND user_id IN ($2, $3)",
                    &[
                        &transferred.group_id,
                        &transferred.new_owner_user_id,
                        &transferred.old_owner_user_id,
                        &role::OWNER,
                        &transferred.old_owner_role_level,
                    ],
                )
                .await
                .map_err(HandleError::transient)?;
            logs.members(
                &transferred.group_id,
                &[
                    transferred.new_owner_user_id.clone(),
                    transferred.old_owner_user_id.clone(),
                ],
                ChangeState::Update,
            );
            logs.order(&transferred.group_id);
            transferred.group_id
        }
        k if k == GroupDismissed::KIND => {
            let Some(dismissed) =
                advanced::<GroupDismissed>(client, event, |e| &e.group_id).await?
            else {
                return Ok(());
            };
            client
                .execute(
                    "UPDATE groups_v1 SET status = $2 WHERE group_id = $1",
                    &[&dismissed.group_id, &status::DISMISSED],
                )
                .await
                .map_err(HandleError::transient)?;
            remove_members(client, logs, &dismissed.group_id, None, dismissed.max_seq)
                .await
                .map_err(HandleError::transient)?;
            client
                .execute(
                    "UPDATE group_requests_v1 SET handle_result = -1, handle_time = $2
                     WHERE group_id = $1 AND handle_result = 0",
                    &[&dismissed.group_id, &dismissed.time],
                )
                .await
                .map_err(HandleError::transient)?;
            dismissed.group_id
        }
        k if k == MemberMuted::KIND => {
            let Some(muted) = advanced::<MemberMuted>(client, event, |e| &e.group_id).await? else {
                return Ok(());
            };
            client
                .execute(
                    "UPDATE group_members_v1 SET mute_end_time = $3
                     WHERE group_id = $1 AND user_id = $2",
                    &[&muted.group_id, &muted.user_id, &muted.mute_end_time],
                )
                .await
                .map_err(HandleError::transient)?;
            logs.members(
                &muted.group_id,
                std::slice::from_ref(&muted.user_id),
                ChangeState::Update,
            );
            return Ok(());
        }
        k if k == GroupMuted::KIND => {
            let Some(muted) = advanced::<GroupMuted>(client, event, |e| &e.group_id).await? else {
                return Ok(());
            };
            let new_status = if muted.muted {
                status::MUTED
            } else {
                status::OK
            };
            client
                .execute(
                    "UPDATE groups_v1 SET status = $2 WHERE group_id = $1 AND status <> $3",
                    &[&muted.group_id, &new_status, &status::DISMISSED],
                )
                .await
                .map_err(HandleError::transient)?;
            muted.group_id
        }
        k if k == MembersInfoSet::KIND => {
            let Some(set) = advanced::<MembersInfoSet>(client, event, |e| &e.group_id).await?
            else {
                return Ok(());
            };
            let users: Vec<&str> = set.changes.iter().map(|c| c.user_id.as_str()).collect();
            let nicknames: Vec<Option<&str>> =
                set.changes.iter().map(|c| c.nickname.as_deref()).collect();
            let faces: Vec<Option<&str>> =
                set.changes.iter().map(|c| c.face_url.as_deref()).collect();
            let roles: Vec<Option<i32>> = set.changes.iter().map(|c| c.role_level).collect();
            let exes: Vec<Option<&str>> = set.changes.iter().map(|c| c.ex.as_deref()).collect();
            let changed = client
                .query(
                    "UPDATE group_members_v1 AS m SET
                         nickname = coalesce(v.n, m.nickname),
                         face_url = coalesce(v.f, m.face_url),
                         role_level = coalesce(v.r, m.role_level),
                         ex = coalesce(v.e, m.ex)
                     FROM UNNEST($2::text[], $3::text[], $4::text[], $5::int[], $6::text[])
                          AS v(u, n, f, r, e)
                     WHERE m.group_id = $1 AND m.user_id = v.u
                     RETURNING m.user_id",
                    &[&set.group_id, &users, &nicknames, &faces, &roles, &exes],
                )
                .await
                .map_err(HandleError::transient)?;
            let changed: Vec<String> = changed.iter().map(|row| row.get(0)).collect();
            logs.members(&set.group_id, &changed, ChangeState::Update);
            if set.changes.iter().any(|change| change.role_level.is_some()) {
                logs.order(&set.group_id);
            }
            return Ok(());
        }
        _ => return Ok(()),
    };
    logs.group_itself(&group_id);
    Ok(())
}

/// The groups projection's batch handler.
pub struct GroupsProjection {
    pool: Pool,
}

impl GroupsProjection {
    /// A handler writing through `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

impl BatchHandler for GroupsProjection {
    async fn apply(&mut self, batch: &[RecordedEvent]) -> Result<(), HandleError> {
        let last_sequence = batch
            .iter()
            .map(|event| event.stream_sequence)
            .max()
            .unwrap_or(0);
        let mut client = self.pool.get().await.map_err(HandleError::transient)?;
        let transaction = client.transaction().await.map_err(HandleError::transient)?;
        let mut logs = Logs::default();
        for event in batch {
            apply_event(&transaction, &mut logs, event).await?;
        }
        record_changes(&transaction, Log::JoinedGroups, &logs.joined)
            .await
            .map_err(HandleError::transient)?;
        record_changes(&transaction, Log::GroupMembers, &logs.members)
            .await
            .map_err(HandleError::transient)?;
        record_changes(&transaction, Log::Conversations, &logs.conversations)
            .await
            .map_err(HandleError::transient)?;
        projection::advance(&transaction, NAME, VERSION, last_sequence)
            .await
            .map_err(HandleError::transient)?;
        transaction.commit().await.map_err(HandleError::transient)
    }
}

// ---- Profile changes in the member logs ----

/// The companion projection's name: members' profile changes in the member logs.
pub const PROFILES_NAME: &str = "group_profiles";
/// Its version.
pub const PROFILES_VERSION: i32 = 1;

/// The durable consumer of [`ProfilesProjection`]: the users' account subjects.
pub fn profiles_consumer_spec() -> DurableSpec {
    let mut spec = DurableSpec::new(
        USER_STREAM,
        &crate::projection::consumer_name(PROFILES_NAME, PROFILES_VERSION),
    );
    spec.filter_subjects = vec![every_user(UserKind::Account)];
    spec
}

/// A member who set no group nickname (or avatar) shows their profile's, so when a user's
/// nickname or avatar changes, each group where they show it records an update of that
/// member in its member log, and member sync brings the change. A projection of its own
/// because it reads another stream (`IM_USER`) than the groups projection; it writes only
/// the member logs.
pub struct ProfilesProjection {
    pool: Pool,
}

impl ProfilesProjection {
    /// A handler writing through `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

impl BatchHandler for ProfilesProjection {
    async fn apply(&mut self, batch: &[RecordedEvent]) -> Result<(), HandleError> {
        use jetim_schemas::events::user::UserUpdated;
        // The newest change per user in the batch: which of nickname and avatar changed.
        let mut changed: BTreeMap<String, (i64, bool, bool)> = BTreeMap::new();
        for event in batch {
            if event.kind != UserUpdated::KIND {
                continue;
            }
            let updated: UserUpdated = event.decode().map_err(|error| HandleError::Poison {
                stream_sequence: event.stream_sequence,
                reason: error.to_string(),
            })?;
            if updated.nickname.is_none() && updated.face_url.is_none() {
                continue;
            }
            let entry = changed.entry(updated.user_id).or_insert((0, false, false));
            entry.0 = sequence_of(event);
            entry.1 |= updated.nickname.is_some();
            entry.2 |= updated.face_url.is_some();
        }
        let last_sequence = batch
            .iter()
            .map(|event| event.stream_sequence)
            .max()
            .unwrap_or(0);
        let mut client = self.pool.get().await.map_err(HandleError::transient)?;
        let transaction = client.transaction().await.map_err(HandleError::transient)?;
        if !changed.is_empty() {
            let users: Vec<&str> = changed.keys().map(String::as_str).collect();
            let sequences: Vec<i64> = changed.values().map(|value| value.0).collect();
            let nicknames: Vec<bool> = changed.values().map(|value| value.1).collect();
            let faces: Vec<bool> = changed.values().map(|value| value.2).collect();
            // Users whose change is newer than the last one applied, then the groups where
            // they show what changed.
            let rows = transaction
                .query(
                    "WITH fresh AS (
                         INSERT INTO group_profile_positions_v1 AS p (user_id, stream_sequence)
                         SELECT u, s FROM UNNEST($1::text[], $2::bigint[]) AS v(u, s)
                         ON CONFLICT (user_id) DO UPDATE SET stream_sequence = EXCLUDED.stream_sequence
                         WHERE p.stream_sequence < EXCLUDED.stream_sequence
                         RETURNING user_id)
                     SELECT m.group_id, m.user_id
                     FROM group_members_v1 m
                     JOIN UNNEST($1::text[], $3::bool[], $4::bool[]) AS c(u, n, f) ON c.u = m.user_id
                     JOIN fresh ON fresh.user_id = m.user_id
                     WHERE (c.n AND m.nickname = '') OR (c.f AND m.face_url = '')",
                    &[&users, &sequences, &nicknames, &faces],
                )
                .await
                .map_err(HandleError::transient)?;
            let changes: LogChanges = rows
                .iter()
                .map(|row| (row.get(0), row.get(1), ChangeState::Update))
                .collect();
            record_changes(&transaction, Log::GroupMembers, &changes)
                .await
                .map_err(HandleError::transient)?;
        }
        projection::advance(&transaction, PROFILES_NAME, PROFILES_VERSION, last_sequence)
            .await
            .map_err(HandleError::transient)?;
        transaction.commit().await.map_err(HandleError::transient)
    }
}

// ---- Queries ----

/// A group as the read model holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    /// The group.
    pub group_id: String,
    /// Its name.
    pub group_name: String,
    /// Its avatar.
    pub face_url: String,
    /// Its announcement.
    pub notification: String,
    /// Its introduction.
    pub introduction: String,
    /// Extension data.
    pub ex: String,
    /// The owner.
    pub owner_user_id: String,
    /// Who created it.
    pub creator_user_id: String,
    /// Always 2.
    pub group_type: i32,
    /// 0 ok, 2 dismissed, 3 muted.
    pub status: i32,
    /// The join policy.
    pub need_verification: i32,
    /// A flag for clients.
    pub look_member_info: i32,
    /// A flag for clients.
    pub apply_member_friend: i32,
    /// When it was created, milliseconds.
    pub create_time: i64,
    /// When the announcement last changed, milliseconds.
    pub notification_update_time: i64,
    /// Who last changed the announcement.
    pub notification_user_id: String,
    /// How many members it has.
    pub member_count: i64,
    /// The stream sequence of the last event applied to it (what a command expects).
    pub stream_sequence: u64,
}

impl GroupRow {
    /// Whether the group is dismissed.
    pub const fn is_dismissed(&self) -> bool {
        self.status == status::DISMISSED
    }
}

const GROUP: &str = "SELECT g.*, (SELECT count(*) FROM group_members_v1 m
                                  WHERE m.group_id = g.group_id) AS member_count
                     FROM groups_v1 g";

fn group_row(row: &Row) -> GroupRow {
    GroupRow {
        group_id: row.get("group_id"),
        group_name: row.get("group_name"),
        face_url: row.get("face_url"),
        notification: row.get("notification"),
        introduction: row.get("introduction"),
        ex: row.get("ex"),
        owner_user_id: row.get("owner_user_id"),
        creator_user_id: row.get("creator_user_id"),
        group_type: row.get("group_type"),
        status: row.get("status"),
        need_verification: row.get("need_verification"),
        look_member_info: row.get("look_member_info"),
        apply_member_friend: row.get("apply_member_friend"),
        create_time: row.get("create_time"),
        notification_update_time: row.get("notification_update_time"),
        notification_user_id: row.get("notification_user_id"),
        member_count: row.get("member_count"),
        stream_sequence: u64::try_from(row.get::<_, i64>("stream_sequence")).unwrap_or(0),
    }
}

/// A group, if it exists (dismissed ones too).
pub async fn group(pool: &Pool, group_id: &str) -> Result<Option<GroupRow>, ReadModelError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(&format!("{GROUP} WHERE g.group_id = $1"), &[&group_id])
        .await?;
    Ok(row.as_ref().map(group_row))
}

/// The groups among `group_ids` that exist, in the order asked.
pub async fn groups(pool: &Pool, group_ids: &[String]) -> Result<Vec<GroupRow>, ReadModelError> {
    if group_ids.is_empty() {
        return Ok(Vec::new());
    }
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "{GROUP} JOIN UNNEST($1::text[]) WITH ORDINALITY AS k(id, n) ON k.id = g.group_id
                 ORDER BY k.n"
            ),
            &[&group_ids],
        )
        .await?;
    Ok(rows.iter().map(group_row).collect())
}

/// A page of every group, optionally by name (substring) or ID, newest first; admins' search.
pub async fn groups_page(
    pool: &Pool,
    name: &str,
    group_id: &str,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<GroupRow>), ReadModelError> {
    let client = pool.get().await?;
    let condition = "($1 = '' OR strpos(g.group_name, $1) > 0) AND ($2 = '' OR g.group_id = $2)";
    let total: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM groups_v1 g WHERE {condition}"),
            &[&name, &group_id],
        )
        .await?
        .get(0);
    let rows = client
        .query(
            &format!(
                "{GROUP} WHERE {condition} ORDER BY g.create_time DESC, g.group_id
                 OFFSET $3 LIMIT $4"
            ),
            &[&name, &group_id, &offset, &limit],
        )
        .await?;
    Ok((total, rows.iter().map(group_row).collect()))
}

/// A page of the groups the user is in (oldest joined first), and how many there are.
pub async fn joined_page(
    pool: &Pool,
    user_id: &str,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<GroupRow>), ReadModelError> {
    let client = pool.get().await?;
    let total: i64 = client
        .query_one(
            "SELECT count(*) FROM group_members_v1 WHERE user_id = $1",
            &[&user_id],
        )
        .await?
        .get(0);
    let rows = client
        .query(
            &format!(
                "{GROUP} JOIN group_members_v1 j ON j.group_id = g.group_id AND j.user_id = $1
                 ORDER BY j.join_time, g.group_id OFFSET $2 LIMIT $3"
            ),
            &[&user_id, &offset, &limit],
        )
        .await?;
    Ok((total, rows.iter().map(group_row).collect()))
}

/// The groups where the user shows their profile's nickname (`nickname`) or avatar
/// (`face_url`), having set none of their own there, sorted.
pub async fn showing_profile(
    pool: &Pool,
    user_id: &str,
    (nickname, face_url): (bool, bool),
) -> Result<Vec<String>, ReadModelError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT group_id FROM group_members_v1
             WHERE user_id = $1 AND (($2 AND nickname = '') OR ($3 AND face_url = ''))
             ORDER BY group_id",
            &[&user_id, &nickname, &face_url],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// The IDs of the groups the user is in, sorted.
pub async fn joined_ids(pool: &Pool, user_id: &str) -> Result<Vec<String>, ReadModelError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT group_id FROM group_members_v1 WHERE user_id = $1 ORDER BY group_id",
            &[&user_id],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// A member, with the user's profile filling a group nickname or avatar they did not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    /// The group.
    pub group_id: String,
    /// The user.
    pub user_id: String,
    /// The group nickname, else the user's.
    pub nickname: String,
    /// The group avatar, else the user's.
    pub face_url: String,
    /// 100, 60 or 20.
    pub role_level: i32,
    /// When they joined, milliseconds.
    pub join_time: i64,
    /// How they came in.
    pub join_source: i32,
    /// Who invited them.
    pub inviter_user_id: String,
    /// Who let them in.
    pub operator_user_id: String,
    /// Muted until, milliseconds (0: not muted).
    pub mute_end_time: i64,
    /// Extension data.
    pub ex: String,
}

const MEMBER: &str = "SELECT m.group_id, m.user_id,
        CASE WHEN m.nickname = '' THEN coalesce(u.nickname, '') ELSE m.nickname END AS nickname,
        CASE WHEN m.face_url = '' THEN coalesce(u.face_url, '') ELSE m.face_url END AS face_url,
        m.role_level, m.join_time, m.join_source, m.inviter_user_id, m.operator_user_id,
        m.mute_end_time, m.ex
     FROM group_members_v1 m LEFT JOIN users_v1 u ON u.user_id = m.user_id";

fn member_row(row: &Row) -> MemberRow {
    MemberRow {
        group_id: row.get("group_id"),
        user_id: row.get("user_id"),
        nickname: row.get("nickname"),
        face_url: row.get("face_url"),
        role_level: row.get("role_level"),
        join_time: row.get("join_time"),
        join_source: row.get("join_source"),
        inviter_user_id: row.get("inviter_user_id"),
        operator_user_id: row.get("operator_user_id"),
        mute_end_time: row.get("mute_end_time"),
        ex: row.get("ex"),
    }
}

/// The group's members among `user_ids`, in the order asked.
pub async fn members(
    pool: &Pool,
    group_id: &str,
    user_ids: &[String],
) -> Result<Vec<MemberRow>, ReadModelError> {
    if user_ids.is_empty() {
        return Ok(Vec::new());
    }
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "{MEMBER} JOIN UNNEST($2::text[]) WITH ORDINALITY AS k(id, n) ON k.id = m.user_id
                 WHERE m.group_id = $1 ORDER BY k.n"
            ),
            &[&group_id, &user_ids],
        )
        .await?;
    Ok(rows.iter().map(member_row).collect())
}

/// One member, if the user is in the group.
pub async fn member(
    pool: &Pool,
    group_id: &str,
    user_id: &str,
) -> Result<Option<MemberRow>, ReadModelError> {
    Ok(members(pool, group_id, &[user_id.to_owned()])
        .await?
        .into_iter()
        .next())
}

/// Which member list a page shows (OpenIM's `filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberFilter {
    /// Everyone.
    All,
    /// The owner.
    Owner,
    /// Admins.
    Admins,
    /// Ordinary members.
    Ordinary,
    /// The owner and admins.
    Managers,
    /// Ordinary members and admins.
    NotOwner,
}

impl MemberFilter {
    fn roles(self) -> &'static [i32] {
        match self {
            Self::All => &[role::OWNER, role::ADMIN, role::MEMBER],
            Self::Owner => &[role::OWNER],
            Self::Admins => &[role::ADMIN],
            Self::Ordinary => &[role::MEMBER],
            Self::Managers => &[role::OWNER, role::ADMIN],
            Self::NotOwner => &[role::ADMIN, role::MEMBER],
        }
    }
}

/// A page of the group's members (owner, admins, then members; each by join time), matching
/// `keyword` in the user ID or nickname when it is not empty, and how many match.
pub async fn members_page(
    pool: &Pool,
    group_id: &str,
    filter: MemberFilter,
    keyword: &str,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<MemberRow>), ReadModelError> {
    let client = pool.get().await?;
    let roles = filter.roles();
    let matching = format!(
        "{MEMBER} WHERE m.group_id = $1 AND m.role_level = ANY($2)
           AND ($3 = '' OR strpos(m.user_id, $3) > 0
                OR strpos(CASE WHEN m.nickname = '' THEN coalesce(u.nickname, '')
                               ELSE m.nickname END, $3) > 0)"
    );
    let total: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM ({matching}) AS x"),
            &[&group_id, &roles, &keyword],
        )
        .await?
        .get(0);
    let rows = client
        .query(
            &format!(
                "{matching} ORDER BY m.role_level DESC, m.join_time, m.user_id
                 OFFSET $4 LIMIT $5"
            ),
            &[&group_id, &roles, &keyword, &offset, &limit],
        )
        .await?;
    Ok((total, rows.iter().map(member_row).collect()))
}

/// The user IDs of the group's members, sorted.
pub async fn member_ids(pool: &Pool, group_id: &str) -> Result<Vec<String>, ReadModelError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT user_id FROM group_members_v1 WHERE group_id = $1 ORDER BY user_id",
            &[&group_id],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// The group's members and the stream sequence they are as of (for the fan-out cache).
pub async fn member_ids_as_of(
    pool: &Pool,
    group_id: &str,
) -> Result<Option<(u64, Vec<String>)>, ReadModelError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT g.stream_sequence, m.user_id FROM groups_v1 g
             LEFT JOIN group_members_v1 m ON m.group_id = g.group_id
             WHERE g.group_id = $1",
            &[&group_id],
        )
        .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let sequence = u64::try_from(first.get::<_, i64>(0)).unwrap_or(0);
    Ok(Some((
        sequence,
        rows.iter()
            .filter_map(|row| row.get::<_, Option<String>>(1))
            .collect(),
    )))
}

/// The owner and admins of the group.
pub async fn manager_ids(pool: &Pool, group_id: &str) -> Result<Vec<String>, ReadModelError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT user_id FROM group_members_v1 WHERE group_id = $1 AND role_level >= $2
             ORDER BY role_level DESC, user_id",
            &[&group_id, &role::ADMIN],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// A join application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRow {
    /// The group.
    pub group_id: String,
    /// The applicant.
    pub user_id: String,
    /// Their message.
    pub req_msg: String,
    /// How they would join.
    pub join_source: i32,
    /// Who invited them.
    pub inviter_user_id: String,
    /// Extension data.
    pub ex: String,
    /// When, milliseconds.
    pub req_time: i64,
    /// 0 pending, 1 accepted, -1 refused.
    pub handle_result: i32,
    /// The answer's message.
    pub handled_msg: String,
    /// Who answered.
    pub handle_user_id: String,
    /// When, milliseconds.
    pub handle_time: i64,
}

fn request_row(row: &Row) -> RequestRow {
    RequestRow {
        group_id: row.get("group_id"),
        user_id: row.get("user_id"),
        req_msg: row.get("req_msg"),
        join_source: row.get("join_source"),
        inviter_user_id: row.get("inviter_user_id"),
        ex: row.get("ex"),
        req_time: row.get("req_time"),
        handle_result: row.get("handle_result"),
        handled_msg: row.get("handled_msg"),
        handle_user_id: row.get("handle_user_id"),
        handle_time: row.get("handle_time"),
    }
}

/// Which applications a listing shows.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    /// Only to these groups (empty: any).
    pub group_ids: Vec<String>,
    /// Only with these results (empty: any).
    pub handle_results: Vec<i32>,
    /// Only made at or after this time, milliseconds (0: any).
    pub since: i64,
}

/// Whose applications.
#[derive(Debug, Clone, Copy)]
pub enum Applicants<'a> {
    /// To the groups this user owns or administers.
    ManagedBy(&'a str),
    /// This user's own.
    Of(&'a str),
}

/// A page of applications (newest first) and how many match.
pub async fn requests_page(
    pool: &Pool,
    applicants: Applicants<'_>,
    filter: &RequestFilter,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<RequestRow>), ReadModelError> {
    let client = pool.get().await?;
    let (scope, user) = match applicants {
        Applicants::ManagedBy(user) => (
            "r.group_id IN (SELECT group_id FROM group_members_v1
                            WHERE user_id = $1 AND role_level >= 60)",
            user,
        ),
        Applicants::Of(user) => ("r.user_id = $1", user),
    };
    let condition = format!(
        "{scope} AND (cardinality($2::text[]) = 0 OR r.group_id = ANY($2))
         AND (cardinality($3::int[]) = 0 OR r.handle_result = ANY($3)) AND r.req_time >= $4"
    );
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [
        &user,
        &filter.group_ids,
        &filter.handle_results,
        &filter.since,
    ];
    let total: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM group_requests_v1 r WHERE {condition}"),
            &params,
        )
        .await?
        .get(0);
    let rows = client
        .query(
            &format!(
                "SELECT r.* FROM group_requests_v1 r WHERE {condition}
                 ORDER BY r.req_time DESC, r.group_id, r.user_id OFFSET {offset} LIMIT {limit}"
            ),
            &params,
        )
        .await?;
    Ok((total, rows.iter().map(request_row).collect()))
}

/// The applications to a group from `user_ids` (all of its applications when empty).
pub async fn requests_of(
    pool: &Pool,
    group_id: &str,
    user_ids: &[String],
) -> Result<Vec<RequestRow>, ReadModelError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT * FROM group_requests_v1
             WHERE group_id = $1 AND (cardinality($2::text[]) = 0 OR user_id = ANY($2))
             ORDER BY req_time DESC, user_id",
            &[&group_id, &user_ids],
        )
        .await?;
    Ok(rows.iter().map(request_row).collect())
}

/// How many groups there are, how many were created before `start`, and how many per UTC
/// day within `[start, end)` milliseconds.
pub async fn creations_by_day(
    pool: &Pool,
    start: i64,
    end: i64,
) -> Result<(i64, i64, BTreeMap<String, i64>), ReadModelError> {
    crate::users::created_by_day(pool, "groups_v1", start, end).await
}

/// Members by group, for many groups at once: group → member IDs.
pub async fn member_ids_of_groups(
    pool: &Pool,
    group_ids: &[String],
) -> Result<BTreeMap<String, Vec<String>>, ReadModelError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT group_id, user_id FROM group_members_v1 WHERE group_id = ANY($1)
             ORDER BY group_id, user_id",
            &[&group_ids],
        )
        .await?;
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in &rows {
        found.entry(row.get(0)).or_default().push(row.get(1));
    }
    Ok(found)
}
