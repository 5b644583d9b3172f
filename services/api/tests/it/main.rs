//! The API service started as `jetim` starts it, on port 0, against private servers.

use jetim_api::{ApiState, build};
use jetim_common::config::{ApiConfig, PostgresConfig};
use jetim_common::shutdown::CancellationToken;
use jetim_common::testing::{TestDatabase, TestNats};

struct TestApp {
    address: String,
    stop: CancellationToken,
    http: reqwest::Client,
}

impl TestApp {
    async fn spawn(nats: &TestNats, db: deadpool_postgres::Pool) -> Self {
        let client = nats.client().await;
        let state = ApiState {
            jetstream: async_nats::jetstream::new(client.clone()),
            nats: client,
            db,
            metrics: jetim_common::telemetry::metrics_handle(),
        };
        let config = ApiConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
        };
        let app = build(&config, state).await.unwrap();
        let address = format!("http://127.0.0.1:{}", app.port());
        let stop = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(stop.clone()));
        Self {
            address,
            stop,
            http: reqwest::Client::new(),
        }
    }

    async fn healthz(&self) -> (u16, serde_json::Value) {
        let response = self
            .http
            .get(format!("{}/healthz", self.address))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[tokio::test]
async fn healthz_is_200_when_nats_jetstream_and_postgres_answer() {
    let nats = TestNats::start().await;
    let database = TestDatabase::migrated().await;
    let app = TestApp::spawn(&nats, database.pool()).await;
    let (status, body) = app.healthz().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["down"], serde_json::json!([]));
    for check in ["nats", "jetstream", "postgres"] {
        assert_eq!(body["checks"][check]["ok"], true, "{check}: {body}");
    }
}

#[tokio::test]
async fn healthz_is_503_naming_postgres_when_it_is_unreachable() {
    let nats = TestNats::start().await;
    let unreachable = jetim_common::db::pool(&PostgresConfig {
        url: "postgres://postgres@127.0.0.1:1/jetim".into(),
        pool_size: 1,
        connect_timeout_ms: 500,
    })
    .unwrap();
    let app = TestApp::spawn(&nats, unreachable).await;
    let (status, body) = app.healthz().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["down"], serde_json::json!(["postgres"]));
    assert!(
        body["checks"]["postgres"]["detail"]
            .as_str()
            .unwrap()
            .contains("Connection refused"),
        "{body}"
    );
}

#[tokio::test]
async fn healthz_is_503_naming_nats_and_jetstream_when_the_server_is_gone() {
    let nats = TestNats::start().await;
    let database = TestDatabase::migrated().await;
    let app = TestApp::spawn(&nats, database.pool()).await;
    assert_eq!(app.healthz().await.0, 200);
    drop(nats);
    // The client notices the lost connection a moment after JetStream stops answering.
    let mut last = serde_json::Value::Null;
    for _ in 0..50 {
        let (status, body) = app.healthz().await;
        last = body;
        if status == 503 && last["checks"]["nats"]["ok"] == false {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        last["down"],
        serde_json::json!(["jetstream", "nats"]),
        "{last}"
    );
    assert_eq!(last["checks"]["postgres"]["ok"], true);
}

#[tokio::test]
async fn metrics_are_served_as_prometheus_text() {
    let nats = TestNats::start().await;
    let database = TestDatabase::migrated().await;
    let app = TestApp::spawn(&nats, database.pool()).await;
    metrics::counter!("jetim_test_probe_total").increment(1);
    let response = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("jetim_test_probe_total 1"), "{text}");
}
