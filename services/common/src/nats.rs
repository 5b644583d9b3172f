//! Connecting to NATS with the configured settings.

use std::time::Duration;

use crate::config::NatsConfig;

/// Why NATS cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The server could not be reached or refused the client.
    #[error("cannot reach NATS at {url} (setting nats.url): {error}")]
    Unreachable {
        /// The configured URL.
        url: String,
        /// What happened.
        error: String,
    },
    /// The credentials file could not be read.
    #[error("nats.credentials_file = {path:?}: {error}")]
    Credentials {
        /// The configured path.
        path: String,
        /// What happened.
        error: String,
    },
    /// The server answers but has no JetStream, or is too old.
    #[error("NATS at {url} cannot hold jetim's streams: {problem}")]
    Unsuitable {
        /// The configured URL.
        url: String,
        /// What is missing.
        problem: String,
    },
}

/// The most messages one subscription holds that its reader has not taken yet; NATS drops
/// what comes beyond (a slow consumer). A bound, not an allocation: the channel under each
/// subscription grows in blocks of 32 as messages wait. async-nats' default, 65,536, was too
/// few for a gateway's one subscription to every user's pushes: in `jetim bench group` at
/// 400 messages a second to 200-member groups, beyond what the machine could deliver, it
/// dropped 72,470 of 805,950 pushes, where a subscription per user lost none.
pub const SUBSCRIPTION_CAPACITY: usize = 1 << 20;

/// Logs what happens to the connection, and counts the messages NATS dropped because a
/// subscription's reader fell behind (`jetim_nats_slow_consumer_drops_total`); the log says
/// so at the first drop and then at every power of two, not at each one.
fn report(event: &async_nats::Event) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static DROPS: AtomicU64 = AtomicU64::new(0);
    match event {
        async_nats::Event::SlowConsumer(subscription) => {
            metrics::counter!("jetim_nats_slow_consumer_drops_total").increment(1);
            let drops = DROPS.fetch_add(1, Ordering::Relaxed) + 1;
            if drops.is_power_of_two() {
                tracing::warn!(
                    subscription,
                    drops,
                    "NATS dropped a message for a subscription whose reader fell behind (slow consumer)"
                );
            }
        }
        async_nats::Event::Disconnected => tracing::warn!("disconnected from NATS; reconnecting"),
        async_nats::Event::Connected => tracing::info!("connected to NATS"),
        other => tracing::info!(event = %other, "NATS"),
    }
}

/// The oldest nats-server jetim supports.
pub const MINIMUM_SERVER_VERSION: (u64, u64) = (2, 12);

/// Connects, failing fast (no endless retry) when the server is not there, and checks the
/// server is recent enough and has JetStream.
pub async fn connect(
    config: &NatsConfig,
) -> Result<(async_nats::Client, async_nats::jetstream::Context), NatsError> {
    let client = open(config, "jetim", async_nats::ConnectOptions::new()).await?;
    let version = client.server_info().version;
    if !version_at_least(&version, MINIMUM_SERVER_VERSION) {
        return Err(NatsError::Unsuitable {
            url: config.url.clone(),
            problem: format!(
                "server version {version} is older than {}.{}",
                MINIMUM_SERVER_VERSION.0, MINIMUM_SERVER_VERSION.1
            ),
        });
    }
    let mut jetstream = async_nats::jetstream::new(client.clone());
    jetstream.set_timeout(Duration::from_millis(config.request_timeout_ms));
    if let Err(error) = jetstream.query_account().await {
        return Err(NatsError::Unsuitable {
            url: config.url.clone(),
            problem: format!("JetStream is not available ({error}); start the server with -js"),
        });
    }
    Ok((client, jetstream))
}

/// A second connection, made with `no_echo`: the server never sends it what it published
/// itself. A process that runs the push service and a gateway publishes its fan-out pushes
/// on it and hears other processes' on it (see `jetim_messaging::delivery::LocalFanout`).
pub async fn connect_without_echo(config: &NatsConfig) -> Result<async_nats::Client, NatsError> {
    open(
        config,
        "jetim fan-out",
        async_nats::ConnectOptions::new().no_echo(),
    )
    .await
}

/// Connects with jetim's settings on top of `options`, failing fast.
async fn open(
    config: &NatsConfig,
    name: &str,
    options: async_nats::ConnectOptions,
) -> Result<async_nats::Client, NatsError> {
    let unreachable = |error: &dyn std::fmt::Display| NatsError::Unreachable {
        url: config.url.clone(),
        error: error.to_string(),
    };
    let mut options = options
        .name(name)
        .subscription_capacity(SUBSCRIPTION_CAPACITY)
        .event_callback(|event| async move { report(&event) })
        .connection_timeout(Duration::from_millis(config.request_timeout_ms))
        .request_timeout(Some(Duration::from_millis(config.request_timeout_ms)));
    if !config.credentials_file.is_empty() {
        options = options
            .credentials_file(&config.credentials_file)
            .await
            .map_err(|error| NatsError::Credentials {
                path: config.credentials_file.clone(),
                error: error.to_string(),
            })?;
    }
    let addresses: Vec<&str> = config.url.split(',').map(str::trim).collect();
    options
        .connect(addresses)
        .await
        .map_err(|error| unreachable(&error))
}

/// Whether a `major.minor.patch[-suffix]` version is at least `minimum`.
pub fn version_at_least(version: &str, minimum: (u64, u64)) -> bool {
    let mut parts = version
        .split(['.', '-'])
        .map(|part| part.parse::<u64>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= minimum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_major_and_minor() {
        assert!(version_at_least("2.11.0", (2, 11)));
        assert!(version_at_least("2.14.6", (2, 11)));
        assert!(version_at_least("3.0.0-beta", (2, 11)));
        assert!(!version_at_least("2.9.10", (2, 11)));
        assert!(!version_at_least("garbage", (2, 11)));
    }
}
