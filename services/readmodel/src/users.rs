//! The users projection, version 1 (`users_v1`).

use std::collections::BTreeMap;

use deadpool_postgres::Pool;
use jetim_schemas::event::Event as _;
use jetim_schemas::events::user::{UserRegistered, UserUpdated};
use jetim_streams::RecordedEvent;
use jetim_streams::consume::{BatchHandler, DurableSpec, HandleError};
use jetim_streams::subject::{USER_STREAM, UserKind, every_user};
use tokio_postgres::Row;

use crate::{ReadModelError, projection};

/// The projection's name in the registry.
pub const NAME: &str = "users";
/// The version this build writes and reads.
pub const VERSION: i32 = 1;

/// The durable consumer that feeds the projection.
pub fn consumer_spec() -> DurableSpec {
    let mut spec = DurableSpec::new(
        USER_STREAM,
        &crate::projection::consumer_name(NAME, VERSION),
    );
    spec.filter_subjects = vec![every_user(UserKind::Account)];
    spec
}

/// One user as the read model holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// The user ID.
    pub user_id: String,
    /// Display name.
    pub nickname: String,
    /// Avatar URL.
    pub face_url: String,
    /// Extension data.
    pub ex: String,
    /// OpenIM's appMangerLevel.
    pub app_manger_level: i32,
    /// Receive option for all single chats.
    pub global_recv_msg_opt: i32,
    /// Registration time, milliseconds since the epoch.
    pub create_time: i64,
}

impl From<&Row> for UserRow {
    fn from(row: &Row) -> Self {
        Self {
            user_id: row.get("user_id"),
            nickname: row.get("nickname"),
            face_url: row.get("face_url"),
            ex: row.get("ex"),
            app_manger_level: row.get("app_manger_level"),
            global_recv_msg_opt: row.get("global_recv_msg_opt"),
            create_time: row.get("create_time"),
        }
    }
}

const COLUMNS: &str =
    "user_id, nickname, face_url, ex, app_manger_level, global_recv_msg_opt, create_time";

