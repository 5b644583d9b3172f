//! The OpenIM REST API service (port 10002 by default).
//!
//! - [`build`] binds the listener and assembles the router; [`App::run_until_stopped`] serves
//!   until the shutdown token fires. Tests build the same `App` on port 0.
//! - [`health`]: `GET /healthz`, the state of NATS, JetStream and Postgres.
//! - `GET /metrics`: Prometheus text from the process-wide recorder.
//!
//! The OpenIM routes (`/auth`, `/user`, `/msg`, …) are added here as they are built; each
//! handler parses, calls the domain, and maps the result.

pub mod health;

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use jetim_common::config::ApiConfig;
use jetim_common::shutdown::CancellationToken;
use metrics_exporter_prometheus::PrometheusHandle;

/// The handles the API's handlers share; cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    /// The NATS connection.
    pub nats: async_nats::Client,
    /// JetStream on that connection.
    pub jetstream: async_nats::jetstream::Context,
    /// The Postgres pool.
    pub db: deadpool_postgres::Pool,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
}

/// The API service, bound and ready to serve.
pub struct App {
    listener: tokio::net::TcpListener,
    router: Router,
}

/// Binds `config.listen` and assembles the routes.
pub async fn build(config: &ApiConfig, state: ApiState) -> anyhow::Result<App> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|error| {
            anyhow::anyhow!(
                "cannot listen on {} (setting api.listen): {error}",
                config.listen
            )
        })?;
    let router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics))
        .with_state(state);
    Ok(App { listener, router })
}

impl App {
    /// The address the service listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The port the service listens on (useful when configured with port 0).
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Serves until `shutdown` is cancelled, then finishes the requests in flight.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    }
}

async fn metrics(axum::extract::State(state): axum::extract::State<ApiState>) -> String {
    state.metrics.render()
}
