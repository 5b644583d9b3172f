//! The user_settings projection, version 1: users' commands (`user_commands_v1`) and client
//! configuration (`client_configs_v1`, user `''` for the app-wide entries).

use std::collections::BTreeMap;

use deadpool_postgres::Pool;
use jetim_schemas::event::Event as _;
use jetim_schemas::events::settings::{
    ClientConfigDeleted, ClientConfigSet, UserCommandDeleted, UserCommandSet,
};
use jetim_streams::RecordedEvent;
use jetim_streams::consume::{BatchHandler, DurableSpec, HandleError};
use jetim_streams::subject::{USER_STREAM, UserKind, every_user};

use crate::{ReadModelError, projection};

/// The projection's name in the registry.
pub const NAME: &str = "user_settings";
/// The version this build writes and reads.
pub const VERSION: i32 = 1;

/// The durable consumer that feeds the projection.
pub fn consumer_spec() -> DurableSpec {
    let mut spec = DurableSpec::new(
        USER_STREAM,
        &crate::projection::consumer_name(NAME, VERSION),
    );
    spec.filter_subjects = vec![every_user(UserKind::Command), every_user(UserKind::Config)];
    spec
}

/// One user command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRow {
    /// The command type.
    pub command_type: i32,
    /// Its ID within the type.
    pub uuid: String,
    /// Its value.
    pub value: String,
    /// Extension data.
    pub ex: String,
    /// When it was added, milliseconds since the epoch.
    pub create_time: i64,
}

/// A user's commands, of one type or all, oldest first.
pub async fn commands(
    pool: &Pool,
    user_id: &str,
    command_type: Option<i32>,
) -> Result<Vec<CommandRow>, ReadModelError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT command_type, uuid, value, ex, create_time FROM user_commands_v1
             WHERE user_id = $1 AND NOT deleted AND ($2::int IS NULL OR command_type = $2)
             ORDER BY create_time, command_type, uuid",
            &[&user_id, &command_type],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| CommandRow {
            command_type: row.get(0),
            uuid: row.get(1),
            value: row.get(2),
            ex: row.get(3),
            create_time: row.get(4),
        })
        .collect())
}

/// One command, if the user has it.
pub async fn command(
    pool: &Pool,
    user_id: &str,
    command_type: i32,
    uuid: &str,
) -> Result<Option<CommandRow>, ReadModelError> {
    Ok(commands(pool, user_id, Some(command_type))
        .await?
        .into_iter()
        .find(|command| command.uuid == uuid))
}

/// A user's effective client configuration: the app-wide entries overridden by theirs.
pub async fn effective_config(
    pool: &Pool,
    user_id: &str,
) -> Result<BTreeMap<String, String>, ReadModelError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT key, value FROM client_configs_v1
             WHERE user_id IN ('', $1) AND NOT deleted
             ORDER BY (user_id <> '')",
            &[&user_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1)))
        .collect())
}

/// One stored configuration entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRow {
    /// The user, or empty for app-wide.
    pub user_id: String,
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// A page of stored entries, optionally for one user and one key, and how many match.
pub async fn config_page(
    pool: &Pool,
    user_id: Option<&str>,
    key: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<ConfigRow>), ReadModelError> {
    let client = pool.get().await?;
    let condition =
        "NOT deleted AND ($1::text IS NULL OR user_id = $1) AND ($2::text IS NULL OR key = $2)";
    let total: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM client_configs_v1 WHERE {condition}"),
            &[&user_id, &key],
        )
        .await?
        .get(0);
    let rows = client
        .query(
            &format!(
                "SELECT user_id, key, value FROM client_configs_v1 WHERE {condition}
                 ORDER BY user_id, key OFFSET $3 LIMIT $4"
            ),
            &[&user_id, &key, &offset, &limit],
        )
        .await?;
    let entries = rows
        .iter()
        .map(|row| ConfigRow {
            user_id: row.get(0),
            key: row.get(1),
            value: row.get(2),
        })
        .collect();
    Ok((total, entries))
}

/// Applies command and config events.
pub struct SettingsProjection {
    pool: Pool,
}

