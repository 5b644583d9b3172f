//! What every jetim service shares.
//!
//! - [`auth`]: login tokens (JWT, token state in KV, multi-login policies).
//! - [`clock`]: seconds and milliseconds since the epoch.
//! - [`config`]: the one YAML file with `JETIM_<SECTION>__<KEY>` overrides, validated at start.
//! - [`telemetry`]: logs, OTLP traces, and the Prometheus recorder behind `GET /metrics`.
//! - [`shutdown`]: the cancellation token every task watches, fired by Ctrl-C or SIGTERM.
//! - [`db`]: the Postgres pool.
//! - [`errcode`]: OpenIM's error codes, for the API and the gateway alike.
//! - [`migrate`]: the migrator for `migrations/*.sql`.
//! - [`nats`]: connecting to NATS with the configured settings.
//! - [`presence`]: who is online, per gateway, in the `IM_PRESENCE` bucket.
//! - [`session`]: session control (new connections, force logouts) on `im.session.<userID>`.
//! - `testing` (feature `test-util`): a private nats-server and a fresh database per test.
//!
//! A process loads [`config::Config`], calls [`telemetry::init`], connects with [`nats`] and
//! [`db`], runs [`migrate`], and hands the handles to the services it runs.

pub mod auth;
pub mod clock;
pub mod config;
pub mod db;
pub mod errcode;
pub mod migrate;
pub mod nats;
pub mod presence;
pub mod session;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "test-util")]
pub mod testing;
