//! The OpenIM REST API service (port 10002 by default).
//!
//! - [`build`] binds the listener and assembles the router; [`App::run_until_stopped`] serves
//!   until the shutdown token fires. Tests build the same `App` on port 0.
//! - [`openim`]: OpenIM's transport, once for every route: headers, body decoding, the reply
//!   envelope, error codes, CORS.
//! - [`routes`]: the OpenIM routes (`/auth`, `/user`), one module per group.
//! - [`health`]: `GET /healthz`, the state of NATS, JetStream and Postgres.
//! - `GET /metrics`: Prometheus text from the process-wide recorder.
//!
//! A request passes gzip, CORS and a tracing span, then its route: the extractor checks
//! `operationID`, the token and the body; the handler checks access and arguments, appends
//! events or queries the read models, and answers with the envelope.

pub mod health;
pub mod openim;
pub mod routes;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use jetim_common::auth::TokenService;
use jetim_common::config::ApiConfig;
use jetim_common::shutdown::CancellationToken;
use jetim_streams::EventLog;
use jetim_streams::kv::{self, JsonBucket, KvError};
use metrics_exporter_prometheus::PrometheusHandle;
use tracing::Instrument as _;

/// The handles the API's handlers share; cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    /// The NATS connection.
    pub nats: async_nats::Client,
    /// JetStream on that connection.
    pub jetstream: async_nats::jetstream::Context,
    /// The Postgres pool.
    pub db: deadpool_postgres::Pool,
    /// Reads what a send decides on, on `db`.
    pub send_facts: jetim_readmodel::send_facts::FactsReader,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Issues and checks tokens.
    pub tokens: TokenService,
    /// The event log's writer.
    pub log: Arc<EventLog>,
    /// Request limits.
    pub limits: Limits,
    /// Results of REST sends by caller and operationID.
    pub send_status: JsonBucket<i32>,
    /// Who is online (the gateways write it).
    pub presence: jetim_common::presence::PresenceStore,
    /// Whose status each user follows (REST subscriptions).
    pub status_subscriptions: JsonBucket<std::collections::BTreeSet<String>>,
    /// Rules for sending messages.
    pub messaging: jetim_common::config::MessagingConfig,
}

impl ApiState {
    /// Opens (creating if needed) the bucket behind [`ApiState::send_status`].
    pub async fn open_send_status(
        jetstream: &async_nats::jetstream::Context,
        replicas: usize,
    ) -> Result<JsonBucket<i32>, KvError> {
        let store = kv::ensure_bucket(jetstream, kv::send_status_bucket_config(replicas)).await?;
        Ok(JsonBucket::new(store, kv::SEND_STATUS_BUCKET))
    }
}

/// Request limits from the config.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest request body, in bytes.
    pub max_body_bytes: usize,
}

/// A span per request; the extractor fills in `operation_id`.
async fn request_span(request: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "http",
        method = %request.method(),
        path = %request.uri().path(),
        operation_id = tracing::field::Empty,
    );
    next.run(request).instrument(span).await
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "404 page not found")
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
    let router = routes::router()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn(request_span))
        .layer(axum::middleware::from_fn(openim::cors::cors))
        .layer(tower_http::compression::CompressionLayer::new().gzip(true));
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
