//! The projection registry: which version of each projection serves reads, and how far it has
//! applied the log.

use std::time::{Duration, Instant};

use deadpool_postgres::{GenericClient, Pool};
use jetim_streams::consume::Hurry;

use crate::ReadModelError;

/// The statement behind [`advance`], for a projection that sends it with its batch's writes:
/// `$1` the name, `$2` the version, `$3` the stream sequence.
pub(crate) const ADVANCE: &str =
    "UPDATE projections SET stream_sequence = GREATEST(stream_sequence, $3)
     WHERE name = $1 AND version = $2";

/// Records that a projection version has applied the log up to `stream_sequence`. Called in
/// the same transaction as the batch it applied.
pub async fn advance(
    client: &impl GenericClient,
    name: &str,
    version: i32,
    stream_sequence: u64,
) -> Result<(), tokio_postgres::Error> {
    let sequence = i64::try_from(stream_sequence).unwrap_or(i64::MAX);
    crate::execute_cached(client, ADVANCE, &[&name, &version, &sequence]).await?;
    Ok(())
}

/// How far a projection version has applied the log.
pub async fn position(pool: &Pool, name: &str, version: i32) -> Result<u64, ReadModelError> {
    let client = pool.get().await?;
    let rows = crate::query_cached(
        &client,
        "SELECT stream_sequence FROM projections WHERE name = $1 AND version = $2",
        &[&name, &version],
    )
    .await?;
    Ok(rows
        .first()
        .map_or(0, |row| u64::try_from(row.get::<_, i64>(0)).unwrap_or(0)))
}

/// The durable consumer a projection version reads the log with, `<projection>_v<N>`.
pub fn consumer_name(name: &str, version: i32) -> String {
    format!("{name}_v{version}")
}

/// Waits until a projection version has applied `stream_sequence`, polling every few
/// milliseconds; `false` if `timeout` passed first. A projection of this process that is
/// behind is hurried through `hurry` at each look, so that it does not linger before the
/// batch that applies the event.
pub async fn wait_for(
    pool: &Pool,
    hurry: &Hurry,
    name: &str,
    version: i32,
    stream_sequence: u64,
    timeout: Duration,
) -> Result<bool, ReadModelError> {
    let deadline = Instant::now() + timeout;
    let consumer = consumer_name(name, version);
    loop {
        if position(pool, name, version).await? >= stream_sequence {
            return Ok(true);
        }
        // At every look, not only the first: a fetch hurried before the event reached the
        // consumer's server (a replica behind its leader) may have come back without it.
        hurry.hurry(&consumer);
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::consumer_name;

    #[test]
    fn a_wait_hurries_the_consumer_its_projection_runs() {
        for (name, version, spec) in crate::projections() {
            assert_eq!(consumer_name(name, version), spec.name, "{name}");
        }
    }
}
