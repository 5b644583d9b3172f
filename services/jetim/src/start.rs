//! Starting jetim: storage first, then the services, then waiting for a signal.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use jetim_common::auth::TokenService;
use jetim_common::config::Config;
use jetim_common::presence::PresenceStore;
use jetim_common::shutdown::CancellationToken;
use jetim_common::{db, migrate as migrator, nats, shutdown, telemetry};
use jetim_streams::EventLog;
use tokio::task::JoinSet;

/// Which services a process runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Services {
    api: bool,
    gateway: bool,
    projector: bool,
    push: bool,
}

impl Services {
    const NONE: Self = Self {
        api: false,
        gateway: false,
        projector: false,
        push: false,
    };
    pub(crate) const ALL: Self = Self {
        api: true,
        gateway: true,
        projector: true,
        push: true,
    };
    pub(crate) const API: Self = Self {
        api: true,
        ..Self::NONE
    };
    pub(crate) const GATEWAY: Self = Self {
        gateway: true,
        ..Self::NONE
    };
    pub(crate) const PROJECTOR: Self = Self {
        projector: true,
        ..Self::NONE
    };
    pub(crate) const PUSH: Self = Self {
        push: true,
        ..Self::NONE
    };
}

/// Connects to NATS (checking version and JetStream) and applies the stream definitions.
#[tracing::instrument(skip_all)]
async fn prepare_streams(
    config: &Config,
) -> anyhow::Result<(async_nats::Client, async_nats::jetstream::Context)> {
    let (client, jetstream) = nats::connect(&config.nats).await?;
    let outcomes = jetim_streams::definitions::apply_all(&jetstream, config.nats.stream_replicas)
        .await
        .context("applying streams/*.json")?;
    for (stream, applied) in outcomes {
        tracing::info!(%stream, ?applied, "stream definition applied");
    }
    Ok((client, jetstream))
}

/// `jetim migrate`: streams and SQL migrations, then exit.
pub(crate) async fn migrate(config: &Config) -> anyhow::Result<()> {
    let telemetry = telemetry::init(&config.telemetry)?;
    let outcome = async {
        prepare_streams(config).await?;
        let report = migrator::run_embedded(&config.postgres).await?;
        println!(
            "streams applied; migrations: {} applied now, {} already applied",
            report.applied.len(),
            report.already_applied.len()
        );
        anyhow::Ok(())
    }
    .await;
    telemetry.shutdown();
    outcome
}

/// Prepares storage and runs `services` until a signal.
pub(crate) async fn run_services(config: &Config, services: Services) -> anyhow::Result<()> {
    let telemetry = telemetry::init(&config.telemetry)?;
    let outcome = serve(config, services).await;
    telemetry.shutdown();
    outcome
}

