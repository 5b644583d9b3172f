//! Test harness (feature `test-util`): a private nats-server and a fresh Postgres database per
//! test, both removed when dropped. No test touches a server it did not start.
//!
//! - The nats-server binary is `$JETIM_NATS_SERVER`, or the pinned build `ops/` installs into
//!   `.local/nats/bin/nats-server`. It listens on random loopback ports with a temporary store.
//! - Databases are created through `$JETIM_TEST_POSTGRES_URL` (default
//!   `postgres://postgres@127.0.0.1:5432/postgres`), a role allowed to create databases.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::PostgresConfig;

/// A nats-server with JetStream, private to one test.
pub struct TestNats {
    process: ServerProcess,
    /// `nats://127.0.0.1:<port>`.
    pub url: String,
    /// `http://127.0.0.1:<port>`, the monitoring endpoint.
    pub monitoring_url: String,
    directory: tempfile::TempDir,
}

/// The nats-server binary tests use.
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("JETIM_NATS_SERVER") {
        return PathBuf::from(path);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.local/nats/bin/nats-server")
}

impl TestNats {
    /// Starts the server and waits until it accepts clients.
    pub async fn start() -> Self {
        let directory = tempfile::tempdir().expect("temporary directory");
        let (process, ports) = spawn_server(directory.path(), "-1", "-1").await;
        let first = |key: &str| {
            ports[key][0]
                .as_str()
                .unwrap_or_else(|| panic!("ports file has no {key} address: {ports}"))
                .to_owned()
        };
        let server = Self {
            process,
            url: first("nats"),
            monitoring_url: first("monitoring"),
            directory,
        };
        server.wait_for_jetstream().await;
        server
    }

    /// Stops the server and starts it again on the same ports with the same store, as an
    /// operator's restart would. Clients reconnect on their own.
    pub async fn restart(&mut self) {
        self.process.stop();
        let port_of = |url: &str| url.rsplit(':').next().unwrap_or_default().to_owned();
        let (process, _) = spawn_server(
            self.directory.path(),
            &port_of(&self.url),
            &port_of(&self.monitoring_url),
        )
        .await;
        self.process = process;
        self.wait_for_jetstream().await;
    }

    // The ports file is written before JetStream is ready; wait for an account answer.
    async fn wait_for_jetstream(&self) {
        let client = self.client().await;
        let jetstream = async_nats::jetstream::new(client);
        let deadline = Instant::now() + Duration::from_secs(15);
        while jetstream.query_account().await.is_err() {
            assert!(Instant::now() < deadline, "JetStream did not become ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A new client connection.
    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(&self.url)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to test nats at {}: {error}", self.url))
    }

    /// A JetStream context on a new connection.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.client().await)
    }

    /// The directory holding the server's store.
    pub fn store_directory(&self) -> PathBuf {
        self.directory.path().join("store")
    }
}

/// Starts nats-server with its store and ports file in `directory`; `-1` ports are random.
async fn spawn_server(
    directory: &std::path::Path,
    client_port: &str,
    monitoring_port: &str,
) -> (ServerProcess, serde_json::Value) {
    let binary = nats_server_binary();
    assert!(
        binary.is_file(),
        "no nats-server at {}: run `ops/test` (it installs the pinned server) or set JETIM_NATS_SERVER",
        binary.display()
    );
    let process = ServerProcess(
        Command::new(&binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                client_port,
                "-m",
                monitoring_port,
                "-js",
                "-sd",
            ])
            .arg(directory.join("store"))
            .arg("--ports_file_dir")
            .arg(directory)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display())),
    );
    let ports_file = directory.join(format!("nats-server_{}.ports", process.0.id()));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(text) = std::fs::read_to_string(&ports_file)
            && let Ok(ports) = serde_json::from_str(&text)
        {
            return (process, ports);
        }
        assert!(
            Instant::now() < deadline,
            "nats-server did not start in 15 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A running nats-server, killed and reaped when dropped (also when a test panics).
struct ServerProcess(Child);

impl ServerProcess {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The admin URL tests create databases through.
pub fn admin_url() -> String {
    std::env::var("JETIM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A Postgres database private to one test, dropped afterwards.
pub struct TestDatabase {
    /// The database's name.
    pub name: String,
    /// Settings that connect to it.
    pub config: PostgresConfig,
}

impl TestDatabase {
    /// Creates an empty database.
    pub async fn empty() -> Self {
        // The NUID's bytes in hex: an unquoted name is folded to lower case, and a NUID
        // lowered is no longer unique (two tests once drew the same name).
        let name: String = std::iter::once("jetim_test_".to_owned())
            .chain(
                nuid::next()
                    .to_string()
                    .bytes()
                    .map(|byte| format!("{byte:02x}")),
            )
            .collect();
        let admin = admin_url();
        let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "cannot reach the test Postgres at {admin} (JETIM_TEST_POSTGRES_URL): {error}"
                )
            });
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|error| panic!("cannot create database {name}: {error}"));
        drop(client);
        let _ = driver.await;
        let mut config = tokio_postgres::Config::from_str_checked(&admin);
        config.dbname(&name);
        Self {
            config: PostgresConfig {
                url: to_url(&config),
                pool_size: 8,
                connect_timeout_ms: 5_000,
            },
            name,
        }
    }

    /// Creates a database with every migration applied.
    pub async fn migrated() -> Self {
        let database = Self::empty().await;
        crate::migrate::run_embedded(&database.config)
            .await
            .unwrap_or_else(|error| panic!("migrating {}: {error:#}", database.name));
        database
    }

    /// A pool on the database.
    pub fn pool(&self) -> deadpool_postgres::Pool {
        crate::db::pool(&self.config).expect("pool")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime; a plain thread with its own runtime may block.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let (client, connection) =
                    tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
                        .await
                        .ok()?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        });
        let _ = dropper.join();
    }
}

trait FromStrChecked {
    fn from_str_checked(url: &str) -> Self;
}

impl FromStrChecked for tokio_postgres::Config {
    fn from_str_checked(url: &str) -> Self {
        url.parse()
            .unwrap_or_else(|error| panic!("JETIM_TEST_POSTGRES_URL {url:?} is invalid: {error}"))
    }
}

/// Writes a connection config back as a URL (user, password, host, port, database).
fn to_url(config: &tokio_postgres::Config) -> String {
    let user = config.get_user().unwrap_or("postgres");
    let password = config
        .get_password()
        .map(|password| format!(":{}", String::from_utf8_lossy(password)))
        .unwrap_or_default();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(path)) => {
            return format!(
                "postgres://{user}{password}@/{}?host={}&port={}",
                config.get_dbname().unwrap_or_default(),
                path.display(),
                config.get_ports().first().copied().unwrap_or(5432)
            );
        }
        None => "127.0.0.1".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{user}{password}@{host}:{port}/{}",
        config.get_dbname().unwrap_or_default()
    )
}
