//! Schema migrations: the SQL files of `migrations/`, applied in name order, each once.
//!
//! Applied files are recorded in `jetim_migrations` with a SHA-256 checksum; a file changed
//! after it was applied stops the migrator with a message, because the database no longer
//! matches the file. A session advisory lock serialises concurrent migrators (two `jetim`
//! processes starting at once), so each file runs exactly once; each file runs in its own
//! transaction with its record, so a failed file leaves nothing behind.

use sha2::Digest as _;
use tokio_postgres::Client;

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The file name, e.g. `0001_projections.sql`; the order is the name order.
    pub name: &'static str,
    /// The SQL text.
    pub sql: &'static str,
}

/// The files of `migrations/`, compiled into this build.
pub const EMBEDDED: &[Migration] = include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// A key no other application is likely to take: "jetim" in ASCII.
const ADVISORY_LOCK_KEY: i64 = 0x6a_65_74_69_6d;

/// Why migrating stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A file was edited after it was applied.
    #[error(
        "migration {name} was changed after it was applied (applied checksum {applied}, file checksum {file}); add a new migration instead of editing an applied one"
    )]
    Changed {
        /// The file.
        name: String,
        /// The checksum recorded when it was applied.
        applied: String,
        /// The checksum of the file now.
        file: String,
    },
    /// A file's SQL failed; nothing of it was applied.
    #[error("migration {name} failed: {error}")]
    Failed {
        /// The file.
        name: String,
        /// What Postgres said.
        error: String,
    },
    /// The bookkeeping itself failed.
    #[error("migrating: {0}")]
    Database(String),
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Files applied by this run.
    pub applied: Vec<String>,
    /// Files found already applied.
    pub already_applied: Vec<String>,
}

fn checksum(sql: &str) -> String {
    sha2::Sha256::digest(sql.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn database_error(error: tokio_postgres::Error) -> MigrateError {
    MigrateError::Database(describe(&error))
}

/// The error with Postgres's own message, which `Display` alone leaves out.
pub fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db_error) = error.as_db_error() {
        return format!("{}: {}", db_error.severity(), db_error.message());
    }
    // "error connecting to server" says nothing alone; the causes say why.
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        cause = inner.source();
    }
    text
}

/// Applies every migration not yet applied. `client` should be a dedicated connection: the
/// advisory lock belongs to its session.
#[tracing::instrument(name = "migrate", skip_all, fields(files = migrations.len()))]
pub async fn run(
    client: &mut Client,
    migrations: &[Migration],
) -> Result<MigrationReport, MigrateError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&ADVISORY_LOCK_KEY])
        .await
        .map_err(database_error)?;
    let outcome = apply_locked(client, migrations).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&ADVISORY_LOCK_KEY])
        .await;
    let report = outcome?;
    unlocked.map_err(database_error)?;
    Ok(report)
}

async fn apply_locked(
    client: &mut Client,
    migrations: &[Migration],
) -> Result<MigrationReport, MigrateError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS jetim_migrations (
                name       text PRIMARY KEY,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(database_error)?;
    let mut sorted = migrations.to_vec();
    sorted.sort_by_key(|migration| migration.name);
    let mut report = MigrationReport::default();
    for migration in sorted {
        let file_checksum = checksum(migration.sql);
        let applied = client
            .query_opt(
                "SELECT checksum FROM jetim_migrations WHERE name = $1",
                &[&migration.name],
            )
            .await
            .map_err(database_error)?;
        if let Some(row) = applied {
            let applied_checksum: String = row.get(0);
            if applied_checksum != file_checksum {
                return Err(MigrateError::Changed {
                    name: migration.name.to_owned(),
                    applied: applied_checksum,
                    file: file_checksum,
                });
            }
            report.already_applied.push(migration.name.to_owned());
            continue;
        }
        let failed = |error: tokio_postgres::Error| MigrateError::Failed {
            name: migration.name.to_owned(),
            error: describe(&error),
        };
        let transaction = client.transaction().await.map_err(database_error)?;
        transaction
            .batch_execute(migration.sql)
            .await
            .map_err(failed)?;
        transaction
            .execute(
                "INSERT INTO jetim_migrations (name, checksum) VALUES ($1, $2)",
                &[&migration.name, &file_checksum],
            )
            .await
            .map_err(failed)?;
        transaction.commit().await.map_err(failed)?;
        tracing::info!(migration = migration.name, "migration applied");
        report.applied.push(migration.name.to_owned());
    }
    Ok(report)
}

/// Connects with `config` on a dedicated connection and applies the embedded migrations.
pub async fn run_embedded(
    config: &crate::config::PostgresConfig,
) -> Result<MigrationReport, anyhow::Error> {
    let connection_config = crate::db::connection_config(config)?;
    let (mut client, connection) = connection_config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|error| crate::db::DbError::Unreachable {
            url: config.redacted_url(),
            error: describe(&error),
        })?;
    let driver = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "migration connection closed");
        }
    });
    let report = run(&mut client, EMBEDDED).await;
    drop(client);
    let _ = driver.await;
    Ok(report?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_migrations_are_numbered_and_sorted() {
        assert!(!EMBEDDED.is_empty());
        let names: Vec<&str> = EMBEDDED.iter().map(|migration| migration.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        for name in names {
            assert!(
                name[..4].bytes().all(|byte| byte.is_ascii_digit()),
                "{name}"
            );
        }
    }

    #[test]
    fn checksums_are_sha256_hex() {
        assert_eq!(
            checksum(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
