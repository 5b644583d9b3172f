//! The projector service: runs every read-model projection, each with its own durable
//! consumer, until shutdown. A projection that cannot start (its consumer cannot be created)
//! stops the service with an error; once running, failures are retried by the consumer loop.
//!
//! Projections today (see `jetim-readmodel`):
//! - `users`: `im.user.*.account` → `users_v1`;
//! - `user_settings`: `im.user.*.command`, `im.user.*.config` → `user_commands_v1`,
//!   `client_configs_v1`.

use jetim_common::shutdown::CancellationToken;
use jetim_streams::consume::{ConsumeError, Hurry};

/// Runs every projection until `shutdown` is cancelled; what waits for them in this process
/// hurries them through `hurry`.
pub async fn run(
    jetstream: async_nats::jetstream::Context,
    pool: deadpool_postgres::Pool,
    hurry: Hurry,
    shutdown: CancellationToken,
) -> Result<(), ConsumeError> {
    jetim_readmodel::run_projections(jetstream, pool, hurry, shutdown).await
}