/// The users with these IDs, in the order asked; unknown IDs are left out.
pub async fn find(pool: &Pool, user_ids: &[String]) -> Result<Vec<UserRow>, ReadModelError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM users_v1 WHERE user_id = ANY($1)"),
            &[&user_ids],
        )
        .await?;
    let mut by_id: BTreeMap<String, UserRow> = rows
        .iter()
        .map(UserRow::from)
        .map(|user| (user.user_id.clone(), user))
        .collect();
    Ok(user_ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

/// Why a user could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum LookUpError {
    /// The read model failed.
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
    /// The log could not be read.
    #[error("reading the log: {0}")]
    Log(#[from] jetim_streams::AppendError),
    /// The user ID cannot form a subject.
    #[error("invalid user ID: {0}")]
    InvalidId(#[from] jetim_streams::escape::TokenError),
    /// The registration in the log does not decode.
    #[error("reading a registration: {0}")]
    Decode(#[from] jetim_schemas::event::DecodeError),
}

/// One user, from the read model, or from the log while the projection has not yet applied
/// a fresh registration (the log is the authority on who exists). `None`: not registered.
pub async fn look_up(
    pool: &Pool,
    log: &jetim_streams::EventLog,
    user_id: &str,
) -> Result<Option<UserRow>, LookUpError> {
    if let Some(user) = find(pool, &[user_id.to_owned()]).await?.pop() {
        return Ok(Some(user));
    }
    let subject = jetim_streams::Subject::user(user_id, jetim_streams::subject::UserKind::Account)?;
    let Some(first) = log.first_event(&subject).await? else {
        return Ok(None);
    };
    let registered: UserRegistered = first.decode()?;
    Ok(Some(UserRow {
        user_id: registered.user_id,
        nickname: registered.nickname,
        face_url: registered.face_url,
        ex: registered.ex,
        app_manger_level: registered.app_manger_level,
        global_recv_msg_opt: registered.global_recv_msg_opt,
        create_time: registered.create_time,
    }))
}

/// What [`page`] filters on.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Only this user ID (exact).
    pub user_id: Option<String>,
    /// Only users whose nickname contains this, ignoring case.
    pub nickname: Option<String>,
    /// Only these appMangerLevels.
    pub levels: Option<Vec<i32>>,
    /// Only users whose ID is this or whose nickname contains it, ignoring case.
    pub keyword: Option<String>,
}

/// A `LIKE` pattern matching `text` anywhere, lower-cased, with wildcards escaped.
fn contains_pattern(text: &str) -> String {
    format!(
        "%{}%",
        text.to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

/// A page of users in registration order, and how many match in all.
pub async fn page(
    pool: &Pool,
    filter: &UserFilter,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<UserRow>), ReadModelError> {
    let client = pool.get().await?;
    let nickname_pattern = filter.nickname.as_deref().map(contains_pattern);
    let keyword_pattern = filter.keyword.as_deref().map(contains_pattern);
    let condition = "($1::text IS NULL OR user_id = $1)
        AND ($2::text IS NULL OR lower(nickname) LIKE $2)
        AND ($3::int[] IS NULL OR app_manger_level = ANY($3))
        AND ($4::text IS NULL OR user_id = $5 OR lower(nickname) LIKE $4)";
    let filters: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
        &filter.user_id,
        &nickname_pattern,
        &filter.levels,
        &keyword_pattern,
        &filter.keyword,
    ];
    let total: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM users_v1 WHERE {condition}"),
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
                "SELECT {COLUMNS} FROM users_v1 WHERE {condition}
                 ORDER BY create_time, user_id OFFSET $6 LIMIT $7"
            ),
            &parameters,
        )
        .await?;
    Ok((total, rows.iter().map(UserRow::from).collect()))
}

/// Registrations per UTC day (`YYYY-MM-DD`) in `[start, end)` milliseconds, how many users
/// registered before `start`, and how many in all.
pub async fn registrations_by_day(
    pool: &Pool,
    start: i64,
    end: i64,
) -> Result<(i64, i64, BTreeMap<String, i64>), ReadModelError> {
    created_by_day(pool, "users_v1", start, end).await
}

/// For a table with a `create_time` (milliseconds): how many rows in all, how many created
/// before `start`, and how many per UTC day within `[start, end)`.
pub(crate) async fn created_by_day(
    pool: &Pool,
    table: &str,
    start: i64,
    end: i64,
) -> Result<(i64, i64, BTreeMap<String, i64>), ReadModelError> {
    let client = pool.get().await?;
    let totals = client
        .query_one(
            &format!("SELECT count(*), count(*) FILTER (WHERE create_time < $1) FROM {table}"),
            &[&start],
        )
        .await?;
    let rows = client
        .query(
            &format!(
                "SELECT to_char(to_timestamp(create_time / 1000.0) AT TIME ZONE 'UTC',
                                'YYYY-MM-DD'),
                        count(*)
                 FROM {table} WHERE create_time >= $1 AND create_time < $2
                 GROUP BY 1"
            ),
            &[&start, &end],
        )
        .await?;
    Ok((
        totals.get(0),
        totals.get(1),
        rows.iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1)))
            .collect(),
    ))
}

/// Applies `im.user.*.account` events to `users_v1`.
pub struct UsersProjection {
    pool: Pool,
}

