//! Version logs for incremental sync (OpenIM's `get_incremental_*` routes), kept by the
//! projections in the same transaction as the rows they describe.

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

/// Records changes to owners' conversation logs: one version bump per owner, and each
/// conversation's latest change at that version.
pub async fn record_conversation_changes(
    client: &impl GenericClient,
    changes: &[(String, String, ChangeState)],
) -> Result<(), tokio_postgres::Error> {
    if changes.is_empty() {
        return Ok(());
    }
    let owners: Vec<&str> = changes.iter().map(|change| change.0.as_str()).collect();
    let ids: Vec<&str> = changes.iter().map(|change| change.1.as_str()).collect();
    let states: Vec<i16> = changes.iter().map(|change| change.2 as i16).collect();
    client
        .execute(
            "WITH bumped AS (
                 INSERT INTO conversation_versions_v1 AS v (owner_user_id, version_id, version)
                 SELECT o, md5(o || clock_timestamp()::text || random()::text), 1
                 FROM (SELECT DISTINCT o FROM UNNEST($1::text[]) AS o ORDER BY o) AS owners
                 ON CONFLICT (owner_user_id) DO UPDATE SET version = v.version + 1
                 RETURNING owner_user_id, version)
             INSERT INTO conversation_changes_v1 AS c (owner_user_id, conversation_id, state, version)
             SELECT DISTINCT ON (x.o, x.c) x.o, x.c, x.s, b.version
             FROM UNNEST($1::text[], $2::text[], $3::smallint[]) WITH ORDINALITY AS x(o, c, s, n)
             JOIN bumped b ON b.owner_user_id = x.o
             ORDER BY x.o, x.c, x.n DESC
             ON CONFLICT (owner_user_id, conversation_id) DO UPDATE SET
                 state = EXCLUDED.state, version = EXCLUDED.version",
            &[&owners, &ids, &states],
        )
        .await?;
    Ok(())
}

/// An owner's log: its ID and current version; `None` before its first change.
pub async fn conversation_log(
    pool: &Pool,
    owner_user_id: &str,
) -> Result<Option<(String, i64)>, ReadModelError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT version_id, version FROM conversation_versions_v1 WHERE owner_user_id = $1",
            &[&owner_user_id],
        )
        .await?;
    Ok(row.map(|row| (row.get(0), row.get(1))))
}

/// The conversations changed after `version`, with their latest change, at most `limit`+1 of
/// them (so the caller can tell "too many").
pub async fn conversation_changes_after(
    pool: &Pool,
    owner_user_id: &str,
    version: i64,
    limit: i64,
) -> Result<Vec<(String, ChangeState)>, ReadModelError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT conversation_id, state FROM conversation_changes_v1
             WHERE owner_user_id = $1 AND version > $2 ORDER BY version, conversation_id
             LIMIT $3",
            &[&owner_user_id, &version, &(limit + 1)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let state = match row.get::<_, i16>(1) {
                1 => ChangeState::Insert,
                2 => ChangeState::Delete,
                _ => ChangeState::Update,
            };
            (row.get(0), state)
        })
        .collect())
}
