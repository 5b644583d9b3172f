//! The Postgres read models.
//!
//! - [`projection`]: the registry of projection versions (`projections` table): where each one
//!   has got to in the log, and waiting for it to reach a write (read-your-writes).
//! - [`users`]: the users projection (`users_v1`): applying `im.user.*.account` events, and
//!   the queries the `/user` and `/auth` routes make.
//!
//! A projection's apply runs in the projector over a batch of events in one transaction; it is
//! idempotent and order-safe (each row keeps the stream sequence that last changed it), so a
//! redelivery or a replay from sequence 1 changes nothing.

pub mod projection;
pub mod users;

/// A read-model failure. All are infrastructure failures (the database is unreachable or
/// refused a statement); domain answers are values in the query results.
#[derive(Debug, thiserror::Error)]
pub enum ReadModelError {
    /// No connection could be had from the pool.
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A statement failed.
    #[error("database: {0}")]
    Query(#[from] tokio_postgres::Error),
}
