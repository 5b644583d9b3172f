//! Version logs for incremental sync (OpenIM's `get_incremental_*` routes), kept by the
//! projections in the same transaction as the rows they describe.
//!
//! A log belongs to an owner (a user) and has an opaque ID, a version counter bumped once per
//! applied batch that changed the owner's elements, and for each element only its latest
//! change with the version it happened at.

use deadpool_postgres::{GenericClient, Pool};

use crate::ReadModelError;

/// A change to an element of a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeState {
    /// The element appeared.
    Insert = 1,
    /// The element went away.
    Delete = 2,
    /// The element changed.
    Update = 3,
}

impl ChangeState {
    fn from_stored(value: i16) -> Self {
        match value {
            1 => Self::Insert,
            2 => Self::Delete,
            _ => Self::Update,
        }
    }
}

/// The element of the friend log that stands for "the order changed" (a pin): OpenIM's sort
/// marker. Never a user ID, since it is longer than any.
pub const SORT_MARKER: &str = "____S_O_R_T_I_D____";

/// Which log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    /// A user's conversations (elements: conversation IDs).
    Conversations,
    /// A user's friends (elements: friend user IDs, and [`SORT_MARKER`]).
    Friends,
    /// A user's blocks (elements: blocked user IDs).
    Blacks,
    /// A user's groups (elements: group IDs).
    JoinedGroups,
    /// A group's members (owner: the group ID; elements: user IDs, [`GROUP_ITSELF`] and
    /// [`SORT_MARKER`]).
    GroupMembers,
}

/// The element of a member log that stands for the group's own info.
pub const GROUP_ITSELF: &str = "";

impl Log {
    /// (versions table, changes table, owner column, element column).
    const fn tables(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Self::Conversations => (
                "conversation_versions_v1",
                "conversation_changes_v1",
                "owner_user_id",
                "conversation_id",
            ),
            Self::Friends => (
                "friend_versions_v1",
                "friend_changes_v1",
                "owner_user_id",
                "element_id",
            ),
            Self::Blacks => (
                "black_versions_v1",
                "black_changes_v1",
                "owner_user_id",
                "element_id",
            ),
            Self::JoinedGroups => (
                "joined_group_versions_v1",
                "joined_group_changes_v1",
                "owner_id",
                "element_id",
            ),
            Self::GroupMembers => (
                "group_member_versions_v1",
                "group_member_changes_v1",
                "owner_id",
                "element_id",
            ),
        }
    }
}

/// Records changes to owners' logs: one version bump per owner, and each element's latest
/// change (the last one listed wins) at that version.
pub async fn record_changes(
    client: &impl GenericClient,
    log: Log,
    changes: &[(String, String, ChangeState)],
) -> Result<(), tokio_postgres::Error> {
    if changes.is_empty() {
        return Ok(());
    }
    let (versions, elements, owner, element) = log.tables();
    let owners: Vec<&str> = changes.iter().map(|change| change.0.as_str()).collect();
    let ids: Vec<&str> = changes.iter().map(|change| change.1.as_str()).collect();
    let states: Vec<i16> = changes.iter().map(|change| change.2 as i16).collect();
    crate::execute_cached(
            client,
            &format!(
                "WITH bumped AS (
                     INSERT INTO {versions} AS v ({owner}, version_id, version)
                     SELECT o, md5(o || clock_timestamp()::text || random()::text), 1
                     FROM (SELECT DISTINCT o FROM UNNEST($1::text[]) AS o ORDER BY o) AS owners
                     ON CONFLICT ({owner}) DO UPDATE SET version = v.version + 1
                     RETURNING {owner}, version)
                 INSERT INTO {elements} AS c ({owner}, {element}, state, version)
                 SELECT DISTINCT ON (x.o, x.c) x.o, x.c, x.s, b.version
                 FROM UNNEST($1::text[], $2::text[], $3::smallint[]) WITH ORDINALITY AS x(o, c, s, n)
                 JOIN bumped b ON b.{owner} = x.o
                 ORDER BY x.o, x.c, x.n DESC
                 ON CONFLICT ({owner}, {element}) DO UPDATE SET
                     state = EXCLUDED.state, version = EXCLUDED.version"
            ),
            &[&owners, &ids, &states],
        )
        .await?;
    Ok(())
}

/// An owner's log: its ID and current version; `None` before its first change.
pub async fn current(
    pool: &Pool,
    log: Log,
    owner_user_id: &str,
) -> Result<Option<(String, i64)>, ReadModelError> {
    let (versions, _, owner, _) = log.tables();
    let client = pool.get().await?;
    let row = client
        .query_opt(
            &format!("SELECT version_id, version FROM {versions} WHERE {owner} = $1"),
            &[&owner_user_id],
        )
        .await?;
    Ok(row.map(|row| (row.get(0), row.get(1))))
}

/// The elements changed after `version`, with their latest change and its version, at most
/// `limit`+1 of them (so the caller can tell "too many").
pub async fn changes_after(
    pool: &Pool,
    log: Log,
    owner_user_id: &str,
    version: i64,
    limit: i64,
) -> Result<Vec<(String, ChangeState, i64)>, ReadModelError> {
    let (_, elements, owner, element) = log.tables();
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {element}, state, version FROM {elements}
                 WHERE {owner} = $1 AND version > $2 ORDER BY version, {element}
                 LIMIT $3"
            ),
            &[&owner_user_id, &version, &(limit + 1)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get(0), ChangeState::from_stored(row.get(1)), row.get(2)))
        .collect())
}