impl SettingsProjection {
    /// A projection writing through `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

/// A command row as the batch leaves it.
struct CommandState {
    value: String,
    ex: String,
    create_time: i64,
    deleted: bool,
    sequence: i64,
}

/// A config row as the batch leaves it.
struct ConfigState {
    value: String,
    deleted: bool,
    sequence: i64,
}

/// The newest state of each touched row in a batch: later events replace earlier ones.
#[derive(Default)]
struct Changes {
    /// Keyed by (user, type, uuid).
    commands: BTreeMap<(String, i32, String), CommandState>,
    /// Keyed by (user, key).
    configs: BTreeMap<(String, String), ConfigState>,
    last_sequence: u64,
}

fn sort_batch(batch: &[RecordedEvent]) -> Result<Changes, HandleError> {
    let mut changes = Changes::default();
    for event in batch {
        changes.last_sequence = changes.last_sequence.max(event.stream_sequence);
        let sequence = i64::try_from(event.stream_sequence).unwrap_or(i64::MAX);
        let poison = |error: jetim_schemas::event::DecodeError| HandleError::Poison {
            stream_sequence: event.stream_sequence,
            reason: error.to_string(),
        };
        match event.kind.as_str() {
            kind if kind == UserCommandSet::KIND => {
                let set: UserCommandSet = event.decode().map_err(poison)?;
                changes.commands.insert(
                    (set.user_id, set.command_type, set.uuid),
                    CommandState {
                        value: set.value,
                        ex: set.ex,
                        create_time: set.create_time,
                        deleted: false,
                        sequence,
                    },
                );
            }
            kind if kind == UserCommandDeleted::KIND => {
                let deleted: UserCommandDeleted = event.decode().map_err(poison)?;
                changes.commands.insert(
                    (deleted.user_id, deleted.command_type, deleted.uuid),
                    CommandState {
                        value: String::new(),
                        ex: String::new(),
                        create_time: 0,
                        deleted: true,
                        sequence,
                    },
                );
            }
            kind if kind == ClientConfigSet::KIND => {
                let set: ClientConfigSet = event.decode().map_err(poison)?;
                for (key, value) in set.configs {
                    changes.configs.insert(
                        (set.user_id.clone(), key),
                        ConfigState {
                            value,
                            deleted: false,
                            sequence,
                        },
                    );
                }
            }
            kind if kind == ClientConfigDeleted::KIND => {
                let deleted: ClientConfigDeleted = event.decode().map_err(poison)?;
                for key in deleted.keys {
                    changes.configs.insert(
                        (deleted.user_id.clone(), key),
                        ConfigState {
                            value: String::new(),
                            deleted: true,
                            sequence,
                        },
                    );
                }
            }
            _ => {}
        }
    }
    Ok(changes)
}

impl BatchHandler for SettingsProjection {
    async fn apply(&mut self, batch: &[RecordedEvent]) -> Result<(), HandleError> {
        let changes = sort_batch(batch)?;
        let mut client = self.pool.get().await.map_err(HandleError::transient)?;
        let transaction = client.transaction().await.map_err(HandleError::transient)?;

        if !changes.commands.is_empty() {
            let mut users = Vec::new();
            let mut types = Vec::new();
            let mut uuids = Vec::new();
            let mut values = Vec::new();
            let mut exes = Vec::new();
            let mut created = Vec::new();
            let mut deleted = Vec::new();
            let mut sequences = Vec::new();
            for ((user, command_type, uuid), state) in &changes.commands {
                users.push(user.as_str());
                types.push(*command_type);
                uuids.push(uuid.as_str());
                values.push(state.value.as_str());
                exes.push(state.ex.as_str());
                created.push(state.create_time);
                deleted.push(state.deleted);
                sequences.push(state.sequence);
            }
            transaction
                .execute(
                    "INSERT INTO user_commands_v1 AS c (user_id, command_type, uuid, value, ex,
                                                       create_time, deleted, stream_sequence)
                     SELECT * FROM UNNEST($1::text[], $2::int[], $3::text[], $4::text[],
                                          $5::text[], $6::bigint[], $7::bool[], $8::bigint[])
                     ON CONFLICT (user_id, command_type, uuid) DO UPDATE SET
                         value = EXCLUDED.value, ex = EXCLUDED.ex,
                         create_time = EXCLUDED.create_time, deleted = EXCLUDED.deleted,
                         stream_sequence = EXCLUDED.stream_sequence
                     WHERE c.stream_sequence < EXCLUDED.stream_sequence",
                    &[
                        &users, &types, &uuids, &values, &exes, &created, &deleted, &sequences,
                    ],
                )
                .await
                .map_err(HandleError::transient)?;
        }

        if !changes.configs.is_empty() {
            let mut users = Vec::new();
            let mut keys = Vec::new();
            let mut values = Vec::new();
            let mut deleted = Vec::new();
            let mut sequences = Vec::new();
            for ((user, key), state) in &changes.configs {
                users.push(user.as_str());
                keys.push(key.as_str());
                values.push(state.value.as_str());
                deleted.push(state.deleted);
                sequences.push(state.sequence);
            }
            transaction
                .execute(
                    "INSERT INTO client_configs_v1 AS c (user_id, key, value, deleted,
                                                        stream_sequence)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bool[],
                                          $5::bigint[])
                     ON CONFLICT (user_id, key) DO UPDATE SET
                         value = EXCLUDED.value, deleted = EXCLUDED.deleted,
                         stream_sequence = EXCLUDED.stream_sequence
                     WHERE c.stream_sequence < EXCLUDED.stream_sequence",
                    &[&users, &keys, &values, &deleted, &sequences],
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
