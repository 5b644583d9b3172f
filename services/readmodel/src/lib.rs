//! The Postgres read models.
//!
//! - [`projection`]: the registry of projection versions (`projections` table): where each one
//!   has got to in the log, and waiting for it to reach a write (read-your-writes).
//! - [`users`]: the users projection (`users_v1`): applying `im.user.*.account` events, and
//!   the queries the `/user` and `/auth` routes make.
//! - [`settings`]: the user_settings projection: users' commands and client configuration.
//! - [`conversations`]: the conversation_settings projection and conversation queries.
//! - [`relations`]: the relations projection: friend requests, friendships and blocks.
//! - [`groups`]: the groups projection (groups, members, join applications, and members'
//!   windows in the group conversations) and its companion `group_profiles` (profile changes
//!   in the member logs).
//! - [`rebuild`]: rebuilding a read model's tables from the log while the live ones serve.
//! - [`versions`]: version logs for incremental sync, kept by the projections.
//! - [`messages`]: the messages projection: messages by seq, clientMsgID lookups, max seqs and
//!   users' conversation rows.
//!
//! [`run_projections`] runs them all; the projector service calls it.
//!
//! A projection's apply runs in the projector over a batch of events in one transaction; it is
//! idempotent and order-safe (each row keeps the stream sequence that last changed it), so a
//! redelivery or a replay from sequence 1 changes nothing.

pub mod conversations;
pub mod groups;
pub mod messages;
pub mod projection;
pub mod rebuild;
pub mod relations;
pub mod settings;
pub mod users;
pub mod versions;

/// A read-model failure. All are infrastructure failures (the database is unreachable or
/// refused a statement); domain answers are values in the query results.
#[derive(Debug, thiserror::Error)]
pub enum ReadModelError {
    /// No connection could be had from the pool.
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A statement failed.
    #[error("database: {}", describe(.0))]
    Query(#[from] tokio_postgres::Error),
}

/// A Postgres error with what the server said, which the error's own `Display` leaves out.
pub fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

use jetim_streams::consume::{BatchHandler, ConsumeError, DurableSpec, run_durable};
use tokio_util::sync::CancellationToken;

async fn run_one<H: BatchHandler>(
    jetstream: async_nats::jetstream::Context,
    spec: DurableSpec,
    mut handler: H,
    shutdown: CancellationToken,
) -> Result<(), ConsumeError> {
    tracing::info!(consumer = %spec.name, "projection running");
    run_durable(&jetstream, &spec, &mut handler, shutdown.cancelled()).await
}

/// Every projection this build maintains: (name, version, its consumer).
pub fn projections() -> Vec<(&'static str, i32, DurableSpec)> {
    vec![
        (users::NAME, users::VERSION, users::consumer_spec()),
        (settings::NAME, settings::VERSION, settings::consumer_spec()),
        (messages::NAME, messages::VERSION, messages::consumer_spec()),
        (
            conversations::NAME,
            conversations::VERSION,
            conversations::consumer_spec(),
        ),
        (
            relations::NAME,
            relations::VERSION,
            relations::consumer_spec(),
        ),
        (groups::NAME, groups::VERSION, groups::consumer_spec()),
        (
            groups::PROFILES_NAME,
            groups::PROFILES_VERSION,
            groups::profiles_consumer_spec(),
        ),
    ]
}

/// Runs every projection, each with its own durable consumer, until `shutdown` is
/// cancelled; the first to fail stops the others.
pub async fn run_projections(
    jetstream: async_nats::jetstream::Context,
    pool: deadpool_postgres::Pool,
    shutdown: CancellationToken,
) -> Result<(), ConsumeError> {
    let outcome = tokio::try_join!(
        run_one(
            jetstream.clone(),
            users::consumer_spec(),
            users::UsersProjection::new(pool.clone()),
            shutdown.clone(),
        ),
        run_one(
            jetstream.clone(),
            settings::consumer_spec(),
            settings::SettingsProjection::new(pool.clone()),
            shutdown.clone(),
        ),
        run_one(
            jetstream.clone(),
            messages::consumer_spec(),
            messages::MessagesProjection::new(pool.clone()),
            shutdown.clone(),
        ),
        run_one(
            jetstream.clone(),
            conversations::consumer_spec(),
            conversations::ConversationSettingsProjection::new(pool.clone()),
            shutdown.clone(),
        ),
        run_one(
            jetstream.clone(),
            relations::consumer_spec(),
            relations::RelationsProjection::new(pool.clone()),
            shutdown.clone(),
        ),
        run_one(
            jetstream.clone(),
            groups::consumer_spec(),
            groups::GroupsProjection::new(pool.clone()),
            shutdown.clone(),
        ),
        run_one(
            jetstream,
            groups::profiles_consumer_spec(),
            groups::ProfilesProjection::new(pool),
            shutdown.clone(),
        ),
    );
    if outcome.is_err() {
        shutdown.cancel();
    }
    outcome.map(|_| ())
}
