//! Starting jetim: storage first, then the services, then waiting for a signal.

use anyhow::Context as _;
use jetim_common::config::Config;
use jetim_common::{db, migrate as migrator, nats, shutdown, telemetry};

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

/// `jetim all` and `jetim api`: prepare storage, run the services until a signal.
pub(crate) async fn run_services(config: &Config) -> anyhow::Result<()> {
    let telemetry = telemetry::init(&config.telemetry)?;
    let outcome = serve(config).await;
    telemetry.shutdown();
    outcome
}

async fn serve(config: &Config) -> anyhow::Result<()> {
    let (client, jetstream) = prepare_streams(config).await?;
    let pool = db::connect(&config.postgres).await?;
    migrator::run_embedded(&config.postgres).await?;

    let stop = shutdown::on_signal();
    let api = jetim_api::build(
        &config.api,
        jetim_api::ApiState {
            nats: client.clone(),
            jetstream,
            db: pool,
            metrics: telemetry::metrics_handle(),
        },
    )
    .await?;
    tracing::info!(address = %api.local_addr(), "REST API listening (GET /healthz)");
    api.run_until_stopped(stop)
        .await
        .context("the REST API stopped")?;
    if let Err(error) = client.drain().await {
        tracing::warn!(%error, "NATS connection did not drain");
    }
    tracing::info!("stopped");
    Ok(())
}
