//! `TestApp`: the API and the projector on a private nats-server and database, and one method
//! per route so tests read as scenarios.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use jetim_api::{ApiState, Limits, build};
use jetim_common::auth::{Platform, TokenService};
use jetim_common::config::{ApiConfig, AuthConfig, MessagingConfig};
use jetim_common::shutdown::CancellationToken;
use jetim_common::testing::{TestDatabase, TestNats};
use jetim_schemas::openim::sdkws::PushMessages;
use jetim_streams::EventLog;
use prost::Message as _;
use serde_json::{Value, json};

pub(crate) const ADMIN: &str = "imAdmin";
pub(crate) const SECRET: &str = "openIM123";
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

pub(crate) struct TestApp {
    pub(crate) address: String,
    pub(crate) http: reqwest::Client,
    pub(crate) nats: TestNats,
    pub(crate) database: TestDatabase,
    pub(crate) jetstream: async_nats::jetstream::Context,
    stop: CancellationToken,
}

impl TestApp {
    /// Everything running and healthy.
    pub(crate) async fn spawn() -> Self {
        let nats = TestNats::start().await;
        let database = TestDatabase::migrated().await;
        Self::spawn_with(nats, database, None, MessagingConfig::default()).await
    }

    /// The API under the given messaging rules.
    pub(crate) async fn spawn_with_messaging(messaging: MessagingConfig) -> Self {
        let nats = TestNats::start().await;
        let database = TestDatabase::migrated().await;
        Self::spawn_with(nats, database, None, messaging).await
    }

    /// The API on the given servers; `db` overrides the pool (e.g. an unreachable one).
    pub(crate) async fn spawn_with(
        nats: TestNats,
        database: TestDatabase,
        db: Option<deadpool_postgres::Pool>,
        messaging: MessagingConfig,
    ) -> Self {
        let client = nats.client().await;
        let jetstream = async_nats::jetstream::new(client.clone());
        jetim_streams::definitions::apply_all(&jetstream, 1)
            .await
            .unwrap();
        let tokens = TokenService::open(&jetstream, &AuthConfig::default(), 1)
            .await
            .unwrap();
        let log = Arc::new(EventLog::open(jetstream.clone()).await.unwrap());
        let pool = db.unwrap_or_else(|| database.pool());
        let stop = CancellationToken::new();
        tokio::spawn(jetim_readmodel::run_projections(
            jetstream.clone(),
            database.pool(),
            log.hurry().clone(),
            stop.clone(),
        ));
        let state = ApiState {
            jetstream: jetstream.clone(),
            nats: client,
            send_facts: jetim_readmodel::send_facts::FactsReader::new(pool.clone()),
            db: pool,
            metrics: jetim_common::telemetry::metrics_handle(),
            tokens,
            log,
            limits: Limits {
                max_body_bytes: MAX_BODY_BYTES,
            },
            send_status: ApiState::open_send_status(&jetstream, 1).await.unwrap(),
            presence: jetim_common::presence::PresenceStore::open(
                &jetstream,
                1,
                std::time::Duration::from_secs(90),
            )
            .await
            .unwrap(),
            status_subscriptions: jetim_api::routes::status::open_subscriptions(&jetstream, 1)
                .await
                .unwrap(),
            messaging,
        };
        jetim_api::routes::user::register_admins(&state)
            .await
            .unwrap();
        let config = ApiConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..ApiConfig::default()
        };
        let app = build(&config, state).await.unwrap();
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped(stop.clone()));
        Self {
            address,
            http: reqwest::Client::new(),
            nats,
            database,
            jetstream,
            stop,
        }
    }

    /// A POST as OpenIM clients send it; returns the whole envelope.
    pub(crate) async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Value {
        self.post_as_operation(path, "test-op", token, body).await
    }

    /// [`TestApp::post`] with the given `operationID`.
    pub(crate) async fn post_as_operation(
        &self,
        path: &str,
        operation_id: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Value {
        let mut request = self
            .http
            .post(format!("{}{path}", self.address))
            .header("operationID", operation_id)
            .json(body);
        if let Some(token) = token {
            request = request.header("token", token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path} answers HTTP 200");
        response.json().await.unwrap()
    }

    /// The `data` of a successful call; panics with the envelope otherwise.
    pub(crate) async fn ok(&self, path: &str, token: &str, body: &Value) -> Value {
        let reply = self.post(path, Some(token), body).await;
        assert_eq!(reply["errCode"], 0, "{path}: {reply}");
        reply.get("data").cloned().unwrap_or(Value::Null)
    }

    pub(crate) async fn admin_token(&self) -> String {
        let reply = self
            .post(
                "/auth/get_admin_token",
                None,
                &json!({"secret": SECRET, "userID": ADMIN}),
            )
            .await;
        reply["data"]["token"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn register(&self, admin: &str, user_ids: &[&str]) {
        let users: Vec<Value> = user_ids
            .iter()
            .map(|id| json!({"userID": id, "nickname": format!("nick {id}"), "faceURL": ""}))
            .collect();
        self.ok("/user/user_register", admin, &json!({"users": users}))
            .await;
    }

    pub(crate) async fn user_token(
        &self,
        admin: &str,
        user_id: &str,
        platform: Platform,
    ) -> String {
        let data = self
            .ok(
                "/auth/get_user_token",
                admin,
                &json!({"platformID": platform.id(), "userID": user_id}),
            )
            .await;
        data["token"].as_str().unwrap().to_owned()
    }

    /// How many events the user stream holds.
    /// Waits until the messages projection has applied and acked every event of its
    /// subjects appended so far (its durable consumer has nothing pending).
    pub(crate) async fn messages_caught_up(&self) {
        let name = format!(
            "{}_v{}",
            jetim_readmodel::messages::NAME,
            jetim_readmodel::messages::VERSION
        );
        let stream = self
            .jetstream
            .get_stream(jetim_streams::subject::CONVERSATION_STREAM)
            .await
            .unwrap();
        for _ in 0..200 {
            if let Ok(mut consumer) = stream
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&name)
                .await
                && let Ok(info) = consumer.info().await
                && info.num_pending == 0
                && info.num_ack_pending == 0
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the messages projection did not catch up within 5 s");
    }

    pub(crate) async fn user_events(&self) -> u64 {
        let mut stream = self.jetstream.get_stream("IM_USER").await.unwrap();
        stream.info().await.unwrap().state.messages
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// An error envelope, exactly.
pub(crate) fn error(code: i32, message: &str, detail: &str) -> Value {
    json!({"errCode": code, "errMsg": message, "errDlt": detail})
}

pub(crate) fn now_millis() -> i64 {
    jetim_common::auth::now_seconds() * 1000
}

/// The next push on a user's delivery subject: (conversation, contentType, the Tips).
pub(crate) async fn next_push(subscriber: &mut async_nats::Subscriber) -> (String, i32, Value) {
    let message = tokio::time::timeout(Duration::from_secs(5), subscriber.next())
        .await
        .expect("a push within 5 s")
        .unwrap();
    let push = PushMessages::decode(message.payload).unwrap();
    let (conversation, pulled) = push
        .notification_msgs
        .into_iter()
        .chain(push.msgs)
        .next()
        .expect("one conversation");
    let data = &pulled.msgs[0];
    let content: Value = serde_json::from_slice(&data.content).unwrap();
    let tips = serde_json::from_str(content["detail"].as_str().unwrap_or("null")).unwrap();
    (conversation, data.content_type, tips)
}