impl UsersProjection {
    /// A projection writing through `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

/// A batch sorted into what the statements need.
#[derive(Default)]
struct Changes {
    registered: Vec<(UserRegistered, i64)>,
    /// Updates folded per user, with the sequence of the last one.
    updated: BTreeMap<String, (UserUpdated, i64)>,
    last_sequence: u64,
}

fn sort_batch(batch: &[RecordedEvent]) -> Result<Changes, HandleError> {
    let mut changes = Changes::default();
    for event in batch {
        let sequence = i64::try_from(event.stream_sequence).unwrap_or(i64::MAX);
        changes.last_sequence = changes.last_sequence.max(event.stream_sequence);
        let poison = |reason: String| HandleError::Poison {
            stream_sequence: event.stream_sequence,
            reason,
        };
        match event.kind.as_str() {
            kind if kind == UserRegistered::KIND => {
                let registered: UserRegistered =
                    event.decode().map_err(|error| poison(error.to_string()))?;
                changes.registered.push((registered, sequence));
            }
            kind if kind == UserUpdated::KIND => {
                let update: UserUpdated =
                    event.decode().map_err(|error| poison(error.to_string()))?;
                match changes.updated.get_mut(&update.user_id) {
                    Some((folded, last)) => {
                        folded.merge(update);
                        *last = sequence;
                    }
                    None => {
                        changes
                            .updated
                            .insert(update.user_id.clone(), (update, sequence));
                    }
                }
            }
            // Other account events are not this projection's business.
            _ => {}
        }
    }
    Ok(changes)
}

impl BatchHandler for UsersProjection {
    async fn apply(&mut self, batch: &[RecordedEvent]) -> Result<(), HandleError> {
        let changes = sort_batch(batch)?;
        let mut client = self.pool.get().await.map_err(HandleError::transient)?;
        let transaction = client.transaction().await.map_err(HandleError::transient)?;

        if !changes.registered.is_empty() {
            let column = |pick: fn(&UserRegistered) -> String| -> Vec<String> {
                changes
                    .registered
                    .iter()
                    .map(|(user, _)| pick(user))
                    .collect()
            };
            let levels: Vec<i32> = changes
                .registered
                .iter()
                .map(|(user, _)| user.app_manger_level)
                .collect();
            let options: Vec<i32> = changes
                .registered
                .iter()
                .map(|(user, _)| user.global_recv_msg_opt)
                .collect();
            let created: Vec<i64> = changes
                .registered
                .iter()
                .map(|(user, _)| user.create_time)
                .collect();
            let sequences: Vec<i64> = changes
                .registered
                .iter()
                .map(|(_, sequence)| *sequence)
                .collect();
            // A registration is a user's first event, so an existing row means a replay.
            transaction
                .execute(
                    "INSERT INTO users_v1 (user_id, nickname, face_url, ex, app_manger_level,
                                           global_recv_msg_opt, create_time, stream_sequence)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[],
                                          $5::int[], $6::int[], $7::bigint[], $8::bigint[])
                     ON CONFLICT (user_id) DO NOTHING",
                    &[
                        &column(|user| user.user_id.clone()),
                        &column(|user| user.nickname.clone()),
                        &column(|user| user.face_url.clone()),
                        &column(|user| user.ex.clone()),
                        &levels,
                        &options,
                        &created,
                        &sequences,
                    ],
                )
                .await
                .map_err(HandleError::transient)?;
        }

        if !changes.updated.is_empty() {
            let updates: Vec<&(UserUpdated, i64)> = changes.updated.values().collect();
            let ids: Vec<&str> = updates
                .iter()
                .map(|(update, _)| update.user_id.as_str())
                .collect();
            let nicknames: Vec<Option<&str>> = updates
                .iter()
                .map(|(update, _)| update.nickname.as_deref())
                .collect();
            let face_urls: Vec<Option<&str>> = updates
                .iter()
                .map(|(update, _)| update.face_url.as_deref())
                .collect();
            let exes: Vec<Option<&str>> = updates
                .iter()
                .map(|(update, _)| update.ex.as_deref())
                .collect();
            let options: Vec<Option<i32>> = updates
                .iter()
                .map(|(update, _)| update.global_recv_msg_opt)
                .collect();
            let levels: Vec<Option<i32>> = updates
                .iter()
                .map(|(update, _)| update.app_manger_level)
                .collect();
            let sequences: Vec<i64> = updates.iter().map(|(_, sequence)| *sequence).collect();
            transaction
                .execute(
                    "UPDATE users_v1 AS u SET
                         nickname = COALESCE(v.nickname, u.nickname),
                         face_url = COALESCE(v.face_url, u.face_url),
                         ex = COALESCE(v.ex, u.ex),
                         global_recv_msg_opt = COALESCE(v.recv_opt, u.global_recv_msg_opt),
                         app_manger_level = COALESCE(v.level, u.app_manger_level),
                         stream_sequence = v.sequence
                     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int[],
                                 $6::int[], $7::bigint[])
                          AS v(user_id, nickname, face_url, ex, recv_opt, level, sequence)
                     WHERE u.user_id = v.user_id AND u.stream_sequence < v.sequence",
                    &[
                        &ids, &nicknames, &face_urls, &exes, &options, &levels, &sequences,
                    ],
                )
                .await
                .map_err(HandleError::transient)?;
        }

        projection::advance(&transaction, NAME, VERSION, changes.last_sequence)
            .await
            .map_err(HandleError::transient)?;
        transaction.commit().await.map_err(HandleError::transient)
    }
}
