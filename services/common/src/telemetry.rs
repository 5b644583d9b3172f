//! Logs, traces and metrics for every service.
//!
//! - Logs: `tracing` with an env filter (`telemetry.log`, or `RUST_LOG` when set), as text
//!   or JSON lines on stderr.
//! - Traces: when `telemetry.otlp_endpoint` is set, spans are exported over OTLP/HTTP; the
//!   W3C trace-context propagator is installed either way, so trace context travels in NATS
//!   headers from the API through the log to the projectors.
//! - Metrics: the `metrics` facade with a Prometheus recorder; [`metrics_handle`] renders the
//!   text that `GET /metrics` serves.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context as _;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::{LogFormat, TelemetryConfig};

/// Keeps the trace exporter alive; [`Telemetry::shutdown`] flushes it.
#[must_use = "dropping Telemetry does not flush traces; call shutdown()"]
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes buffered spans.
    pub fn shutdown(self) {
        if let Some(provider) = self.tracer_provider
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "trace exporter did not shut down cleanly");
        }
    }
}

/// Installs logging, tracing and the metrics recorder for this process.
pub fn init(config: &TelemetryConfig) -> anyhow::Result<Telemetry> {
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::try_new(&directives)
            .with_context(|| format!("RUST_LOG = {directives:?} is not a valid log filter"))?,
        _ => EnvFilter::try_new(&config.log)
            .with_context(|| format!("telemetry.log = {:?} is not a valid filter", config.log))?,
    };
    let fmt_layer = match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
    };

    let tracer_provider = if config.otlp_endpoint.is_empty() {
        None
    } else {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(&config.otlp_endpoint)
            .build()
            .with_context(|| {
                format!(
                    "telemetry.otlp_endpoint = {:?}: cannot create the exporter",
                    config.otlp_endpoint
                )
            })?;
        Some(
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name(config.service_name.clone())
                        .build(),
                )
                .build(),
        )
    };
    let otel_layer = tracer_provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("jetim")));

    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()
        .context("a global tracing subscriber is already installed")?;
    let _ = metrics_handle();
    Ok(Telemetry { tracer_provider })
}

/// How often the recorder's histogram samples are folded into its distributions.
pub const METRICS_UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The name of the thread that does the recorder's upkeep.
pub const METRICS_UPKEEP_THREAD: &str = "metrics-upkeep";

/// The process-wide Prometheus recorder, installed on first use, with a thread that does its
/// upkeep every [`METRICS_UPKEEP_EVERY`].
///
/// The recorder keeps every histogram sample (8 bytes each) until something folds them into
/// its distributions: a render of `GET /metrics`, or the upkeep. Without the upkeep a jetim
/// that nobody scraped grew by about 80 bytes a message, for good: about 140 MB over a
/// 5-minute chat bench at 6,000 msg/s (docs/performance.md, chat, fourteenth round). A
/// thread rather than a task, because the recorder outlives any one runtime (tests start
/// several).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may be installed already (a test binary that built several
            // apps); the handle then renders this recorder's (empty) view, which is harmless.
            let _ = metrics::set_global_recorder(recorder);
            let upkept = handle.clone();
            let spawned = std::thread::Builder::new()
                .name(METRICS_UPKEEP_THREAD.to_owned())
                .spawn(move || {
                    loop {
                        std::thread::sleep(METRICS_UPKEEP_EVERY);
                        upkept.run_upkeep();
                    }
                });
            if let Err(error) = spawned {
                tracing::warn!(%error, "no thread for the metrics' upkeep: histograms grow until /metrics is scraped");
            }
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names of this process' threads, as the kernel has them.
    #[cfg(target_os = "linux")]
    fn thread_names() -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .expect("/proc/self/task")
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .map(|name| name.trim_end().to_owned())
            .collect()
    }

    /// How many of this process' threads have `name`, waiting up to 2 s for one: a new
    /// thread names itself once it runs, and carries its parent's name until then.
    #[cfg(target_os = "linux")]
    fn threads_named(name: &str) -> usize {
        let count = || thread_names().iter().filter(|each| *each == name).count();
        for _ in 0..200 {
            if count() > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        count()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_recorder_has_a_thread_that_folds_its_histograms_without_a_scrape() {
        let handle = metrics_handle();
        metrics::histogram!("jetim_telemetry_test_seconds").record(0.25);
        assert_eq!(
            threads_named(METRICS_UPKEEP_THREAD),
            1,
            "threads: {:?}",
            thread_names()
        );
        // A second use makes no second thread.
        let _ = metrics_handle();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(threads_named(METRICS_UPKEEP_THREAD), 1);
        assert!(
            handle
                .render()
                .contains("jetim_telemetry_test_seconds_count 1"),
            "{}",
            handle.render()
        );
    }
}