async fn serve(config: &Config, services: Services) -> anyhow::Result<()> {
    let (client, jetstream) = prepare_streams(config).await?;
    let pool = db::connect(&config.postgres).await?;
    migrator::run_embedded(&config.postgres).await?;

    let stop = shutdown::on_signal();
    let mut tasks: JoinSet<anyhow::Result<&'static str>> = JoinSet::new();
    // One log writer for every service of the process: it serialises appends per
    // conversation, which only works if they all go through it. The projections run here
    // take its wake-ups, so that a write or read of this process that waits for them hurries
    // them.
    let log = Arc::new(EventLog::open(jetstream.clone()).await?);
    if services.projector {
        let (jetstream, pool, stop) = (jetstream.clone(), pool.clone(), stop.clone());
        let hurry = log.hurry().clone();
        tasks.spawn(async move {
            jetim_projector::run(jetstream, pool, hurry, stop)
                .await
                .context("the projector stopped")?;
            Ok("projector")
        });
    }
    // One token service for every service of the process too.
    let tokens = TokenService::open(&jetstream, &config.auth, config.nats.stream_replicas)
        .await
        .context("opening the token bucket")?;
    let presence = PresenceStore::open(
        &jetstream,
        config.nats.stream_replicas,
        Duration::from_secs(config.presence.ttl_secs),
    )
    .await
    .context("opening the presence bucket")?;
    // A process with the push service and a gateway hands its fan-out pushes to the
    // gateway directly, and publishes them, for other gateways, on a connection of their
    // own made with `no_echo` (the gateway hears other processes' pushes on it too).
    let fanout_client = if services.push && services.gateway {
        Some(
            nats::connect_without_echo(&config.nats)
                .await
                .context("connecting for fan-out pushes")?,
        )
    } else {
        None
    };
    // One reader for the gateway's and the API's sends, so that sends waiting together
    // from either are read together.
    let send_facts = jetim_readmodel::send_facts::FactsReader::new(pool.clone());
    let mut local_gateway: Option<Arc<dyn jetim_messaging::delivery::LocalFanout>> = None;
    if services.gateway {
        let gateway = jetim_gateway::build(jetim_gateway::GatewayState {
            tokens: tokens.clone(),
            db: pool.clone(),
            send_facts: send_facts.clone(),
            log: Arc::clone(&log),
            presence: presence.clone(),
            config: config.gateway.clone(),
            messaging: config.messaging.clone(),
            fanouts_on: fanout_client.clone(),
        })
        .await?;
        tracing::info!(address = %gateway.local_addr(), instance = gateway.instance(), "WebSocket gateway listening");
        if fanout_client.is_some() {
            local_gateway = Some(gateway.hub());
        }
        let stop = stop.clone();
        tasks.spawn(async move {
            gateway
                .run_until_stopped(stop)
                .await
                .context("the gateway stopped")?;
            Ok("gateway")
        });
    }
    if services.push {
        let state = jetim_push::PushState {
            jetstream: jetstream.clone(),
            nats: fanout_client.clone().unwrap_or_else(|| client.clone()),
            local_gateway,
            db: pool.clone(),
            presence: presence.clone(),
            members: jetim_push::members::MemberCache::new(
                pool.clone(),
                config.push.member_cache_groups,
            ),
            config: config.push.clone(),
        };
        let stop = stop.clone();
        tasks.spawn(async move {
            jetim_push::run(state, stop)
                .await
                .context("the push service stopped")?;
            Ok("push")
        });
    }
    if services.api {
        let state = jetim_api::ApiState {
            nats: client.clone(),
            jetstream: jetstream.clone(),
            db: pool.clone(),
            send_facts,
            metrics: telemetry::metrics_handle(),
            tokens,
            log,
            limits: jetim_api::Limits {
                max_body_bytes: config.api.max_body_bytes,
            },
            send_status: jetim_api::ApiState::open_send_status(
                &jetstream,
                config.nats.stream_replicas,
            )
            .await
            .context("opening the send status bucket")?,
            presence,
            status_subscriptions: jetim_api::routes::status::open_subscriptions(
                &jetstream,
                config.nats.stream_replicas,
            )
            .await
            .context("opening the status subscription bucket")?,
            messaging: config.messaging.clone(),
        };
        jetim_api::routes::user::register_admins(&state)
            .await
            .context("registering the admin users")?;
        let api = jetim_api::build(&config.api, state).await?;
        tracing::info!(address = %api.local_addr(), "REST API listening (GET /healthz)");
        let stop = stop.clone();
        tasks.spawn(async move {
            api.run_until_stopped(stop)
                .await
                .context("the REST API stopped")?;
            Ok("api")
        });
    }
    let outcome = wait_for_all(&mut tasks, &stop).await;
    for client in std::iter::once(&client).chain(&fanout_client) {
        if let Err(error) = client.drain().await {
            tracing::warn!(%error, "NATS connection did not drain");
        }
    }
    if outcome.is_ok() {
        tracing::info!("stopped");
    }
    outcome
}

/// Waits for every service; the first to fail stops the others.
async fn wait_for_all(
    tasks: &mut JoinSet<anyhow::Result<&'static str>>,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let mut first_error = None;
    while let Some(finished) = tasks.join_next().await {
        let outcome = finished
            .context("a service panicked")
            .and_then(|outcome| outcome);
        match outcome {
            Ok(service) => tracing::info!(service, "service stopped"),
            Err(error) => {
                if first_error.is_none() {
                    first_error = Some(error);
                }
            }
        }
        // One service ending ends the process.
        stop.cancel();
    }
    first_error.map_or(Ok(()), Err)
}
