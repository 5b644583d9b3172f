//! `GET /healthz`: 200 when NATS, JetStream and Postgres all answer, 503 naming what is down.
//!
//! The body is JSON:
//! `{"status":"ok","down":[],"checks":{"nats":{"ok":true,"detail":"connected to 2.14.6"},…}}`.
//! Each check has its own short timeout, so a hung dependency makes the answer 503, not slow.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::ApiState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// One dependency's state.
#[derive(Debug, Serialize)]
pub struct Check {
    /// Whether it answered.
    pub ok: bool,
    /// What it said, or what went wrong.
    pub detail: String,
}

/// The `/healthz` body.
#[derive(Debug, Serialize)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    /// The names of the checks that failed.
    pub down: Vec<&'static str>,
    /// Every check by name.
    pub checks: std::collections::BTreeMap<&'static str, Check>,
}

async fn with_timeout<F>(check: F) -> Check
where
    F: Future<Output = Result<String, String>>,
{
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(detail)) => Check { ok: true, detail },
        Ok(Err(detail)) => Check { ok: false, detail },
        Err(_) => Check {
            ok: false,
            detail: format!("no answer within {} s", CHECK_TIMEOUT.as_secs()),
        },
    }
}

/// Checks every dependency.
pub async fn check_all(state: &ApiState) -> Health {
    let nats = async {
        match state.nats.connection_state() {
            async_nats::connection::State::Connected => {
                Ok(format!("connected to {}", state.nats.server_info().version))
            }
            other => Err(format!("{other:?}").to_lowercase()),
        }
    };
    let jetstream = async {
        state
            .jetstream
            .query_account()
            .await
            .map(|account| {
                format!(
                    "{} streams, {} consumers",
                    account.streams, account.consumers
                )
            })
            .map_err(|error| error.to_string())
    };
    let postgres = async {
        jetim_common::db::ping(&state.db)
            .await
            .map(|()| "answering".to_owned())
    };
    let (nats, jetstream, postgres) = tokio::join!(
        with_timeout(nats),
        with_timeout(jetstream),
        with_timeout(postgres)
    );
    let checks = std::collections::BTreeMap::from([
        ("nats", nats),
        ("jetstream", jetstream),
        ("postgres", postgres),
    ]);
    let down: Vec<&'static str> = checks
        .iter()
        .filter(|(_, check)| !check.ok)
        .map(|(name, _)| *name)
        .collect();
    Health {
        status: if down.is_empty() { "ok" } else { "unavailable" },
        down,
        checks,
    }
}

/// The handler.
pub async fn healthz(State(state): State<ApiState>) -> (StatusCode, Json<Health>) {
    let health = check_all(&state).await;
    let status = if health.down.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health))
}
