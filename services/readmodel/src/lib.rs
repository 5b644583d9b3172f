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
//! - [`send_facts`]: what a send reads before it decides, in one statement.
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
pub mod send_facts;
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

use jetim_streams::consume::{BatchHandler, ConsumeError, DurableSpec, Hurry, run_durable};
use tokio_util::sync::CancellationToken;

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

/// Any of the projections by name, to run or replay one without naming its type.
pub enum AnyProjection {
    /// [`users::UsersProjection`].
    Users(users::UsersProjection),
    /// [`settings::SettingsProjection`].
    Settings(settings::SettingsProjection),
    /// [`messages::MessagesProjection`].
    Messages(messages::MessagesProjection),
    /// [`conversations::ConversationSettingsProjection`].
    Conversations(conversations::ConversationSettingsProjection),
    /// [`relations::RelationsProjection`].
    Relations(relations::RelationsProjection),
    /// [`groups::GroupsProjection`].
    Groups(groups::GroupsProjection),
    /// [`groups::ProfilesProjection`].
    Profiles(groups::ProfilesProjection),
}

impl AnyProjection {
    /// The projection called `name` (one of [`projections`]), writing through `pool`.
    pub fn new(name: &str, pool: deadpool_postgres::Pool) -> Option<Self> {
        Some(match name {
            users::NAME => Self::Users(users::UsersProjection::new(pool)),
            settings::NAME => Self::Settings(settings::SettingsProjection::new(pool)),
            messages::NAME => Self::Messages(messages::MessagesProjection::new(pool)),
            conversations::NAME => {
                Self::Conversations(conversations::ConversationSettingsProjection::new(pool))
            }
            relations::NAME => Self::Relations(relations::RelationsProjection::new(pool)),
            groups::NAME => Self::Groups(groups::GroupsProjection::new(pool)),
            groups::PROFILES_NAME => Self::Profiles(groups::ProfilesProjection::new(pool)),
            _ => return None,
        })
    }

    /// What a batch of this projection can be split by and applied on several connections at
    /// once: a key such that events with different keys write different rows, so only the
    /// order of events with the same key matters. The messages projection's key is the
    /// conversation token of the subject less its prefix, so a single chat and its `n_` twin
    /// share a key. The rows two keys share (a member's version log) are written in sorted
    /// order in every statement, always in the same order of statements, so two such
    /// transactions wait for each other at worst, and a deadlock, should one happen, fails
    /// a batch that is then tried again. `None` for the others: their
    /// events reach across keys (a group's events change its members' rows).
    pub fn partition_key(&self) -> Option<fn(&jetim_streams::RecordedEvent) -> &str> {
        match self {
            Self::Messages(_) => Some(messages::partition_key),
            _ => None,
        }
    }
}

impl BatchHandler for AnyProjection {
    async fn apply(
        &mut self,
        batch: &[jetim_streams::RecordedEvent],
    ) -> Result<(), jetim_streams::consume::HandleError> {
        match self {
            Self::Users(projection) => projection.apply(batch).await,
            Self::Settings(projection) => projection.apply(batch).await,
            Self::Messages(projection) => projection.apply(batch).await,
            Self::Conversations(projection) => projection.apply(batch).await,
            Self::Relations(projection) => projection.apply(batch).await,
            Self::Groups(projection) => projection.apply(batch).await,
            Self::Profiles(projection) => projection.apply(batch).await,
        }
    }
}

/// Runs every projection, each with its own durable consumer, until `shutdown` is
/// cancelled; the first to fail stops the others. What waits for them in this process
/// hurries them through `hurry` (the [`jetim_streams::EventLog::hurry`] of its writer).
pub async fn run_projections(
    jetstream: async_nats::jetstream::Context,
    pool: deadpool_postgres::Pool,
    hurry: Hurry,
    shutdown: CancellationToken,
) -> Result<(), ConsumeError> {
    let running = projections().into_iter().map(|(name, _, spec)| {
        let (jetstream, hurry, shutdown) = (jetstream.clone(), hurry.clone(), shutdown.clone());
        let mut handler = AnyProjection::new(name, pool.clone()).expect("a listed projection");
        async move {
            tracing::info!(consumer = %spec.name, "projection running");
            run_durable(
                &jetstream,
                &spec,
                &mut handler,
                &hurry,
                shutdown.cancelled(),
            )
            .await
        }
    });
    let outcome = futures::future::try_join_all(running).await;
    if outcome.is_err() {
        shutdown.cancel();
    }
    outcome.map(|_| ())
}

/// Runs `sql` as a statement prepared once per connection and reused after: Postgres parses
/// and plans it once, and each run is one round trip instead of two. For the statements the
/// projections run on every batch.
pub(crate) async fn execute_cached(
    client: &impl deadpool_postgres::GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<u64, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.execute(&statement, params).await
}

/// [`execute_cached`] for a statement that returns rows.
pub(crate) async fn query_cached(
    client: &impl deadpool_postgres::GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query(&statement, params).await
}

/// A statement's parameters, owned by the pipeline that runs it.
pub(crate) type Parameters<'a> = Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send + 'a>>;

/// Statements sent to Postgres together and run in the order they were pushed: one round
/// trip for all of them instead of one each, and one wakeup of the backend. A statement's
/// parameters cannot depend on an earlier one's result; its effects (rows inserted before
/// it) it sees as usual. Every statement is prepared once per connection.
#[derive(Default)]
pub(crate) struct Pipeline<'a> {
    steps: Vec<(&'static str, Parameters<'a>)>,
}

impl<'a> Pipeline<'a> {
    /// Adds `sql` with `parameters`; the returned index picks its rows from [`Pipeline::run`].
    pub(crate) fn push(&mut self, sql: &'static str, parameters: Parameters<'a>) -> usize {
        self.steps.push((sql, parameters));
        self.steps.len() - 1
    }

    /// Runs every statement, in order, and returns each one's rows (none for a statement
    /// without `RETURNING`).
    pub(crate) async fn run(
        &self,
        client: &impl deadpool_postgres::GenericClient,
    ) -> Result<Vec<Vec<tokio_postgres::Row>>, tokio_postgres::Error> {
        // Prepared first: a statement not yet prepared on this connection takes a round trip,
        // and one waiting for it must not let a later one go ahead of it.
        let statements = futures::future::try_join_all(
            self.steps.iter().map(|(sql, _)| client.prepare_cached(sql)),
        )
        .await?;
        // Each query is sent when first polled, and `try_join_all` polls them first in order.
        futures::future::try_join_all(self.steps.iter().zip(&statements).map(
            |((_, parameters), statement)| async move {
                let parameters: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = parameters
                    .iter()
                    .map(|parameter| {
                        parameter.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync)
                    })
                    .collect();
                client.query(statement, &parameters).await
            },
        ))
        .await
    }
}

/// [`Parameters`] from a list of values.
macro_rules! parameters {
    ($($value:expr),* $(,)?) => {
        vec![$(Box::new($value) as Box<dyn tokio_postgres::types::ToSql + Sync + Send>),*]
    };
}
pub(crate) use parameters;
