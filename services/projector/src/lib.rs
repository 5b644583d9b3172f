//! The projector service: runs every read-model projection, each with its own durable
//! consumer, until shutdown. A projection that cannot start (its consumer cannot be created)
//! stops the service with an error; once running, failures are retried by the consumer loop.
//!
//! Projections today: `users` (`im.user.*.account` → `users_v1`).

use jetim_common::shutdown::CancellationToken;
use jetim_readmodel::users;
use jetim_streams::consume::{ConsumeError, run_durable};

/// Runs every projection until `shutdown` is cancelled.
pub async fn run(
    jetstream: async_nats::jetstream::Context,
    pool: deadpool_postgres::Pool,
    shutdown: CancellationToken,
) -> Result<(), ConsumeError> {
    let mut handler = users::UsersProjection::new(pool);
    let spec = users::consumer_spec();
    tracing::info!(consumer = %spec.name, "projection running");
    run_durable(&jetstream, &spec, &mut handler, shutdown.cancelled()).await
}
