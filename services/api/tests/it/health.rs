use jetim_common::config::PostgresConfig;
use jetim_common::testing::{TestDatabase, TestNats};

use crate::support::TestApp;

impl TestApp {
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

#[tokio::test]
async fn healthz_is_200_when_nats_jetstream_and_postgres_answer() {
    let app = TestApp::spawn().await;
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
    let unreachable = jetim_common::db::pool(&PostgresConfig {
        url: "postgres://postgres@127.0.0.1:1/jetim".into(),
        pool_size: 1,
        connect_timeout_ms: 500,
    })
    .unwrap();
    let app = TestApp::spawn_with(
        TestNats::start().await,
        TestDatabase::migrated().await,
        Some(unreachable),
        Default::default(),
    )
    .await;
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
    let mut app = TestApp::spawn().await;
    assert_eq!(app.healthz().await.0, 200);
    // Replacing the server with a stopped one: kill it by restarting into nothing.
    let dead = std::mem::replace(&mut app.nats, TestNats::start().await);
    drop(dead);
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
    let app = TestApp::spawn().await;
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
